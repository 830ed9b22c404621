package replicate

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/wedsync/backup-replication/infra/emulator"
	"github.com/wedsync/backup-replication/shared/breaker"
	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/config"
	"github.com/wedsync/backup-replication/shared/policy"
	"github.com/wedsync/backup-replication/shared/storage"
)

// While s3's breaker is open its copy goes to the standby (noted as
// standing in for s3), so the backup is PROTECTED with s3-copy and gcs;
// s3's message waits. When s3 recovers it is backfilled and the standby
// copy is expired, or kept when the policy says so.
func TestFailoverToStandbyThenBackfill(t *testing.T) {
	for _, keep := range []bool{false, true} {
		t.Run(fmt.Sprintf("keepAfterBackfill=%v", keep), func(t *testing.T) {
			e := newEnv(t)
			for _, name := range []string{"replica", "replica-b", "standby"} {
				e.bucket(name)
			}
			table := testTable
			table.Standby.KeepAfterBackfill = keep
			q := e.queue()
			clk := &clock{t: time.Now()}
			brk := openBreaker(t, "s3", clk)
			standby := e.s3Provider("s3-standby", "standby", moto.URL)
			s3 := e.streamingS3("replica")
			h := e.handlerWith(s3, func(c *Config) { c.QueueURL, c.ParkMin, c.ParkMax = q.url, time.Second, time.Second },
				func(d *Deps) {
					d.Gate, d.Queue, d.Now, d.Standby, d.Policy = brk, q.sqs, clk.Now, standby, table
				})
			data := randomBytes(150 << 10)
			b := e.upload(data, "")
			for _, p := range []storage.Provider{e.s3Provider("s3-copy", "replica-b", moto.URL), e.gcsProvider()} {
				if failed := handle(t, e.handlerWith(p, nil, func(d *Deps) { d.Policy = table }), e.message(b, 1)); len(failed) != 0 {
					t.Fatalf("%s: %v", p.Name(), failed)
				}
			}
			if st := e.backup(b.ID); st.Status != catalog.StatusAtRisk {
				t.Fatalf("two copies: %s %q", st.Status, st.StatusReason)
			}

			// s3 down: the standby takes the copy; the message waits.
			for delivery := 1; delivery <= 2; delivery++ {
				if failed := handle(t, h, e.message(b, 1)); len(failed) != 0 {
					t.Fatalf("delivery %d while s3 is down: failed %v", delivery, failed)
				}
			}
			sb := e.replica(b, "s3-standby")
			if sb.State != catalog.ReplicaVerified || sb.Note != "standing in for s3" || sb.Attempts != 1 {
				t.Fatalf("standby replica %+v", sb)
			}
			if got := readSum(t, standby, b.LandingKey); got != b.SHA256 {
				t.Fatalf("standby holds %q", got)
			}
			if _, err := e.store.GetReplica(t.Context(), b.ID, "s3"); !errors.Is(err, catalog.ErrNotFound) {
				t.Fatalf("s3 replica touched while its breaker was open: %v", err)
			}
			if st := e.backup(b.ID); st.Status != catalog.StatusProtected {
				t.Fatalf("with the standby: %s %q", st.Status, st.StatusReason)
			}
			waiting := q.receive(5 * time.Second)
			if len(waiting) == 0 {
				t.Fatal("s3's message is not waiting in its queue")
			}

			// s3 back: a trial after the cooldown backfills it.
			clk.advance(2 * time.Minute)
			if failed := handle(t, h, waiting[0]); len(failed) != 0 {
				t.Fatalf("backfill failed: %v", failed)
			}
			if r := e.replica(b, "s3"); r.State != catalog.ReplicaVerified || r.Note != "" {
				t.Fatalf("s3 replica after backfill %+v", r)
			}
			if s, _ := brk.State(t.Context()); s.State != breaker.StateClosed {
				t.Errorf("breaker after backfill: %s", s.StateName)
			}
			sb = e.replica(b, "s3-standby")
			_, statErr := standby.Stat(t.Context(), b.LandingKey)
			if keep {
				if sb.State != catalog.ReplicaVerified || statErr != nil {
					t.Fatalf("kept standby copy: %+v, stat %v", sb, statErr)
				}
			} else if sb.State != catalog.ReplicaDeleted || !errors.Is(statErr, storage.ErrNotFound) || sb.Note == "" {
				t.Fatalf("expired standby copy: %+v, stat %v", sb, statErr)
			}
			st := e.backup(b.ID)
			reps, _ := e.store.Replicas(t.Context(), b.ID)
			res := policy.Evaluate(st, reps, table)
			if st.Status != catalog.StatusProtected || !slices.Contains(res.Copies, "s3") {
				t.Fatalf("after backfill: %s %q copies %v", st.Status, st.StatusReason, res.Copies)
			}
		})
	}
}

