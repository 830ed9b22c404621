package health

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/wedsync/backup-replication/infra/emulator"
	"github.com/wedsync/backup-replication/shared/api"
	"github.com/wedsync/backup-replication/shared/breaker"
	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/config"
	"github.com/wedsync/backup-replication/shared/policy"
	"github.com/wedsync/backup-replication/shared/providers"
	"github.com/wedsync/backup-replication/shared/replicate"
	"github.com/wedsync/backup-replication/shared/storage"
)

const standbyName = "s3-standby"

// withStandby adds the policy's standby to w: an S3 bucket on moto
// ("s3-standby", in s3's failure domain), its breaker, and a queue of its
// own in Config.Queues (which no replicate deployment reads: anything sent
// there would be lost work). wrap, when set, decorates the standby provider
// the handler uses. It rebuilds w.h and returns the queue's URL.
func (w *world) withStandby(wrap func(storage.Provider) storage.Provider) string {
	w.t.Helper()
	bucket := "standby-" + randHex()
	if _, err := w.s3.CreateBucket(w.ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		w.t.Fatal(err)
	}
	ps, err := providers.Build(w.ctx, config.Providers{Standby: config.S3{Name: standbyName, Bucket: bucket,
		Region: emulator.MotoRegion, Endpoint: moto.URL, UsePathStyle: true, AccessKeyID: emulator.MotoAccessKeyID,
		SecretAccessKey: emulator.MotoSecretAccessKey}}, w.awsCfg, nil)
	if err != nil {
		w.t.Fatal(err)
	}
	w.direct[standbyName] = ps[standbyName]
	w.providers[standbyName] = ps[standbyName]
	if wrap != nil {
		w.providers[standbyName] = wrap(ps[standbyName])
	}
	pol := testPolicy
	pol.Providers = append(append([]policy.Provider(nil), testPolicy.Providers...),
		policy.Provider{Name: standbyName, Role: policy.RoleStandby, Cloud: "aws", Domain: "replica", Order: 4})
	if w.breakers[standbyName], err = breaker.New(breaker.NewMemoryStore(), breaker.Settings{Name: standbyName}); err != nil {
		w.t.Fatal(err)
	}
	q := w.queue("standby-" + randHex())
	w.queues[standbyName] = Queue{URL: q}
	w.cfg.Providers = pol.Names()
	w.cfg.Queues = w.queues
	if w.h, err = New(w.cfg, Deps{Providers: w.providers, Breakers: w.breakers, Catalog: w.cat, Policy: pol,
		Store: w.store, Alerts: w.alerts, Queues: w.sqs, Landing: replicate.NewLanding(w.s3, w.landing, moto.URL),
		Logger: slog.New(slog.NewJSONHandler(w.logs, nil))}); err != nil {
		w.t.Fatal(err)
	}
	return q
}

// Reconcile queues nothing for the standby, which takes copies only on
// failover: not a missing standby copy, and not a FAILED one either (no
// replicate deployment reads a standby queue). The providers' own missing
// copies are still queued.
func TestReconcileQueuesNothingForTheStandby(t *testing.T) {
	w := newWorld(t, func(c *Config) { c.ReconcileEvery = time.Hour; c.ReconcileGrace = time.Minute })
	standbyQueue := w.withStandby(nil)
	missing := w.backup(payload(1200), time.Hour, "supabase", "s3")
	failedStandby := w.backup(payload(1300), time.Hour, "supabase", "s3")
	w.replica(failedStandby, standbyName, catalog.ReplicaFailed) // a failover copy for gcs that did not make it
	if r := w.round(standbyName); r.State != StateUp {
		t.Fatalf("standby not probed up: %+v", r)
	}
	w.h.Round(w.ctx)

	rep := w.h.Maintain(w.ctx)
	if rep.Reconcile == nil || rep.Reconcile.Queued != 2 || rep.Reconcile.Repaired != 0 || rep.Reconcile.Failed != 0 {
		t.Fatalf("reconcile: %+v, errors %v", rep.Reconcile, rep.Errors)
	}
	if gcs := w.events("gcs"); len(gcs) != 2 {
		t.Errorf("gcs queue: %+v, want both backups' gcs copies", gcs)
	}
	if sent := w.drain(standbyQueue); len(sent) != 0 {
		t.Errorf("%d messages queued for the standby: %v", len(sent), sent)
	}
	if _, err := w.cat.GetReplica(w.ctx, missing.ID, standbyName); !errors.Is(err, catalog.ErrNotFound) {
		t.Errorf("a standby copy was made for a backup that needs none: %v", err)
	}
	if r, _ := w.cat.GetReplica(w.ctx, failedStandby.ID, standbyName); r.State != catalog.ReplicaFailed {
		t.Errorf("failed standby copy touched by reconcile: %+v", r)
	}
}

