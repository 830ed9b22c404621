package credentials_test

import (
	"errors"
	"fmt"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/wedsync/backup-replication/shared/credentials"
	"github.com/wedsync/backup-replication/shared/credentials/credtest"
	"github.com/wedsync/backup-replication/shared/secret"
)

// TestLoaderFollowsAWSCURRENTAfterTheTTL: within the TTL the cached
// version is served; after it, the version AWSCURRENT moved to.
func TestLoaderFollowsAWSCURRENTAfterTheTTL(t *testing.T) {
	w := newWorld(t)
	arn := w.Secret(`{"serviceKey":"one"}`)
	clk := newClock()
	l := w.loader(clk)

	v1, err := l.Get(t.Context(), arn)
	if err != nil || v1.Value.Reveal() != `{"serviceKey":"one"}` || v1.Stage != credentials.StageCurrent {
		t.Fatalf("Get = %+v, %v; want the first value under AWSCURRENT", v1, err)
	}
	v2id := w.Stage(arn, `{"serviceKey":"two"}`, credentials.StagePending)
	w.Promote(arn, v2id)

	if v, _ := l.Get(t.Context(), arn); v.VersionID != v1.VersionID {
		t.Fatalf("within the TTL Get served version %s, want the cached %s", v.VersionID, v1.VersionID)
	}
	clk.Advance(2 * time.Hour)
	v, err := l.Get(t.Context(), arn)
	if err != nil || v.VersionID != v2id || v.Value.Reveal() != `{"serviceKey":"two"}` {
		t.Fatalf("after the TTL Get = %s %q, %v; want version %s (moto answers a request without a stage with the old one)",
			v.VersionID, v.Value.Reveal(), err, v2id)
	}
	prev, err := l.Fetch(t.Context(), arn, credentials.StagePrevious)
	if err != nil || prev.VersionID != v1.VersionID {
		t.Fatalf("Fetch(AWSPREVIOUS) = %s, %v; want %s", prev.VersionID, err, v1.VersionID)
	}
}

// TestLoaderNoVersion: a stage nobody carries is ErrNoVersion, and a
// missing secret is an error that names it.
func TestLoaderNoVersion(t *testing.T) {
	w := newWorld(t)
	arn := w.Secret(`{"serviceKey":"k"}`)
	l := w.loader(nil)
	if _, err := l.Fetch(t.Context(), arn, credentials.StagePending); !errors.Is(err, credentials.ErrNoVersion) {
		t.Fatalf("Fetch(AWSPENDING) on a secret never rotated: %v, want ErrNoVersion", err)
	}
	if _, err := l.Get(t.Context(), "no-such-secret"); err == nil || !strings.Contains(err.Error(), "no-such-secret") {
		t.Fatalf("Get(missing) = %v, want an error naming the secret", err)
	}
}

// TestLoaderServesCachedWhileSecretsManagerIsDown: once Secrets Manager
// stops answering, the cached version keeps being served past the TTL; with
// nothing cached, the error is returned.
func TestLoaderServesCachedWhileSecretsManagerIsDown(t *testing.T) {
	w := newWorld(t)
	arn := w.Secret(`{"serviceKey":"cached"}`)
	u, _ := url.Parse(side.URL())
	edge := httptest.NewServer(httputil.NewSingleHostReverseProxy(u))
	cfg := side.Admin().Copy()
	cfg.BaseEndpoint = aws.String(edge.URL)
	cfg.RetryMaxAttempts = 1
	clk := newClock()
	l := credentials.NewLoader(secretsmanager.NewFromConfig(cfg), credentials.LoaderConfig{TTL: time.Minute, Now: clk.Now})
	if _, err := l.Get(t.Context(), arn); err != nil {
		t.Fatal(err)
	}
	edge.Close() // Secrets Manager unreachable from now on
	clk.Advance(time.Hour)
	v, err := l.Get(t.Context(), arn)
	if err != nil || v.Value.Reveal() != `{"serviceKey":"cached"}` {
		t.Fatalf("Get with Secrets Manager down = %v; want the cached value", err)
	}
	if _, err := l.Get(t.Context(), w.Secret(`{"serviceKey":"never read"}`)); err == nil {
		t.Fatal("Get of a secret never read, with Secrets Manager down: no error")
	}
}

// TestParseShapes: each provider's secret shapes parse; wrong ones give an
// error that never quotes the value.
func TestParseShapes(t *testing.T) {
	const leak = "S3CRET-VALUE-123"
	cases := []struct {
		name  string
		parse func(secret.Secret) error
		value string
		ok    bool
	}{
		{"s3 keys", s3p, `{"accessKeyId":"AKIA1","secretAccessKey":"` + leak + `"}`, true},
		{"s3 role", s3p, `{"roleArn":"arn:aws:iam::1:role/r","externalId":"x"}`, true},
		{"s3 half a pair", s3p, `{"secretAccessKey":"` + leak + `"}`, false},
		{"s3 not json", s3p, leak, false},
		{"s3 bad role", s3p, `{"roleArn":"` + leak + `"}`, false},
		{"gcs key file", gcsp, `{"type":"service_account","client_email":"a@b","private_key_id":"k","private_key":"` + leak + `"}`, true},
		{"gcs wrapped", gcsp, `{"credentialsJson":"{\"type\":\"service_account\",\"client_email\":\"a@b\",\"private_key_id\":\"k\"}"}`, true},
		{"gcs no type", gcsp, `{"private_key":"` + leak + `"}`, false},
		{"gcs not json", gcsp, leak, false},
		{"supabase", supap, `{"url":"https://x.supabase.co","serviceKey":"` + leak + `"}`, true},
		{"supabase key only", supap, `{"serviceKey":"` + leak + `"}`, true},
		{"supabase no key", supap, `{"url":"https://x.supabase.co"}`, false},
		{"supabase bad url", supap, `{"url":"` + leak + `","serviceKey":"k"}`, false},
		{"supabase not json", supap, leak, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.parse(secret.Secret(tc.value))
			if (err == nil) != tc.ok {
				t.Fatalf("parse: %v, want ok=%v", err, tc.ok)
			}
			if err != nil && strings.Contains(err.Error(), leak) {
				t.Fatalf("the error quotes the secret: %v", err)
			}
		})
	}
}

func s3p(v secret.Secret) error   { _, err := credentials.ParseS3(v); return err }
func gcsp(v secret.Secret) error  { _, err := credentials.ParseGCS(v); return err }
func supap(v secret.Secret) error { _, err := credentials.ParseSupabase(v); return err }

// TestCredsRoundTrip: what Secret() writes, Parse reads back, and printing
// the credentials shows no secret part.
func TestCredsRoundTrip(t *testing.T) {
	s3c := credentials.S3Creds{AccessKeyID: "AKIA2", SecretAccessKey: "sssh"}
	back, err := credentials.ParseS3(s3c.Secret())
	if err != nil || back != s3c {
		t.Fatalf("S3 round trip: %+v, %v", back, err)
	}
	sb := credentials.SupabaseCreds{URL: "https://p.supabase.co", ServiceKey: "sssh"}
	if b, err := credentials.ParseSupabase(sb.Secret()); err != nil || b != sb {
		t.Fatalf("Supabase round trip: %+v, %v", b, err)
	}
	var out credtest.Logs
	out.Logger().Info("creds", "s3", s3c, "supabase", sb)
	for _, v := range []any{s3c, sb} {
		if s := fmt.Sprintf("%v %+v %#v", v, v, v) + out.String(); strings.Contains(s, "sssh") {
			t.Fatalf("%T prints its secret: %s", v, s)
		}
	}
}
