package replicate

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/wedsync/backup-replication/infra/emulator"
	"github.com/wedsync/backup-replication/shared/breaker"
	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/config"
	"github.com/wedsync/backup-replication/shared/credentials/credtest"
	"github.com/wedsync/backup-replication/shared/validate"
)

// A gcs deployment whose service-account key was revoked: Wire still
// starts, its cold-start canary finds the credentials refused (reported
// once to the WithOnInvalid hook and logged), and the message is treated
// as if gcs's breaker were open: the copy goes to the standby, the message
// waits in gcs's queue, nothing is counted failed (no FAILED replica, no
// failure in gcs's shared breaker, which stays closed).
func TestWireRefusesWorkWithInvalidCredentials(t *testing.T) {
	e := newEnv(t)
	e.bucket("standby")
	q := e.queue()
	ctx := t.Context()
	awsCfg, _ := moto.AWSConfig(ctx)
	table := "breakers-" + randomHex(4)
	db := dynamodb.NewFromConfig(awsCfg)
	if err := breaker.EnsureTable(ctx, db, table); err != nil {
		t.Fatal(err)
	}
	fake, err := emulator.StartGCS()
	emulator.Require(t, err)
	t.Cleanup(func() { fake.Close() })
	if err := fake.CreateBucket("offsite"); err != nil {
		t.Fatal(err)
	}
	google, err := credtest.NewGoogle(fake.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(google.Close)
	const sa = "replicator@wedsync-test.iam.gserviceaccount.com"
	key, err := google.ServiceAccount("wedsync-test", sa)
	if err != nil {
		t.Fatal(err)
	}
	google.DeleteKey(sa, google.Keys(sa)[0]) // revoked before the function starts

	cfg, err := config.LoadReplicate(config.Map(map[string]string{
		"AWS_REGION": emulator.MotoRegion, "AWS_ENDPOINT_URL": moto.URL, "LANDING_BUCKET": e.landing,
		"BACKUPS_TABLE": e.store.Config().BackupsTable, "REPLICAS_TABLE": e.store.Config().ReplicasTable,
		"BREAKERS_TABLE": table, "QUEUE_URL": q.url, "PROVIDER": "gcs", "REPLICATE_REQUIRE_SEAL": "false",
		"GCS_BUCKET": "offsite", "GCS_ENDPOINT": google.URL, "GCS_CREDENTIALS_JSON": key,
		"S3_STANDBY_BUCKET": e.real("standby"),
	}))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var invalid []validate.Result
	h, err := Wire(ctx, cfg, awsCfg, slog.New(slog.NewJSONHandler(e.logs, nil)), e.emf,
		WithConfig(func(c *Config) { c.ParkMin, c.ParkMax = time.Second, time.Second }),
		WithOnInvalid(func(_ context.Context, r validate.Result) { mu.Lock(); invalid = append(invalid, r); mu.Unlock() }))
	if err != nil {
		t.Fatalf("Wire must start even when a provider's credentials are refused: %v", err)
	}
	mu.Lock()
	if len(invalid) != 1 || invalid[0].Provider != "gcs" || invalid[0].Kind != "unauthorized" ||
		!strings.Contains(invalid[0].Message, "credentials") {
		t.Fatalf("OnInvalid calls at cold start: %+v", invalid)
	}
	mu.Unlock()
	if !hasLine(e.logs, "provider unusable, refusing work", "gcs") {
		t.Fatalf("no log line says gcs is refused: %v", e.logs.lines())
	}

	b := e.upload(randomBytes(4096), "")
	if failed := handle(t, h, e.message(b, 1)); len(failed) != 0 {
		t.Fatalf("message failed (%v) instead of waiting: %v", failed, e.logs.lines())
	}
	if r := e.replica(b, "s3-standby"); r.State != catalog.ReplicaVerified || r.Note != "standing in for gcs" {
		t.Fatalf("standby replica %+v", r)
	}
	if r, err := e.store.GetReplica(ctx, b.ID, "gcs"); err == nil && r.State == catalog.ReplicaFailed {
		t.Fatalf("gcs replica counted failed: %+v", r)
	} else if err != nil && !errors.Is(err, catalog.ErrNotFound) {
		t.Fatal(err)
	}
	if st := e.backup(b.ID).Status; st == catalog.StatusFailed {
		t.Fatalf("backup %s", st)
	}
	msgs := q.receive(5 * time.Second)
	if len(msgs) != 1 {
		t.Fatalf("%d messages waiting in gcs's queue, want 1", len(msgs))
	}
	if ev, err := ParseEvent(msgs[0].Body); err != nil || ev.BackupID != b.ID {
		t.Fatalf("waiting message %v %v", ev, err)
	}
	store, _ := breaker.NewDynamoStore(db, table)
	brk, _ := breaker.New(store, breaker.Settings{Name: "gcs"})
	if s, err := brk.State(ctx); err != nil || s.State != breaker.StateClosed || s.Counts.TotalFailures != 0 {
		t.Fatalf("gcs breaker after a refusal by its guard: %+v %v", s, err)
	}
}

// hasLine reports whether a log line has msg and provider.
func hasLine(b *lockedBuffer, msg, provider string) bool {
	for _, l := range b.lines() {
		if l["msg"] == msg && l["provider"] == provider {
			return true
		}
	}
	return false
}
