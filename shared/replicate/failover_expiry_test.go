package replicate

import (
	"errors"
	"testing"
	"time"

	"github.com/wedsync/backup-replication/infra/faultproxy"
	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/retry"
	"github.com/wedsync/backup-replication/shared/storage"
)

// When the standby cannot delete its expired copy (every DELETE fails),
// the copy stays VERIFIED rather than being recorded DELETED over bytes
// still stored; the next delivery, with the standby healthy, expires it.
func TestStandbyCopyNotDeletableStaysVerifiedUntilDeleted(t *testing.T) {
	e := newEnv(t)
	for _, name := range []string{"replica", "replica-b", "standby"} {
		e.bucket(name)
	}
	px, err := faultproxy.Start(moto.URL, faultproxy.Options{Flavor: faultproxy.S3})
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	q := e.queue()
	clk := &clock{t: time.Now()}
	brk := openBreaker(t, "s3", clk)
	standby := e.s3Provider("s3-standby", "standby", px.URL)
	h := e.handlerWith(e.streamingS3("replica"), func(c *Config) {
		c.QueueURL, c.ParkMin, c.ParkMax = q.url, time.Second, time.Second
		c.Retry = retry.Policy{Base: 5 * time.Millisecond, MaxAttempts: 3}
	}, func(d *Deps) { d.Gate, d.Queue, d.Now, d.Standby, d.Policy = brk, q.sqs, clk.Now, standby, testTable })
	b := e.upload(randomBytes(64<<10), "")
	for _, p := range []storage.Provider{e.s3Provider("s3-copy", "replica-b", moto.URL), e.gcsProvider()} {
		if failed := handle(t, e.handlerWith(p, nil, func(d *Deps) { d.Policy = testTable }), e.message(b, 1)); len(failed) != 0 {
			t.Fatalf("%s: %v", p.Name(), failed)
		}
	}
	if failed := handle(t, h, e.message(b, 1)); len(failed) != 0 {
		t.Fatalf("while s3 is down: failed %v", failed)
	}
	if sb := e.replica(b, "s3-standby"); sb.State != catalog.ReplicaVerified {
		t.Fatalf("standby replica %+v", sb)
	}
	waiting := q.receive(5 * time.Second)
	if len(waiting) == 0 {
		t.Fatal("s3's message is not waiting in its queue")
	}

	// s3 recovers, but the standby refuses every DELETE.
	if err := px.Set(faultproxy.Fault{Mode: faultproxy.Error5xx, Methods: []string{"DELETE"}}); err != nil {
		t.Fatal(err)
	}
	clk.advance(2 * time.Minute)
	if failed := handle(t, h, waiting[0]); len(failed) != 0 {
		t.Fatalf("backfill failed: %v", failed)
	}
	if r := e.replica(b, "s3"); r.State != catalog.ReplicaVerified {
		t.Fatalf("s3 replica after backfill %+v", r)
	}
	if sb := e.replica(b, "s3-standby"); sb.State != catalog.ReplicaVerified {
		t.Fatalf("standby copy could not be deleted but its record is %s", sb.State)
	}
	if _, err := standby.Stat(t.Context(), b.LandingKey); err != nil {
		t.Fatalf("standby copy: %v", err)
	}
	if st := px.Stats(); st.Injected < 3 {
		t.Errorf("DELETE refused %d times, want the retries (3)", st.Injected)
	}

	// The standby heals; a later delivery expires the copy.
	if err := px.Set(faultproxy.Fault{}); err != nil {
		t.Fatal(err)
	}
	if failed := handle(t, h, e.message(b, 1)); len(failed) != 0 {
		t.Fatalf("duplicate delivery: %v", failed)
	}
	if sb := e.replica(b, "s3-standby"); sb.State != catalog.ReplicaDeleted {
		t.Fatalf("standby replica after the standby healed %+v", sb)
	}
	if _, err := standby.Stat(t.Context(), b.LandingKey); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("standby copy still there: %v", err)
	}
}
