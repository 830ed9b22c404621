package tests

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wedsync/backup-replication/infra/local/apiclient"
	"github.com/wedsync/backup-replication/shared/api"
	"github.com/wedsync/backup-replication/shared/catalog"
)

// TestDuplicateAndReorderedEvents: delivery is at least once and in no
// particular order. Sealed objects' events sent straight to the provider
// queues, as EventBridge would send them: each backup's event before its
// bytes have landed (let alone been sealed) and in the reverse order of
// the uploads (a reordered pair), the same event twice more while the real
// one is being copied, and twice again once the backup is PROTECTED.
// Every message is consumed, never dead-lettered, and each provider ends
// with exactly one replica and one object per backup (the sealed bytes),
// none on the standby, none half-written; the landing bucket keeps the
// sealed objects and no plaintext; the late duplicates copy nothing again.
func TestDuplicateAndReorderedEvents(t *testing.T) {
	t.Parallel()
	e := sharedStack(t)
	c, org := orgClient(e)
	ctx := t.Context()
	a := register(t, c, org, 101, 3<<20+5, "")  // one PUT
	b := register(t, c, org, 102, 20<<20+3, "") // multipart (above the stack's 16 MiB)
	backups := []pipelineBackup{a, b}

	var sent []sentMessage
	sendAll := func(what string, evs map[string]string, order []pipelineBackup, times int) {
		for _, p := range replicaProviders {
			for _, x := range order {
				for range times {
					id, err := e.sendID(ctx, p, evs[x.ID])
					if err != nil {
						t.Fatalf("send %s event of %s to %s: %v", what, x.ID, p, err)
					}
					sent = append(sent, sentMessage{id: id, provider: p, backup: x.ID, what: what})
				}
			}
		}
	}

	// Out of order: B's event, then A's, before either has landed. Each
	// function must see them fail (nothing sealed yet) before the uploads.
	early := map[string]string{}
	for _, x := range backups {
		early[x.ID] = objectCreated(e, sealedKeyOf(x), x.Data.size, "", "PutObject")
	}
	sendAll("early", early, []pipelineBackup{b, a}, 1)
	for _, p := range replicaProviders {
		for _, x := range backups {
			wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
			if _, err := e.Log.WaitFor(wctx, 1, replicateLine(p, x.ID)); err != nil {
				t.Fatalf("%s never handled the early event of %s: %v", p, x.ID, err)
			}
			cancel()
		}
	}

	// The uploads (their own events follow through EventBridge), then each
	// event twice more while the copies run.
	for _, x := range backups {
		if err := x.upload(ctx, c); err != nil {
			t.Fatalf("upload %s: %v", x.ID, err)
		}
	}
	landed := map[string]string{}
	for _, x := range backups {
		landed[x.ID] = sealedEventOf(t, e, x)
	}
	sendAll("duplicate", landed, backups, 2)

	protected := map[string]api.BackupDetail{}
	for _, x := range backups {
		d, err := waitStatus(t, c, x.ID, 10*time.Minute, apiclient.Protected)
		if err != nil {
			t.Fatalf("%s: %v (replicas: %s)", x.ID, err, replicaSummary(d))
		}
		protected[x.ID] = d
	}
	// Late duplicates of A, once it is PROTECTED.
	sendAll("late", landed, []pipelineBackup{a}, 2)

	// Every message we sent is consumed: the early ones once they come
	// back after their visibility timeout and find the copy made.
	outcomes := e.waitConsumed(t, sent, 8*time.Minute)
	for _, m := range sent {
		if m.what == "late" && !strings.Contains(outcomes[m.id], "already verified") {
			t.Errorf("late duplicate of %s on %s: %q, want it consumed as a duplicate", m.backup, m.provider, outcomes[m.id])
		}
	}

	sealed := map[string]catalog.Backup{}
	for _, x := range backups {
		d, err := c.Backup(ctx, x.ID)
		if err != nil {
			t.Fatal(err)
		}
		if d.Backup.Status != catalog.StatusProtected {
			t.Errorf("%s is %s after the duplicates: %s", x.ID, d.Backup.Status, d.Backup.StatusReason)
		}
		if d.Backup.Seal == nil {
			t.Errorf("%s is not sealed", x.ID)
			continue
		}
		sealed[x.ID] = d.Backup
		reps := replicasByProvider(t, d)
		before := replicasByProvider(t, protected[x.ID])
		for _, p := range replicaProviders {
			r, ok := reps[p]
			switch {
			case !ok:
				t.Errorf("%s: no replica on %s", x.ID, p)
			case r.State != catalog.ReplicaVerified || r.VerifiedSHA256 != d.Backup.Seal.CipherSHA256:
				t.Errorf("%s: %s replica %s sha256 %q, want VERIFIED %s (sealed)", x.ID, p, r.State, r.VerifiedSHA256, d.Backup.Seal.CipherSHA256)
			case x.ID == a.ID && !sameTime(r.VerifiedAt, before[p].VerifiedAt):
				t.Errorf("%s: the late duplicates copied to %s again (verified at %v, then %v)", x.ID, p, before[p].VerifiedAt, r.VerifiedAt)
			}
		}
		if len(reps) != len(replicaProviders) {
			t.Errorf("%s has %d replicas, want one per provider: %s", x.ID, len(reps), replicaSummary(d))
		}
	}
	// Behind the system's back: one object per backup on each provider, no
	// unfinished upload, nothing on the standby; in the landing bucket the
	// sealed objects and no plaintext.
	sorted := func(a, b string) string {
		if a > b {
			a, b = b, a
		}
		return fmt.Sprint([]string{a, b})
	}
	want := sorted(a.Key, b.Key)
	for _, where := range copyPlaces {
		keys, err := e.listKeys(ctx, where, "backups/"+org+"/")
		if err != nil {
			t.Errorf("list %s: %v", where, err)
			continue
		}
		switch {
		case (where == "s3-standby" || where == "landing") && len(keys) > 0:
			t.Errorf("%s holds %v; no provider was down and sealed uploads are deleted", where, keys)
		case where != "s3-standby" && where != "landing" && fmt.Sprint(keys) != want:
			t.Errorf("%s holds %v, want exactly %s", where, keys, want)
		}
	}
	if keys, err := e.listKeys(ctx, "landing", "sealed/"+org+"/"); err != nil || fmt.Sprint(keys) != sorted(sealedKeyOf(a), sealedKeyOf(b)) {
		t.Errorf("the landing bucket's sealed objects: %v (%v), want %s", keys, err, sorted(sealedKeyOf(a), sealedKeyOf(b)))
	}
	for _, x := range backups {
		sb, ok := sealed[x.ID]
		if !ok {
			continue
		}
		for i, p := range replicaProviders {
			if err := e.checkSealedCopy(ctx, p, x.Key, sb, x.SHA, i == 0); err != nil {
				t.Errorf("%s: %v", x.ID, err)
			}
		}
	}
	e.requireNoCrash(t)
}

