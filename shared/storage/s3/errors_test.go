package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wedsync/backup-replication/shared/secret"
	"github.com/wedsync/backup-replication/shared/storage"
)

// faultServer answers every S3 request with the same fault, as a store in
// trouble would: the faults are injected at the network edge, and the
// provider's classification is what a caller sees.
func faultServer(t *testing.T, status int, code string, header http.Header) *Provider {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		switch status {
		case -1: // reset the connection mid-request
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		case -2: // stall until the client gives up
			<-r.Context().Done()
			return
		}
		for k, v := range header {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(status)
		if code != "" && r.Method != http.MethodHead {
			fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>injected</Message><RequestId>r1</RequestId></Error>`, code)
		}
	}))
	t.Cleanup(srv.Close)
	p, err := New(t.Context(), Config{Bucket: "b", Region: "us-east-1", Endpoint: srv.URL, UsePathStyle: true,
		AccessKeyID: "test", SecretAccessKey: secret.Secret("test")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestErrorKinds(t *testing.T) {
	cases := []struct {
		name       string
		status     int
		code       string
		header     http.Header
		want       storage.Kind
		headWant   storage.Kind // HEAD answers carry no code, only the status
		retryAfter time.Duration
	}{
		{"slow-down", 503, "SlowDown", http.Header{"Retry-After": {"7"}}, storage.Throttled, storage.Transient, 7 * time.Second},
		{"too-many-requests", 429, "", nil, storage.Throttled, storage.Throttled, 0},
		{"internal-error", 500, "InternalError", nil, storage.Transient, storage.Transient, 0},
		{"bad-gateway", 502, "", nil, storage.Transient, storage.Transient, 0},
		{"access-denied", 403, "AccessDenied", nil, storage.Unauthorized, storage.Unauthorized, 0},
		{"expired-token", 400, "ExpiredToken", nil, storage.Unauthorized, storage.Permanent, 0},
		{"no-such-bucket", 404, "NoSuchBucket", nil, storage.NotFound, storage.NotFound, 0},
		{"bad-digest", 400, "BadDigest", nil, storage.Integrity, storage.Permanent, 0},
		{"content-sha256-mismatch", 400, "XAmzContentSHA256Mismatch", nil, storage.Integrity, storage.Permanent, 0},
		{"invalid-argument", 400, "InvalidArgument", nil, storage.Permanent, storage.Permanent, 0},
		{"connection-reset", -1, "", nil, storage.Transient, storage.Transient, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := faultServer(t, tc.status, tc.code, tc.header)
			_, err := p.Put(t.Context(), "k", strings.NewReader("hello"), 5,
				storage.PutOptions{SHA256: "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"})
			checkKind(t, "Put", err, tc.want, tc.retryAfter)
			_, err = p.Get(t.Context(), "k", 0, -1)
			checkKind(t, "Get", err, tc.want, tc.retryAfter)
			_, err = p.Stat(t.Context(), "k")
			checkKind(t, "Stat", err, tc.headWant, -1)
			err = p.List(t.Context(), "", func(storage.ObjectInfo) error { return nil })
			checkKind(t, "List", err, tc.want, tc.retryAfter)
		})
	}
	t.Run("stalled-past-deadline", func(t *testing.T) {
		p := faultServer(t, -2, "", nil)
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		_, err := p.Stat(ctx, "k")
		checkKind(t, "Stat", err, storage.Transient, 0)
	})
	t.Run("cancelled-by-caller", func(t *testing.T) {
		p := faultServer(t, -2, "", nil)
		ctx, cancel := context.WithCancel(t.Context())
		go func() { time.Sleep(50 * time.Millisecond); cancel() }()
		_, err := p.Stat(ctx, "k")
		checkKind(t, "Stat", err, storage.Permanent, 0)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Stat error %v does not match context.Canceled", err)
		}
	})
}

// checkKind checks err's kind, that it is a *storage.Error naming the
// provider, and (when retryAfter >= 0) its Retry-After hint.
func checkKind(t *testing.T, op string, err error, want storage.Kind, retryAfter time.Duration) {
	t.Helper()
	var se *storage.Error
	if !errors.As(err, &se) {
		t.Fatalf("%s: error %v (%T) is not a *storage.Error", op, err, err)
	}
	if se.Kind != want || se.Provider != "s3" {
		t.Errorf("%s: kind %s provider %q, want %s from s3 (%v)", op, se.Kind, se.Provider, want, err)
	}
	if retryAfter >= 0 && se.RetryAfter != retryAfter {
		t.Errorf("%s: RetryAfter %v, want %v", op, se.RetryAfter, retryAfter)
	}
}

func TestConfigValidate(t *testing.T) {
	err := Config{PartSize: 1 << 20, Concurrency: -1, Endpoint: "ftp://x", AccessKeyID: "a", ObjectLockMode: "FOREVER"}.Validate()
	if err == nil {
		t.Fatal("invalid config passed Validate")
	}
	for _, field := range []string{"Bucket", "Region", "Endpoint", "SecretAccessKey", "PartSize", "MultipartThreshold", "Concurrency", "ObjectLockMode"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("Validate does not report %s: %v", field, err)
		}
	}
	ok := Config{Bucket: "b", Region: "eu-west-1"}
	if err := ok.Validate(); err != nil {
		t.Errorf("minimal config: %v", err)
	}
	if d := ok.withDefaults(); d.Name != "s3" || d.PartSize != 16<<20 || d.MultipartThreshold != 16<<20 || d.Concurrency != 2 {
		t.Errorf("defaults = %+v", d)
	}
	if s := fmt.Sprintf("%+v", Config{SecretAccessKey: "hunter2"}); strings.Contains(s, "hunter2") {
		t.Errorf("config prints its secret: %s", s)
	}
}