// expiring is the standby as scrubbing meets it while the replicate
// function expires its copy after backfill: the record becomes DELETED and
// the object goes just before scrubbing reads it.
type expiring struct {
	storage.Provider
	expire func(key string)
}

func (e expiring) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	e.expire(key)
	return e.Provider.Get(ctx, key, offset, length)
}

// Scrubbing reads only verified copies: a DELETED standby copy (expired
// after backfill) is not read, and one that expires while it is being
// read is no finding either: nothing is counted missing, marked FAILED,
// repaired or alerted.
func TestScrubSkipsDeletedCopies(t *testing.T) {
	w := newWorld(t, scrubbing)
	var racing catalog.Backup
	w.withStandby(func(p storage.Provider) storage.Provider {
		return expiring{Provider: p, expire: func(key string) {
			if key == racing.LandingKey {
				w.replica(racing, standbyName, catalog.ReplicaDeleted)
				if err := w.direct[standbyName].Delete(w.ctx, key); err != nil {
					t.Error(err)
				}
			}
		}}
	})
	expired := w.backup(payload(900), time.Hour, "supabase", "s3", "gcs", standbyName)
	w.replica(expired, standbyName, catalog.ReplicaDeleted)
	if err := w.direct[standbyName].Delete(w.ctx, expired.LandingKey); err != nil {
		t.Fatal(err)
	}
	racing = w.backup(payload(1000), time.Hour, "supabase", "s3", "gcs", standbyName)
	w.h.Round(w.ctx)
	w.alertsSent()

	rep := w.h.Maintain(w.ctx)
	sc := rep.Scrub
	if sc.Missing != 0 || sc.Corrupt != 0 || sc.Queued != 0 || sc.Repaired != 0 || sc.Backups != 2 {
		t.Fatalf("scrub: %+v, errors %v", sc, rep.Errors)
	}
	if sc.Checked != 7 { // 3 + 3 provider copies, and the standby copy read as it expired
		t.Errorf("checked %d copies, want 7: %+v", sc.Checked, sc)
	}
	for _, b := range []catalog.Backup{expired, racing} {
		if r, _ := w.cat.GetReplica(w.ctx, b.ID, standbyName); r.State != catalog.ReplicaDeleted {
			t.Errorf("expired standby copy of %s: %+v", b.ID, r)
		}
		if got, _ := w.cat.GetBackup(w.ctx, b.ID); got.Status != catalog.StatusProtected {
			t.Errorf("backup %s is %s", b.ID, got.Status)
		}
	}
	if a := w.alertsSent(); len(a) != 0 {
		t.Errorf("alerts: %+v", a)
	}
	if strings.Contains(w.logs.String(), "copy failed scrubbing") {
		t.Errorf("an expired standby copy was logged as a scrub failure:\n%s", w.logs.String())
	}
}

// The standby is probed like every provider when S3_STANDBY_* is set: it
// shows down when its bucket is unreachable, so GET /providers, /status
// and downloads (the api's StatusReader) skip it.
func TestStandbyIsProbed(t *testing.T) {
	w := newWorld(t, nil)
	env := w.env
	env["HEALTH_SINGLE_ROUND"] = "true"
	env["HEALTH_DOWN_AFTER"] = "1"
	env["S3_STANDBY_BUCKET"] = "no-such-standby-" + randHex() // unreachable: the canary is refused
	env["S3_STANDBY_ACCESS_KEY_ID"], env["S3_STANDBY_SECRET_ACCESS_KEY"] = emulator.MotoAccessKeyID, emulator.MotoSecretAccessKey
	c, err := config.LoadHealth(config.Map(env))
	if err != nil {
		t.Fatal(err)
	}
	e, err := LoadEnv(config.Map(env))
	if err != nil {
		t.Fatal(err)
	}
	h, err := Wire(w.ctx, c, e, w.awsCfg, slog.New(slog.DiscardHandler), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(h.cfg.Providers, ","); got != "supabase,s3,gcs,s3-standby" {
		t.Fatalf("probed providers: %s", got)
	}
	rep, err := h.Handle(w.ctx, events.EventBridgeEvent{})
	if err != nil || len(rep.Rounds) != 1 {
		t.Fatalf("handle: %v %+v", err, rep)
	}
	if sb := pick(rep.Rounds[0], standbyName); sb.ProbeOK || sb.State != StateDown {
		t.Fatalf("standby with a missing bucket: %+v", sb)
	}
	src, err := APIHealth(dynamodb.NewFromConfig(w.awsCfg), c.Tables.Health, c.Policy.Names(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ph, err := src.ProviderHealth(w.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ph[standbyName].State != api.HealthDown || ph["s3"].State != api.HealthUp {
		t.Errorf("health the api reads: standby %+v, s3 %+v", ph[standbyName], ph["s3"])
	}
}