// TestWrongSHA256Fails: bytes that do not match the SHA-256 declared at
// registration are never sealed nor replicated. Uploaded in one PUT, S3
// itself may refuse them (the API signs the declared checksum into the
// URL): then nothing lands. Uploaded in parts (no whole-object checksum),
// they land, the seal step finds the mismatch while sealing, and the
// backup becomes FAILED with the reason, while no sealed object is left
// in the landing bucket and no provider, nor the standby, keeps any
// object of it.
func TestWrongSHA256Fails(t *testing.T) {
	t.Parallel()
	e := sharedStack(t)
	c, org := orgClient(e)
	ctx := t.Context()
	for i, tc := range []struct {
		name string
		size int64
	}{{"one PUT", 1<<20 + 3}, {"multipart", 20<<20 + 1}, {"multipart, resumable copies", 40 << 20}} {
		declared := patternData{seed: 999, size: tc.size}.sha256()
		x := register(t, c, org, uint64(201+i), tc.size, declared)
		if err := x.upload(ctx, c); err != nil {
			if x.Created.Upload.Multipart != nil {
				t.Errorf("%s: multipart upload refused: %v", tc.name, err)
				continue
			}
			t.Logf("%s: S3 refused the upload (%v)", tc.name, err)
			if keys, _ := e.listKeys(ctx, "landing", x.Key); len(keys) > 0 {
				t.Errorf("%s: refused upload left %v in the landing bucket", tc.name, keys)
			}
			if d, err := c.Backup(ctx, x.ID); err != nil || d.Backup.Status != catalog.StatusPending {
				t.Errorf("%s: after a refused upload the backup is %s (%v), want PENDING", tc.name, d.Backup.Status, err)
			}
			continue
		}
		d, err := waitStatus(t, c, x.ID, 10*time.Minute, func(d api.BackupDetail) bool { return d.Backup.Status == catalog.StatusFailed })
		if d.Backup.Status != catalog.StatusFailed {
			t.Errorf("%s: backup is %s (%v), want FAILED", tc.name, d.Backup.Status, err)
			continue
		}
		if !regexp.MustCompile(`(?i)sha-?256`).MatchString(d.Backup.StatusReason) {
			t.Errorf("%s: FAILED with reason %q, which does not say the SHA-256 differs", tc.name, d.Backup.StatusReason)
		}
		// Wait until the seal step has been through the event (nothing is
		// sealed, so no provider's function gets one), then look at every
		// provider directly.
		wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		lines, err := e.Log.WaitFor(wctx, 1, consumedLine(sealLine(x.ID)))
		cancel()
		if err != nil {
			t.Errorf("%s: the seal step never finished with the event: %v", tc.name, err)
		}
		t.Logf("%s: seal: %s", tc.name, fieldOf(lastOf(lines), "outcome"))
		if d.Backup.Seal != nil {
			t.Errorf("%s: a backup whose bytes do not match was sealed: %+v", tc.name, d.Backup.Seal)
		}
		if keys, err := e.listKeys(ctx, "landing", sealedKeyOf(x)); err != nil || len(keys) > 0 {
			t.Errorf("%s: the landing bucket holds %v (%v) sealed from bytes that do not match", tc.name, keys, err)
		}
		for _, r := range d.Replicas {
			if r.State == catalog.ReplicaVerified {
				t.Errorf("%s: a %s copy was verified against a wrong declaration", tc.name, r.Provider)
			}
		}
		for _, where := range []string{"supabase", "s3", "gcs", "s3-standby"} {
			if keys, err := e.listKeys(ctx, where, x.Key); err != nil || len(keys) > 0 {
				t.Errorf("%s: %s holds %v (%v) of a backup whose bytes do not match", tc.name, where, keys, err)
			}
		}
		var ae *apiclient.Error
		if err := c.Do(ctx, "GET", "/backups/"+x.ID+"/download", nil, nil); !asAPIError(err, &ae) || ae.Status != 409 {
			t.Errorf("%s: download of a FAILED backup: %v, want 409", tc.name, err)
		}
	}
	e.requireNoCrash(t)
}

func sameTime(a, b *time.Time) bool {
	return (a == nil) == (b == nil) && (a == nil || a.Equal(*b))
}
