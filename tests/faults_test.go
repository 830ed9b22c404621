package tests

// Fault injection at the network edge (issue 5, §7): a faultproxy in front
// of each replica provider's emulator, the real replicate handlers, real
// SQS queues with their dead-letter queues, real shared breakers in
// DynamoDB. See faults_helpers_test.go for the world and for what is
// played by the test (the event source mappings, and in the redrive test
// the health function's redrive).

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wedsync/backup-replication/infra/faultproxy"
	"github.com/wedsync/backup-replication/shared/breaker"
	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/config"
	"github.com/wedsync/backup-replication/shared/replicate"
	"github.com/wedsync/backup-replication/shared/retry"
	"github.com/wedsync/backup-replication/shared/storage"
)

// faultSize is backup i's size: empty, exactly 256 KiB, or anything in
// between.
func faultSize(i int) int64 {
	switch i % 50 {
	case 0:
		return 0
	case 1:
		return 256 << 10
	}
	return int64(1 + (i*7919)%(256<<10))
}

// Each replica provider is down in turn (every request answered 503 at
// its proxy) while 100 backups land. Its breaker opens, its copies go to
// the standby, so every backup is PROTECTED during the outage, and its
// messages wait in its queue; when it recovers it is backfilled and the
// standby copies expire. Nothing is lost: every backup ends with its three
// own copies, each read back and hashed.
func TestEachProviderDownInTurn(t *testing.T) {
	const backups = 100
	w := newFaultWorld(t, worldOptions{Standby: true, Breaker: breaker.Settings{Timeout: 2 * time.Second},
		Config: func(c *replicate.Config) {
			c.ParkMin, c.ParkMax = time.Second, 3*time.Second
			c.VisibilityBase, c.VisibilityLimit = time.Second, 8*time.Second
			c.Retry = retry.Policy{Base: 20 * time.Millisecond, Cap: 200 * time.Millisecond, MaxAttempts: 3, Margin: time.Second}
		}})
	w.startPollers()
	start := time.Now()
	var all []landed
	down := map[string][]landed{} // the backups that landed while each provider was down
	recovered := map[string]time.Time{}
	backfill := map[string]time.Duration{}
	// trackBackfill notes when each recovered provider holds every copy it
	// missed during its outage.
	trackBackfill := func() {
		for p, at := range recovered {
			if _, ok := backfill[p]; ok {
				continue
			}
			complete := true
			for _, b := range down[p] {
				if r := w.replicas(b.ID)[p]; r.State != catalog.ReplicaVerified {
					complete = false
					break
				}
			}
			if complete {
				backfill[p] = time.Since(at)
			}
		}
	}
	for phase, p := range replicaProviders {
		if err := w.proxies[p].Set(faultproxy.Fault{Mode: faultproxy.Error5xx, Status: 503}); err != nil {
			t.Fatal(err)
		}
		n := backups / len(replicaProviders)
		if phase == 0 {
			n += backups % len(replicaProviders)
		}
		for range n {
			b := w.upload(len(all), faultSize(len(all)))
			all = append(all, b)
			down[p] = append(down[p], b)
		}
		// The outage costs no protection: the standby stands in.
		w.waitUntil(p+" down: its backups PROTECTED through the standby", 8*time.Minute, 2*time.Second, func() (bool, string) {
			trackBackfill()
			for _, b := range down[p] {
				got, err := w.store.GetBackup(t.Context(), b.ID)
				if err != nil || got.Status != catalog.StatusProtected {
					return false, fmt.Sprintf("%s is %s (%s)", b.ID, got.Status, got.StatusReason)
				}
			}
			return true, ""
		})
		for _, b := range down[p] {
			sb := w.replicas(b.ID)[config.NameS3Standby]
			if sb.State != catalog.ReplicaVerified || !strings.Contains(sb.Note, "standing in for "+p) {
				t.Fatalf("%s while %s is down: standby replica %+v", b.ID, p, sb)
			}
		}
		if w.opened(p) == 0 {
			t.Fatalf("%s's breaker never opened while it was down", p)
		}
		t.Logf("%s down: %d backups PROTECTED through the standby after %s; breaker opened %d times",
			p, len(down[p]), time.Since(start).Round(time.Second), w.opened(p))
		w.proxies[p].Pass()
		recovered[p] = time.Now()
	}
	last := recovered[replicaProviders[len(replicaProviders)-1]]

	// Full protection: every backup PROTECTED on its own three providers,
	// no standby copy left, the queues empty.
	w.waitUntil("backfill after recovery", 8*time.Minute, 2*time.Second, func() (bool, string) {
		trackBackfill()
		for _, b := range all {
			reps := w.replicas(b.ID)
			for _, p := range replicaProviders {
				if reps[p].State != catalog.ReplicaVerified {
					return false, fmt.Sprintf("%s on %s is %q", b.ID, p, reps[p].State)
				}
			}
			if sb, ok := reps[config.NameS3Standby]; ok && sb.State != catalog.ReplicaDeleted {
				return false, fmt.Sprintf("%s's standby copy is %s", b.ID, sb.State)
			}
		}
		for _, p := range replicaProviders {
			if n := w.depth(w.queues[p].URL); n > 0 {
				return false, fmt.Sprintf("%d messages still in %s's queue", n, p)
			}
		}
		return true, ""
	})
	toFull := time.Since(last)
	trackBackfill()

	lost := 0
	for _, b := range all {
		got, err := w.store.GetBackup(t.Context(), b.ID)
		ok := err == nil && got.Status == catalog.StatusProtected
		for _, p := range replicaProviders {
			if readSHA256(t.Context(), w.direct[p], b.Key) != b.SHA256 {
				ok = false
				t.Errorf("%s: the copy on %s is missing or differs", b.ID, p)
			}
		}
		if _, err := w.direct[config.NameS3Standby].Stat(t.Context(), b.Key); err == nil {
			t.Errorf("%s: the standby copy was not expired after backfill", b.ID)
		}
		if !ok {
			lost++
		}
	}
	dead := 0
	for _, p := range replicaProviders {
		dead += w.depth(w.queues[p].DLQ)
		if tr := w.transitionsOf(p); len(tr) == 0 || tr[len(tr)-1] != "half-open>closed" {
			t.Errorf("%s's breaker transitions %v: want it closed at the end", p, tr)
		}
	}
	if lost != 0 || dead != 0 {
		t.Errorf("%d backups lost, %d messages dead-lettered", lost, dead)
	}
	var parts []string
	for _, p := range replicaProviders {
		parts = append(parts, fmt.Sprintf("%s %.2f min", p, backfill[p].Minutes()))
	}
	figures := fmt.Sprintf("backups=%d faults_injected=%d lost=%d dead_lettered=%d protected_during_outages=%d/%d "+
		"minutes_to_full_protection_after_recovery=%.2f backfill_after_each_recovery=[%s] total_minutes=%.2f",
		len(all), w.injected(), lost, dead, len(all), len(all), toFull.Minutes(), strings.Join(parts, ", "), time.Since(start).Minutes())
	for _, p := range replicaProviders {
		t.Logf("%s breaker transitions: %v", p, w.transitionsOf(p))
	}
	t.Logf("SUMMARY provider outages: %s", figures)
	writeFigures(t, "provider outages", figures)
}