// One standby copy stands in for every provider that is down: the note
// names them all, and the copy is made once.
func TestStandbyStandsInForTwo(t *testing.T) {
	e := newEnv(t)
	e.bucket("replica")
	e.bucket("standby")
	clk := &clock{t: time.Now()}
	standby := e.s3Provider("s3-standby", "standby", moto.URL)
	b := e.upload(randomBytes(2048), "")
	for _, p := range []storage.Provider{e.streamingS3("replica"), e.s3Provider("s3-copy", "replica", moto.URL)} {
		h := e.handlerWith(p, nil, func(d *Deps) { d.Gate, d.Standby, d.Now = openBreaker(t, p.Name(), clk), standby, clk.Now })
		if failed := handle(t, h, e.message(b, 1)); len(failed) != 1 {
			t.Fatalf("%s: failed %v, want the message back (no queue to re-send to)", p.Name(), failed)
		}
	}
	sb := e.replica(b, "s3-standby")
	if sb.State != catalog.ReplicaVerified || sb.Note != "standing in for s3, s3-copy" || sb.Attempts != 1 {
		t.Fatalf("standby replica %+v", sb)
	}
}

// The production wiring: the breaker shared through BREAKERS_TABLE (opened
// here by another process's breaker on the same table), the queue from
// QUEUE_URL and the standby from S3_STANDBY_*: the copy fails over and the
// message waits in the queue.
func TestWireSharesBreakerAndFailsOver(t *testing.T) {
	e := newEnv(t)
	e.bucket("replica")
	e.bucket("standby")
	q := e.queue()
	awsCfg, _ := moto.AWSConfig(t.Context())
	table := "breakers-" + randomHex(4)
	db := dynamodb.NewFromConfig(awsCfg)
	if err := breaker.EnsureTable(t.Context(), db, table); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.LoadReplicate(config.Map(map[string]string{
		"AWS_REGION": emulator.MotoRegion, "AWS_ENDPOINT_URL": moto.URL, "LANDING_BUCKET": e.landing,
		"BACKUPS_TABLE": e.store.Config().BackupsTable, "REPLICAS_TABLE": e.store.Config().ReplicasTable,
		"BREAKERS_TABLE": table, "QUEUE_URL": q.url, "PROVIDER": "s3", "REPLICATE_REQUIRE_SEAL": "false",
		"S3_REPLICA_BUCKET": e.real("replica"), "S3_STANDBY_BUCKET": e.real("standby"),
	}))
	if err != nil {
		t.Fatal(err)
	}
	h, err := Wire(t.Context(), cfg, awsCfg, slog.New(slog.NewJSONHandler(e.logs, nil)), e.emf,
		WithConfig(func(c *Config) { c.ParkMin, c.ParkMax = time.Second, time.Second }))
	if err != nil {
		t.Fatal(err)
	}
	store, _ := breaker.NewDynamoStore(db, table)
	other, _ := breaker.New(store, breaker.Settings{Name: "s3"})
	for range breaker.DefaultTripAfter {
		done, err := other.Allow(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		done(storage.NewError("put", "s3", "k", storage.Transient, errors.New("503")))
	}
	b := e.upload(randomBytes(4096), "")
	if failed := handle(t, h, e.message(b, 1)); len(failed) != 0 {
		t.Fatalf("failed %v: %v", failed, e.logs.lines())
	}
	if r := e.replica(b, "s3-standby"); r.State != catalog.ReplicaVerified || r.Note != "standing in for s3" {
		t.Fatalf("standby replica %+v", r)
	}
	if _, err := e.store.GetReplica(t.Context(), b.ID, "s3"); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("s3 replica touched: %v", err)
	}
	msgs := q.receive(5 * time.Second)
	if len(msgs) != 1 {
		t.Fatalf("%d messages waiting in s3's queue, want 1", len(msgs))
	}
	if ev, err := ParseEvent(msgs[0].Body); err != nil || ev.BackupID != b.ID {
		t.Fatalf("waiting message %v %v", ev, err)
	}
}
