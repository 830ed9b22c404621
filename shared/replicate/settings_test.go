package replicate

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/wedsync/backup-replication/infra/emulator"
	"github.com/wedsync/backup-replication/infra/faultproxy"
	"github.com/wedsync/backup-replication/shared/breaker"
	"github.com/wedsync/backup-replication/shared/config"
	"github.com/wedsync/backup-replication/shared/retry"
)

// The breaker and wait settings come from the environment: with
// BREAKER_TRIP_AFTER=2 two failed copies open s3's shared breaker for
// BREAKER_TIMEOUT, and the next message waits PARK_MIN..PARK_MAX.
func TestWireTakesBreakerAndParkSettings(t *testing.T) {
	e := newEnv(t)
	e.bucket("replica")
	q := e.queue()
	awsCfg, _ := moto.AWSConfig(t.Context())
	table := "breakers-" + randomHex(4)
	db := dynamodb.NewFromConfig(awsCfg)
	if err := breaker.EnsureTable(t.Context(), db, table); err != nil {
		t.Fatal(err)
	}
	px, err := faultproxy.Start(moto.URL, faultproxy.Options{Flavor: faultproxy.S3})
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	cfg, err := config.LoadReplicate(config.Map(map[string]string{
		"AWS_REGION": emulator.MotoRegion, "AWS_ENDPOINT_URL": moto.URL, "LANDING_BUCKET": e.landing,
		"BACKUPS_TABLE": e.store.Config().BackupsTable, "REPLICAS_TABLE": e.store.Config().ReplicasTable,
		"BREAKERS_TABLE": table, "QUEUE_URL": q.url, "PROVIDER": "s3", "REPLICATE_REQUIRE_SEAL": "false",
		"S3_REPLICA_BUCKET": e.real("replica"), "S3_REPLICA_ENDPOINT": px.URL,
		"BREAKER_TRIP_AFTER": "2", "BREAKER_TIMEOUT": "10m", "PARK_MIN": "3s", "PARK_MAX": "3s",
	}))
	if err != nil {
		t.Fatal(err)
	}
	h, err := Wire(t.Context(), cfg, awsCfg, slog.New(slog.NewJSONHandler(e.logs, nil)), e.emf,
		WithConfig(func(c *Config) { c.Retry = retry.Policy{MaxAttempts: 1} }))
	if err != nil {
		t.Fatal(err)
	}
	if err := px.Set(faultproxy.Fault{Mode: faultproxy.Error5xx, Path: "/backups/"}); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if failed := handle(t, h, e.message(e.upload(randomBytes(2048), ""), 1)); len(failed) != 1 {
			t.Fatalf("copy %d through a failing provider: failed %v", i+1, failed)
		}
	}
	store, _ := breaker.NewDynamoStore(db, table)
	other, _ := breaker.New(store, cfg.Breakers.Settings("s3", nil))
	s, err := other.State(t.Context())
	if err != nil || s.State != breaker.StateOpen || s.RetryAt.Sub(s.OpenedAt) != 10*time.Minute {
		t.Fatalf("s3's breaker after 2 failures: %+v %v, want open for 10m", s, err)
	}
	if failed := handle(t, h, e.message(e.upload(randomBytes(2048), ""), 1)); len(failed) != 0 {
		t.Fatalf("message while the breaker is open: failed %v", failed)
	}
	parked := false
	for _, l := range e.logs.lines() {
		if l["op"] == "park" && l["delay_ms"] == float64(3000) {
			parked = true
		}
	}
	if !parked {
		t.Fatalf("no message parked for PARK_MIN..PARK_MAX (3s): %v", e.logs.lines())
	}
}

// Every line a wired deployment writes names its provider once, as the
// Lambda's logger is passed (without a provider of its own): the handler's
// lines, a retried transfer's, the provider decorator's and the breaker's.
func TestLogLinesNameTheProviderOnce(t *testing.T) {
	e := newEnv(t)
	e.bucket("replica")
	e.bucket("standby")
	awsCfg, _ := moto.AWSConfig(t.Context())
	table := "breakers-" + randomHex(4)
	if err := breaker.EnsureTable(t.Context(), dynamodb.NewFromConfig(awsCfg), table); err != nil {
		t.Fatal(err)
	}
	px, err := faultproxy.Start(moto.URL, faultproxy.Options{Flavor: faultproxy.S3})
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	cfg, err := config.LoadReplicate(config.Map(map[string]string{
		"AWS_REGION": emulator.MotoRegion, "AWS_ENDPOINT_URL": moto.URL, "LANDING_BUCKET": e.landing,
		"BACKUPS_TABLE": e.store.Config().BackupsTable, "REPLICAS_TABLE": e.store.Config().ReplicasTable,
		"BREAKERS_TABLE": table, "PROVIDER": "s3", "S3_REPLICA_BUCKET": e.real("replica"), "S3_REPLICA_ENDPOINT": px.URL,
		"S3_STANDBY_BUCKET": e.real("standby"),
	}))
	if err != nil {
		t.Fatal(err)
	}
	raw := &lockedBuffer{}
	h, err := Wire(t.Context(), cfg, awsCfg, slog.New(slog.NewJSONHandler(raw, &slog.HandlerOptions{Level: slog.LevelDebug})), e.emf,
		WithConfig(func(c *Config) { c.Retry = retry.Policy{Base: time.Millisecond, MaxAttempts: 3} }))
	if err != nil {
		t.Fatal(err)
	}
	if err := px.Set(faultproxy.Fault{Mode: faultproxy.Error5xx, Methods: []string{"PUT"}, Path: "/backups/", Count: 1}); err != nil {
		t.Fatal(err)
	}
	b := e.seal(e.upload(randomBytes(4096), ""), randomBytes(4096+61))
	if failed := handle(t, h, e.sealedMessage(b, 1)); len(failed) != 0 {
		t.Fatalf("failed %v", failed)
	}
	raw.mu.Lock()
	text := raw.buf.String()
	raw.mu.Unlock()
	retried := false
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		if n := strings.Count(line, `"provider":`); n != 1 {
			t.Errorf("%d provider keys in %s", n, line)
		}
		retried = retried || strings.Contains(line, `"msg":"transfer retry"`)
	}
	if !retried {
		t.Fatalf("no retried transfer in the logs:\n%s", text)
	}
}