// The breaker opens after exactly its threshold of failed transfers (the
// default: 5 in a row); while it is open messages wait and nothing is
// attempted; after its cooldown one trial goes through, and only one,
// even in a concurrent batch; a failed trial opens it again, a good one
// closes it. The breaker's clock is injected; the cooldown is one minute
// of that clock.
func TestBreakerOpensTrialsAndCloses(t *testing.T) {
	clk := &faultClock{t: time.Now()}
	w := newFaultWorld(t, worldOptions{Breaker: breaker.Settings{Timeout: time.Minute, Now: clk.Now}, Now: clk.Now,
		Config: func(c *replicate.Config) {
			c.ParkMin, c.ParkMax, c.VisibilityBase, c.VisibilityLimit = time.Second, time.Second, time.Second, 2*time.Second
			c.Retry = retry.Policy{MaxAttempts: 1}
		}})
	const n = 8
	var bs []landed
	for i := range n {
		bs = append(bs, w.upload(i, faultSize(i+2)))
	}
	if err := w.proxies[config.NameGCS].Set(faultproxy.Fault{Mode: faultproxy.Error5xx}); err != nil {
		t.Fatal(err)
	}
	attempts := func() (sum, verified int) {
		for _, b := range bs {
			r := w.replicas(b.ID)[config.NameGCS]
			sum += r.Attempts
			if r.State == catalog.ReplicaVerified {
				verified++
			}
		}
		return sum, verified
	}
	brk, err := breaker.New(mustDynamoStore(t, w), breaker.Settings{Name: config.NameGCS, Timeout: time.Minute, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	state := func() string { s, _ := brk.State(t.Context()); return s.StateName }

	// Failures until it opens, then waits.
	parked := 0
	for i := 0; parked < 3; i++ {
		if i > 40 {
			t.Fatalf("no waiting after %d deliveries: attempts %v, breaker %s", i, fmt.Sprint(attempts()), state())
		}
		recs, failed, err := w.deliver(t.Context(), config.NameGCS, 1, 5*time.Second, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 1 && !failed[recs[0].MessageId] {
			parked++
		}
	}
	if sum, _ := attempts(); sum != breaker.DefaultTripAfter || state() != "open" {
		t.Fatalf("after the threshold: %d transfers attempted, breaker %s; want %d and open", sum, state(), breaker.DefaultTripAfter)
	}

	// Cooldown over, provider still down: one trial, in a batch of all.
	clk.advance(time.Minute + time.Second)
	time.Sleep(4 * time.Second) // let every waiting and failed message become visible again
	recs, _, err := w.deliver(t.Context(), config.NameGCS, 10, 5*time.Second, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if sum, _ := attempts(); sum != breaker.DefaultTripAfter+1 || state() != "open" {
		t.Fatalf("failed trial in a batch of %d: %d transfers attempted, breaker %s; want %d and open", len(recs), sum, state(),
			breaker.DefaultTripAfter+1)
	}

	// Cooldown over, provider back: the trial closes it and the rest drain.
	clk.advance(time.Minute + time.Second)
	w.proxies[config.NameGCS].Pass()
	w.waitUntil("gcs backfilled", 3*time.Minute, 0, func() (bool, string) {
		if _, _, err := w.deliver(t.Context(), config.NameGCS, 10, time.Second, 30*time.Second); err != nil {
			return false, err.Error()
		}
		sum, verified := attempts()
		return verified == n, fmt.Sprintf("%d of %d verified after %d attempts", verified, n, sum)
	})
	want := []string{"closed>open", "open>half-open", "half-open>open", "open>half-open", "half-open>closed"}
	if got := w.transitionsOf(config.NameGCS); !slices.Equal(got, want) {
		t.Errorf("transitions %v, want %v", got, want)
	}
	sum, _ := attempts()
	figures := fmt.Sprintf("backups=%d faults_injected=%d transfers=%d (threshold %d + 1 failed trial in a batch of %d + %d good) transitions=%v",
		n, w.injected(), sum, breaker.DefaultTripAfter, len(recs), n, w.transitionsOf(config.NameGCS))
	t.Logf("SUMMARY breaker: %s", figures)
	writeFigures(t, "breaker", figures)
}

// A TUS upload to Supabase stalls mid-chunk at the network edge until the
// invocation's deadline: the upload is abandoned, nothing partial is
// visible or counted, and the next delivery continues the same upload
// (no new upload is created) to a verified copy.
func TestStalledUploadResumes(t *testing.T) {
	w := newFaultWorld(t, worldOptions{Config: func(c *replicate.Config) {
		c.ResumeAbove, c.VisibilityBase = 1<<20, time.Second
		c.Retry = retry.Policy{MaxAttempts: 2, Base: 10 * time.Millisecond, Margin: time.Second}
	}})
	const p = config.NameSupabase
	b := w.upload(1, 13<<20+5)
	px := w.proxies[p]
	if err := px.Set(faultproxy.Fault{Mode: faultproxy.Stall, Direction: faultproxy.Request, Methods: []string{"PATCH"},
		After: 2 << 20, Count: 1}); err != nil {
		t.Fatal(err)
	}
	recs, failed, err := w.deliver(t.Context(), p, 1, 10*time.Second, 8*time.Second)
	if err != nil || len(recs) != 1 || !failed[recs[0].MessageId] {
		t.Fatalf("stalled delivery: %d records, failed %v, err %v; want it returned to the queue", len(recs), failed, err)
	}
	rep := w.replicas(b.ID)[p]
	if rep.State == catalog.ReplicaVerified || rep.ResumeState == "" {
		t.Fatalf("after the stall: replica %s, resume state saved %v; want unverified with the upload kept", rep.State, rep.ResumeState != "")
	}
	if _, err := w.direct[p].Stat(t.Context(), b.Key); storage.KindOf(err) != storage.NotFound {
		t.Fatalf("a partial object is visible on %s: %v", p, err)
	}
	if got, _ := w.store.GetBackup(t.Context(), b.ID); got.Status == catalog.StatusProtected {
		t.Fatalf("backup PROTECTED with a partial copy")
	}
	stalls := px.Stats().Injected
	// Count new TUS uploads (creation is a POST to /upload/resumable)
	// from here on; a 1 ms hold changes nothing else.
	if err := px.Set(faultproxy.Fault{Mode: faultproxy.Stall, For: faultproxy.Duration(time.Millisecond), Methods: []string{"POST"},
		Path: `/upload/resumable/?$`}); err != nil {
		t.Fatal(err)
	}
	created := px.Stats().Matched
	var resumed bool
	for range 5 {
		recs, failed, err = w.deliver(t.Context(), p, 1, 10*time.Second, 60*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 1 && !failed[recs[0].MessageId] {
			resumed = true
			break
		}
	}
	rep = w.replicas(b.ID)[p]
	if !resumed || rep.State != catalog.ReplicaVerified || rep.Attempts != 2 {
		t.Fatalf("after resuming: replica %+v", rep)
	}
	if n := px.Stats().Matched - created; n != 0 {
		t.Errorf("%d new uploads created: the stalled upload was started over, not resumed", n)
	}
	if readSHA256(t.Context(), w.direct[p], b.Key) != b.SHA256 {
		t.Error("the resumed copy differs from the upload")
	}
	figures := fmt.Sprintf("backups=1 bytes=%d faults_injected=%d (stall mid-chunk until the deadline) deliveries=2 new_uploads_on_resume=0 partial_objects_counted=0",
		b.Size, stalls)
	t.Logf("SUMMARY stalled upload: %s", figures)
	writeFigures(t, "stalled upload", figures)
}

// Messages that fail maxReceiveCount times (the provider rejects every
// request as invalid: a permanent error, which the breaker does not count,
// so nothing waits) land in the dead-letter queue; once the fault is gone a
// redrive brings every one of them home, to PROTECTED.
func TestDeadLetterRedrive(t *testing.T) {
	const n, maxReceive = 10, 3
	w := newFaultWorld(t, worldOptions{MaxReceive: maxReceive, Config: func(c *replicate.Config) {
		c.VisibilityBase, c.VisibilityLimit = time.Second, 2*time.Second
		c.Retry = retry.Policy{MaxAttempts: 1}
	}})
	const p = config.NameS3
	if err := w.proxies[p].Set(faultproxy.Fault{Mode: faultproxy.Error5xx, Status: 400}); err != nil {
		t.Fatal(err)
	}
	w.startPollers()
	var bs []landed
	for i := range n {
		bs = append(bs, w.upload(i, faultSize(i+3)))
	}
	w.waitUntil("every s3 message dead-lettered", 5*time.Minute, 2*time.Second, func() (bool, string) {
		d := w.depth(w.queues[p].DLQ)
		return d == n, fmt.Sprintf("%d of %d in the dead-letter queue, %d in the queue", d, n, w.depth(w.queues[p].URL))
	})
	for _, b := range bs {
		if r := w.replicas(b.ID)[p]; r.State != catalog.ReplicaFailed || r.Attempts != maxReceive {
			t.Errorf("%s: s3 replica %s after %d attempts, want FAILED after %d", b.ID, r.State, r.Attempts, maxReceive)
		}
	}
	if w.opened(p) != 0 {
		t.Errorf("the breaker opened on permanent errors: %v", w.transitionsOf(p))
	}
	w.proxies[p].Pass()
	moved := w.redrive(p)
	w.waitUntil("redriven messages processed", 5*time.Minute, 2*time.Second, func() (bool, string) {
		for _, b := range bs {
			got, err := w.store.GetBackup(t.Context(), b.ID)
			if err != nil || got.Status != catalog.StatusProtected {
				return false, fmt.Sprintf("%s is %s (%s)", b.ID, got.Status, got.StatusReason)
			}
		}
		return w.depth(w.queues[p].URL)+w.depth(w.queues[p].DLQ) == 0, "queues not empty"
	})
	lost := 0
	for _, b := range bs {
		if readSHA256(t.Context(), w.direct[p], b.Key) != b.SHA256 {
			lost++
		}
	}
	if moved != n || lost != 0 {
		t.Errorf("redriven %d of %d, lost %d", moved, n, lost)
	}
	figures := fmt.Sprintf("backups=%d faults_injected=%d dead_lettered=%d (after %d receives each) redriven=%d lost=%d",
		n, w.injected(), n, maxReceive, moved, lost)
	t.Logf("SUMMARY dead-letter redrive: %s", figures)
	writeFigures(t, "dead-letter redrive", figures)
}

// faultClock is a settable clock for the breakers and handlers.
type faultClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *faultClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *faultClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func mustDynamoStore(t *testing.T, w *faultWorld) breaker.Store {
	t.Helper()
	s, err := breaker.NewDynamoStore(w.db, "breakers")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// writeFigures appends one line of figures to tests/artifacts/faults.txt.
func writeFigures(t *testing.T, name, figures string) {
	f, err := os.OpenFile(filepath.Join(artifactsDir(t), "faults.txt"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Log(err)
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "%s %s: %s\n", time.Now().UTC().Format(time.RFC3339), name, figures)
}
