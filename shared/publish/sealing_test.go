package publish_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/wedsync/backup-replication/shared/api"
	"github.com/wedsync/backup-replication/shared/publish"
)

// TestSealingInOrderToTheRightSubscribers: the seal step's positions reach
// the backup's and its organization's subscribers throttled and never
// going back, then exactly one "sealed" at 100 %; a failed seal ends in
// "failed" with its reason; another organization hears none of it.
func TestSealingInOrderToTheRightSubscribers(t *testing.T) {
	w := newWorld(t, publish.Config{})
	orgA, orgB := api.NewID(time.Now()), api.NewID(time.Now().Add(time.Millisecond))
	b, bad := w.backup(orgA), w.backup(orgA)
	alice := w.connect(orgA, b.ID)
	ann := w.connect(orgA, "*")
	bob := w.connect(orgB, "*")

	const positions = 200
	ctx := t.Context()
	ev := func(id, step string, n int64) publish.SealProgress {
		return publish.SealProgress{BackupID: id, OrganizationID: orgA, Step: step, Bytes: n, Total: b.Size, At: time.Now()}
	}
	for i := int64(0); i <= positions; i++ {
		w.pub.Sealing(ctx, ev(b.ID, publish.StepSealing, i*b.Size/positions))
	}
	w.pub.Sealing(ctx, ev(b.ID, publish.StepSealed, b.Size)) // returns once delivered
	w.pub.Sealing(ctx, ev(bad.ID, publish.StepSealing, 0))
	w.pub.Sealing(ctx, ev(bad.ID, publish.StepSealing, b.Size/2))
	f := ev(bad.ID, publish.StepFailed, b.Size/2)
	f.Error = "integrity: the upload does not match its declaration"
	w.pub.Sealing(ctx, f)
	w.pub.ProviderHealth(ctx, publish.ProviderHealth{Provider: "gcs", State: "up", Breaker: "closed"})

	isEnd := func(id string) func(map[string]any) bool {
		return func(m map[string]any) bool { return m["backupId"] == id && m["step"] != "sealing" }
	}
	for name, cl := range map[string]*client{"alice": alice, "ann": ann} {
		checkSealing(t, name, cl.until(t, isEnd(b.ID)), b.ID, b.Size, positions)
	}
	got := ann.until(t, isEnd(bad.ID))
	end := got[len(got)-1]
	if end["type"] != "backup_sealing" || end["step"] != "failed" || end["error"] != f.Error || end["percent"] != 50.0 {
		t.Errorf("ann: failed seal ended with %v", end)
	}
	for _, m := range got {
		if m["backupId"] != bad.ID || m["type"] != "backup_sealing" {
			t.Errorf("ann: unexpected %v", m)
		}
	}
	// bob's first message is provider health: nothing of A's seals.
	for name, cl := range map[string]*client{"ann": ann, "bob": bob} {
		if m := cl.next(t); m["type"] != "provider_health" {
			t.Errorf("%s: %v, want provider_health", name, m)
		}
	}
	// alice is subscribed to b only: the health message and bad's seal
	// are not hers, so nothing more arrives.
	select {
	case m := <-alice.msgs:
		t.Errorf("alice: unexpected %v", m)
	case <-time.After(300 * time.Millisecond):
	}
}

// checkSealing: backup_sealing only, without a provider, positions that
// never go back, fewer than published, then one "sealed" with every byte.
func checkSealing(t *testing.T, who string, msgs []map[string]any, id string, total int64, positions int) {
	t.Helper()
	last, sealing, sealed := -1.0, 0, 0
	for _, m := range msgs {
		if m["type"] != "backup_sealing" || m["backupId"] != id || m["provider"] != nil {
			t.Errorf("%s: unexpected %v", who, m)
			continue
		}
		if _, ok := m["timestamp"].(string); !ok {
			t.Errorf("%s: no timestamp in %v", who, m)
		}
		n := m["bytes"].(float64)
		if n < last || m["total"] != float64(total) {
			t.Errorf("%s: %v after %v bytes", who, m, last)
		}
		last = n
		switch m["step"] {
		case "sealing":
			sealing++
		case "sealed":
			sealed++
			if n != float64(total) || m["percent"] != 100.0 {
				t.Errorf("%s: sealed %v", who, m)
			}
		default:
			t.Errorf("%s: step %v", who, m["step"])
		}
	}
	if sealed != 1 || sealing < 1 || sealing > positions/10 {
		t.Errorf("%s: %d sealing positions of %d and %d sealed; want a few (throttled), then one sealed", who, sealing, positions+1, sealed)
	}
	if t.Failed() {
		b, _ := json.Marshal(msgs)
		t.Logf("%s received: %s", who, b)
	}
}
