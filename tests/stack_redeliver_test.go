package tests

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/wedsync/backup-replication/infra/local/apiclient"
	"github.com/wedsync/backup-replication/shared/api"
	"github.com/wedsync/backup-replication/shared/catalog"
)

// lostAfter is how long after its seal a copy may go unclaimed before a
// wait on the shared stack treats its event as lost.
const lostAfter = 90 * time.Second

// redeliverLost wraps done, a wait's condition on the shared stack. When a
// sealed backup has no replica record at all on one of the three providers
// lostAfter after its seal, its sealed object's Object Created event is
// put on that provider's queue again, once, and the test log says so. In
// production health's reconcile does this (RECONCILE_EVERY); the shared
// stack runs health only when a test asks, and moto has been seen to drop
// one of the three EventBridge deliveries of an event, which left such a
// wait hanging. A replica in any state, an altered or missing copy
// included, is left alone: only the delivery that never came is redone.
// logf reports what was done (a test's Logf).
func (e *sharedEnv) redeliverLost(logf func(format string, args ...any), done func(api.BackupDetail) bool) func(api.BackupDetail) bool {
	if e == nil {
		return done
	}
	var mu sync.Mutex
	sent := map[string]bool{}
	return func(d api.BackupDetail) bool {
		if done(d) {
			return true
		}
		s := d.Backup.Seal
		if s == nil || s.SealedAt.IsZero() || time.Since(s.SealedAt) < lostAfter {
			return false
		}
		claimed := map[string]bool{}
		for _, r := range d.Replicas {
			claimed[r.Provider] = true
		}
		mu.Lock()
		defer mu.Unlock()
		for _, p := range []string{"supabase", "s3", "gcs"} {
			if claimed[p] || sent[p] {
				continue
			}
			sent[p] = true
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			head, err := e.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(e.Buckets.Landing), Key: aws.String(s.Key)})
			if err == nil {
				_, err = e.sendID(ctx, p, objectCreated(e, s.Key, aws.ToInt64(head.ContentLength),
					strings.Trim(aws.ToString(head.ETag), `"`), "PutObject"))
			}
			cancel()
			if err != nil {
				logf("backup %s: no %s copy claimed %s after its seal, and its event could not be sent again: %v",
					d.Backup.ID, p, time.Since(s.SealedAt).Round(time.Second), err)
				continue
			}
			logf("backup %s: no %s copy claimed %s after its seal; its sealed object's event sent again, as health's reconcile would",
				d.Backup.ID, p, time.Since(s.SealedAt).Round(time.Second))
		}
		return false
	}
}

// TestLostEventIsAskedForAgain: a wait that sees a sealed backup with no
// gcs replica long after its seal puts the sealed object's event on the
// gcs queue once (not on the queues of providers that have a replica), and
// the gcs replicate function takes that event as one for this backup.
func TestLostEventIsAskedForAgain(t *testing.T) {
	t.Parallel()
	e := sharedStack(t)
	c, org := orgClient(e)
	x := register(t, c, org, 451, 70<<10, "")
	if err := x.upload(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	d, err := waitStatus(t, c, x.ID, 10*time.Minute, apiclient.Protected)
	if err != nil {
		t.Fatalf("%v (replicas: %s)", err, replicaSummary(d))
	}
	before := len(e.Log.Find(replicateLine("gcs", x.ID)))
	// The same backup as a wait would have seen it had the gcs event been
	// lost: sealed two minutes ago, copies on supabase and s3 only.
	lost := d
	seal := *d.Backup.Seal
	seal.SealedAt = time.Now().Add(-2 * time.Minute)
	lost.Backup.Seal = &seal
	lost.Replicas = slices.DeleteFunc(slices.Clone(d.Replicas), func(r catalog.Replica) bool { return r.Provider == "gcs" })
	var said []string
	check := e.redeliverLost(func(f string, a ...any) { said = append(said, fmt.Sprintf(f, a...)) },
		func(api.BackupDetail) bool { return false })
	for range 3 {
		if check(lost) {
			t.Fatal("the wait's condition was met by a backup it does not accept")
		}
	}
	if len(said) != 1 || !strings.Contains(said[0], "no gcs copy") || !strings.Contains(said[0], "sent again") {
		t.Fatalf("what the wait said: %q; want one re-send to gcs", said)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	lines, err := e.Log.WaitFor(ctx, before+1, replicateLine("gcs", x.ID))
	if err != nil {
		t.Fatalf("the gcs function never handled the event sent again: %v", err)
	}
	if last := lines[len(lines)-1]; !strings.Contains(last, "already verified") {
		t.Errorf("the gcs function's outcome: %s; want the copy found verified", last)
	}
	// Too soon after the seal, nothing is sent.
	said = nil
	fresh := lost
	seal.SealedAt = time.Now()
	fresh.Backup.Seal = &seal
	e.redeliverLost(func(f string, a ...any) { said = append(said, fmt.Sprintf(f, a...)) },
		func(api.BackupDetail) bool { return false })(fresh)
	if len(said) != 0 {
		t.Errorf("sent %q for a backup sealed a moment ago", said)
	}
}
