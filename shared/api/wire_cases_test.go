package api_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/golang-jwt/jwt/v5"

	"github.com/wedsync/backup-replication/infra/emulator"
	"github.com/wedsync/backup-replication/shared/api"
	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/config"
	"github.com/wedsync/backup-replication/shared/providers"
	"github.com/wedsync/backup-replication/shared/secret"
	"github.com/wedsync/backup-replication/shared/storage/supabase"
)

// newSecret stores value in moto's Secrets Manager and returns its ARN.
func newSecret(t *testing.T, sm *secretsmanager.Client, value string) string {
	t.Helper()
	out, err := sm.CreateSecret(t.Context(), &secretsmanager.CreateSecretInput{
		Name: aws.String(fmt.Sprintf("api-wire-%d", seq.Add(1))), SecretString: aws.String(value)})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.ARN)
}

// TestWireFromSecrets: with every credential in Secrets Manager (the JWT
// key as {"secret": …}, the Supabase URL and key, the S3 key pair) and no
// breakers or health table, the API Wire builds accepts tokens signed with
// the key from the secret only, lists every provider as downloadable, and
// signs download URLs that work, from S3 and from Supabase, with the
// credentials read from their secrets.
func TestWireFromSecrets(t *testing.T) {
	m := startMoto(t)
	ctx := t.Context()
	awsCfg, _ := m.AWSConfig(ctx)
	sb, err := emulator.StartSupabase(t.TempDir())
	emulator.Require(t, err)
	t.Cleanup(func() { sb.Close() })
	g, err := emulator.StartGCS()
	emulator.Require(t, err)
	t.Cleanup(func() { g.Close() })
	if err := g.CreateBucket("offsite"); err != nil {
		t.Fatal(err)
	}
	sm := secretsmanager.NewFromConfig(awsCfg)

	n := seq.Add(1)
	vars := map[string]string{
		"AWS_REGION": emulator.MotoRegion, "AWS_ENDPOINT_URL": m.URL,
		"LANDING_BUCKET": fmt.Sprintf("wires-landing-%d", n),
		"BACKUPS_TABLE":  fmt.Sprintf("wires-backups-%d", n), "REPLICAS_TABLE": fmt.Sprintf("wires-replicas-%d", n),
		"SUPABASE_BUCKET": "primary", "SUPABASE_SECRET_ARN": newSecret(t, sm, `{"url":"`+sb.URL+`","serviceKey":"`+sb.ServiceKey+`"}`),
		"S3_REPLICA_BUCKET": fmt.Sprintf("wires-replica-%d", n),
		"S3_REPLICA_SECRET_ARN": newSecret(t, sm, `{"accessKeyId":"`+emulator.MotoAccessKeyID+`","secretAccessKey":"`+
			emulator.MotoSecretAccessKey+`"}`),
		"GCS_BUCKET": "offsite", "GCS_ENDPOINT": g.URL,
		"API_JWT_SECRET_ARN": newSecret(t, sm, `{"secret":"`+string(testSecret)+`"}`), "API_JWT_ISSUER": testIssuer,
	}
	cfg, err := config.LoadAPI(config.Map(vars))
	if err != nil {
		t.Fatal(err)
	}
	apiEnv, err := api.LoadEnv(config.Map(vars))
	if err != nil {
		t.Fatal(err)
	}
	s3c := awss3.NewFromConfig(awsCfg, func(o *awss3.Options) { o.UsePathStyle = true })
	for _, b := range []string{vars["LANDING_BUCKET"], vars["S3_REPLICA_BUCKET"]} {
		if _, err := s3c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(b)}); err != nil {
			t.Fatal(err)
		}
	}
	db := dynamodb.NewFromConfig(awsCfg)
	names := catalog.Config{BackupsTable: vars["BACKUPS_TABLE"], ReplicasTable: vars["REPLICAS_TABLE"]}
	if err := catalog.EnsureTables(ctx, db, names); err != nil {
		t.Fatal(err)
	}
	sp, err := supabase.New(supabase.Config{URL: sb.URL, ServiceKey: secret.Secret(sb.ServiceKey), Bucket: "primary"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := sp.EnsureBucket(ctx); err != nil {
		t.Fatal(err)
	}
	lw := &lockedWriter{w: &bytes.Buffer{}}
	h, err := api.Wire(ctx, cfg, apiEnv, awsCfg, slog.New(slog.NewJSONHandler(lw, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	store, _ := catalog.NewDynamo(db, names)
	e := &env{t: t, srv: httptest.NewServer(h), h: h, store: store, s3: s3c, landing: vars["LANDING_BUCKET"]}
	t.Cleanup(e.srv.Close)

	// A token signed with another key is refused.
	other, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": testIssuer, "aud": testAudience, "sub": "u",
		"exp": 4102444800, "app_metadata": map[string]any{"org_id": "org1"}}).SignedString([]byte("another-key-another-key-another-key"))
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.srv.URL+"/providers", nil)
	req.Header.Set("Authorization", "Bearer "+other)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a token of another key: %v %v, want 401", resp, err)
	} else {
		resp.Body.Close()
	}
	if r := e.call("GET", "/", "", nil); r.Status != http.StatusNotFound {
		t.Errorf("GET / without a dashboard: %d, want 404", r.Status)
	}

	var ps struct{ Providers []api.ProviderSummary }
	e.call("GET", "/providers", "org1", nil).decode(t, &ps)
	if len(ps.Providers) != 3 {
		t.Fatalf("providers: %+v", ps)
	}
	for _, p := range ps.Providers {
		if !p.Configured || !p.Downloadable {
			t.Errorf("provider %+v: want configured and downloadable", p)
		}
	}

	built, err := providers.Build(ctx, cfg.Providers, awsCfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, on := range []string{"s3", "supabase"} {
		data := []byte("seating plan, table " + on + ": Ng, Ávila, O'Brien")
		out := e.create("org1", createReq("org1", "plan-"+on+".csv", data), http.StatusCreated)
		if st, _, body := put(t, out.Upload.Method, out.Upload.URL, out.Upload.Headers, data); st != 200 {
			t.Fatalf("upload: %d %s", st, body)
		}
		e.landAndReplicate(&fleet{providers: built}, out.Backup, data, catalog.StatusAtRisk, on)
		var d api.Download
		r := e.call("GET", "/backups/"+out.Backup.ID+"/download", "org1", nil)
		r.decode(t, &d)
		if r.Status != 200 || d.Provider != on || !bytes.Equal(fetch(t, d.URL), data) {
			t.Fatalf("download of a copy only on %s: %d %s", on, r.Status, r.Body)
		}
	}
	if logs := lw.String(); strings.Contains(logs, sb.ServiceKey) || strings.Contains(logs, string(testSecret)) ||
		strings.Contains(logs, emulator.MotoSecretAccessKey) {
		t.Error("a secret appears in the logs")
	}
}

// TestWireRefusesUnusableAuth: Wire stops, before building anything else,
// when tokens could not be verified: a JWKS URL that keys could be
// replaced on (plain http to another host), or a JWT key secret that
// cannot be read (named in the error).
func TestWireRefusesUnusableAuth(t *testing.T) {
	m := startMoto(t)
	awsCfg, _ := m.AWSConfig(t.Context())
	missing := "arn:aws:secretsmanager:" + emulator.MotoRegion + ":123456789012:secret:absent-jwt"
	cases := []struct {
		name string
		mod  func(*config.API)
		want string
	}{
		{"jwks over plain http", func(c *config.API) { c.JWKSURL = "http://example.supabase.co/auth/v1/.well-known/jwks.json" }, "API_JWT_JWKS_URL must be https"},
		{"key secret missing", func(c *config.API) { c.JWTSecretARN = missing }, missing},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var cfg config.API
			cfg.JWTIssuer = testIssuer
			c.mod(&cfg)
			lw := &lockedWriter{w: &bytes.Buffer{}}
			h, err := api.Wire(t.Context(), cfg, api.Env{}, awsCfg, slog.New(slog.NewJSONHandler(lw, nil)), nil)
			if err == nil || h != nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Wire = %v, %v; want an error saying %q", h, err, c.want)
			}
		})
	}
}
