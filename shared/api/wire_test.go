package api_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/wedsync/backup-replication/infra/emulator"
	"github.com/wedsync/backup-replication/shared/api"
	"github.com/wedsync/backup-replication/shared/breaker"
	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/config"
	healthtable "github.com/wedsync/backup-replication/shared/health"
	"github.com/wedsync/backup-replication/shared/providers"
	"github.com/wedsync/backup-replication/shared/secret"
	"github.com/wedsync/backup-replication/shared/storage/supabase"
)

// TestWire builds the API the way functions/api does, from variables only,
// against moto, the Supabase emulator and fake-gcs-server, and follows one
// backup from registration to a download from each provider.
func TestWire(t *testing.T) {
	m := startMoto(t)
	awsCfg, _ := m.AWSConfig(t.Context())
	sb, err := emulator.StartSupabase(t.TempDir())
	emulator.Require(t, err)
	t.Cleanup(func() { sb.Close() })
	g, err := emulator.StartGCS()
	emulator.Require(t, err)
	t.Cleanup(func() { g.Close() })

	n := seq.Add(1)
	vars := map[string]string{
		"AWS_REGION": emulator.MotoRegion, "AWS_ENDPOINT_URL": m.URL,
		"LANDING_BUCKET": fmt.Sprintf("wire-landing-%d", n),
		"BACKUPS_TABLE":  fmt.Sprintf("wire-backups-%d", n), "REPLICAS_TABLE": fmt.Sprintf("wire-replicas-%d", n),
		"BREAKERS_TABLE": fmt.Sprintf("wire-breakers-%d", n), "HEALTH_TABLE": fmt.Sprintf("wire-health-%d", n),
		"SUPABASE_URL": sb.URL, "SUPABASE_BUCKET": "primary", "SUPABASE_SERVICE_KEY": sb.ServiceKey,
		"S3_REPLICA_BUCKET":        fmt.Sprintf("wire-replica-%d", n),
		"S3_REPLICA_ACCESS_KEY_ID": emulator.MotoAccessKeyID, "S3_REPLICA_SECRET_ACCESS_KEY": emulator.MotoSecretAccessKey,
		"GCS_BUCKET": "offsite", "GCS_ENDPOINT": g.URL,
		"API_JWT_SECRET": string(testSecret), "API_JWT_ISSUER": testIssuer,
	}
	cfg, err := config.LoadAPI(config.Map(vars))
	if err != nil {
		t.Fatal(err)
	}
	apiEnv, err := api.LoadEnv(config.Map(vars))
	if err != nil {
		t.Fatal(err)
	}
	// The resources template.yaml declares.
	s3c := awss3.NewFromConfig(awsCfg, func(o *awss3.Options) { o.UsePathStyle = true })
	for _, b := range []string{vars["LANDING_BUCKET"], vars["S3_REPLICA_BUCKET"]} {
		if _, err := s3c.CreateBucket(t.Context(), &awss3.CreateBucketInput{Bucket: aws.String(b)}); err != nil {
			t.Fatal(err)
		}
	}
	db := dynamodb.NewFromConfig(awsCfg)
	if err := catalog.EnsureTables(t.Context(), db, catalog.Config{BackupsTable: vars["BACKUPS_TABLE"], ReplicasTable: vars["REPLICAS_TABLE"]}); err != nil {
		t.Fatal(err)
	}
	if err := breaker.EnsureTable(t.Context(), db, vars["BREAKERS_TABLE"]); err != nil {
		t.Fatal(err)
	}
	if err := healthtable.EnsureTable(t.Context(), db, vars["HEALTH_TABLE"]); err != nil {
		t.Fatal(err)
	}
	// The health function found s3 down; gcs and supabase were never probed
	// (their breakers, closed, stand in).
	hs, _ := healthtable.NewStore(db, vars["HEALTH_TABLE"])
	now := time.Now().UTC()
	if _, err := hs.SaveStatus(t.Context(), healthtable.ProviderStatus{Provider: "s3", State: api.HealthDown, Down: true,
		Since: now, CheckedAt: now, Detail: "canary put refused"}, 0); err != nil {
		t.Fatal(err)
	}
	if err := g.CreateBucket("offsite"); err != nil {
		t.Fatal(err)
	}
	sp, err := supabase.New(supabase.Config{URL: sb.URL, ServiceKey: secret.Secret(sb.ServiceKey), Bucket: "primary"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := sp.EnsureBucket(t.Context()); err != nil {
		t.Fatal(err)
	}
	logs := &bytes.Buffer{}
	lw := &lockedWriter{w: logs}
	h, err := api.Wire(t.Context(), cfg, apiEnv, awsCfg, slog.New(slog.NewJSONHandler(lw, nil)),
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.Write([]byte("<h1>dashboard</h1>"))
		}), api.WithHealthTable(healthtable.APIHealth))
	if err != nil {
		t.Fatal(err)
	}
	store, _ := catalog.NewDynamo(db, catalog.Config{BackupsTable: vars["BACKUPS_TABLE"], ReplicasTable: vars["REPLICAS_TABLE"]})
	e := &env{t: t, srv: httptest.NewServer(h), h: h, store: store, s3: s3c, landing: vars["LANDING_BUCKET"], logs: logs}
	t.Cleanup(e.srv.Close)

	if r := e.call("GET", "/", "", nil); r.Status != 200 || !strings.Contains(string(r.Body), "dashboard") {
		t.Fatalf("GET /: %d %s", r.Status, r.Body)
	}
	var ps struct{ Providers []api.ProviderSummary }
	e.call("GET", "/providers", "org1", nil).decode(t, &ps)
	if len(ps.Providers) != 3 {
		t.Fatalf("providers: %+v", ps)
	}
	for _, p := range ps.Providers {
		want := api.HealthUp
		if p.Name == "s3" {
			want = api.HealthDown
		}
		if !p.Configured || !p.Downloadable || p.Health.State != want {
			t.Errorf("provider %+v: want health %s (s3 from the health table, the others from their breakers)", p, want)
		}
	}
	if !waitForLines(lw, "provider checked at cold start", 3) {
		t.Errorf("no cold-start check logged for every provider: %s", lw.String())
	}
	if r := e.call("GET", "/providers/validate", "org1", nil); r.Status != 200 || !strings.HasPrefix(string(r.Body), `{"ok":true`) {
		t.Fatalf("validate: %d %s", r.Status, r.Body)
	}

	data := []byte("Guest list: 112 adults, 9 children, 3 vegan, 1 nut allergy")
	out := e.create("org1", createReq("org1", "guests.csv", data), http.StatusCreated)
	if st, _, body := put(t, out.Upload.Method, out.Upload.URL, out.Upload.Headers, data); st != 200 {
		t.Fatalf("upload: %d %s", st, body)
	}
	if got, ok := e.landed(out.Backup.LandingKey); !ok || !bytes.Equal(got, data) {
		t.Fatal("upload did not land")
	}
	// The replicate function's part, with providers built from the same variables.
	built, err := providers.Build(t.Context(), cfg.Providers, awsCfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.landAndReplicate(&fleet{providers: built}, out.Backup, data, catalog.StatusProtected, "supabase", "s3", "gcs")
	r := e.call("GET", "/backups/"+out.Backup.ID+"/download", "org1", nil)
	var d api.Download
	r.decode(t, &d)
	if r.Status != 200 || d.Provider != "supabase" || !bytes.Equal(fetch(t, d.URL), data) {
		t.Fatalf("download: %d %s", r.Status, r.Body)
	}
	r = e.call("POST", "/backups/"+out.Backup.ID+"/verify", "org1", nil)
	if r.Status != 200 || strings.Contains(string(r.Body), `"ok":false`) {
		t.Fatalf("verify: %d %s", r.Status, r.Body)
	}
	if strings.Contains(lw.String(), sb.ServiceKey) || strings.Contains(lw.String(), string(testSecret)) {
		t.Error("a secret appears in the logs")
	}
}

// waitForLines waits (up to a minute) until w holds n log lines with msg.
func waitForLines(w *lockedWriter, msg string, n int) bool {
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if strings.Count(w.String(), `"msg":"`+msg+`"`) >= n {
			return true
		}
	}
	return false
}

// String returns what was written so far.
func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Sprint(l.w)
}
