package sealer_test

import (
	"bytes"
	"strings"
	"sync"
	"testing"

	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/replicate"
	"github.com/wedsync/backup-replication/shared/seal"
	"github.com/wedsync/backup-replication/shared/sealer"
)

// TestSealsLandedUploads: uploads of 0 B, 1 B, around Tink's first
// segment, and several S3 parts are sealed into sealed/{org}/{id}: the
// record holds the sealed object's SHA-256, the object holds no
// plaintext and opens to the uploaded bytes, and the plaintext landing
// object is gone.
func TestSealsLandedUploads(t *testing.T) {
	w := newWorld(t)
	h := w.handler()
	for i, n := range []int{0, 1, 1<<20 - 16 - 40, 1<<20 - 16 - 40 + 1, 11<<20 + 3} {
		u := w.land("org-ü 1", payload(n, uint64(i)), nil)
		if failed := w.handle(h, w.landed(u)); len(failed) != 0 {
			t.Fatalf("%d B: failed %v\nlogs:\n%s", n, failed, w.logText())
		}
		b := w.expectSealed(u)
		if want := seal.SealedSize(seal.Header{Format: seal.Format, KMSKeyID: b.Seal.KMSKeyID,
			OrganizationID: b.OrganizationID, BackupID: b.ID, PlaintextSize: int64(n)}); b.Seal.CipherSize != want {
			t.Errorf("%d B: sealed %d bytes, SealedSize says %d", n, b.Seal.CipherSize, want)
		}
		if _, ok := w.get(u.b.LandingKey); ok {
			t.Errorf("%d B: plaintext landing object still there", n)
		}
		// What replicate reads as the object's SHA-256 (S3's checksum) is
		// the seal's, or nothing.
		if head, err := replicate.NewLanding(w.s3, w.bucket, "").Head(w.ctx, b.Seal.Key); err != nil ||
			(head.SHA256 != "" && head.SHA256 != b.Seal.CipherSHA256) || head.Size != b.Seal.CipherSize {
			t.Errorf("%d B: HEAD of the sealed object says %d bytes sha256 %q (%v); the seal records %d bytes %s",
				n, head.Size, head.SHA256, err, b.Seal.CipherSize, b.Seal.CipherSHA256)
		}
	}
	if n := w.uploadsInProgress(); n != 0 {
		t.Errorf("%d multipart uploads left open", n)
	}
	if logs := w.logText(); !strings.Contains(logs, `"op":"seal"`) || !strings.Contains(logs, `"backup_id"`) {
		t.Errorf("no seal log lines with backup_id:\n%s", logs)
	}
}

// TestDuplicateDeliveries: the same event again, and two copies of it in
// one batch (moto sends two Object Created events per multipart upload),
// leave one sealed object, the one recorded; every message is consumed
// once redelivered.
func TestDuplicateDeliveries(t *testing.T) {
	w := newWorld(t)
	h := w.handler(func(c *sealer.Config) { c.Concurrency = 4 })

	u := w.land("org", payload(6<<20, 7), nil)
	if failed := w.handle(h, w.landed(u)); len(failed) != 0 {
		t.Fatalf("failed %v", failed)
	}
	first := w.expectSealed(u)
	if failed := w.handle(h, w.landed(u)); len(failed) != 0 {
		t.Fatalf("duplicate delivery failed %v", failed)
	}
	if again := w.expectSealed(u); *again.Seal != *first.Seal || again.Version != first.Version {
		t.Fatalf("a duplicate delivery changed the seal: %+v -> %+v", first.Seal, again.Seal)
	}

	// Concurrent deliveries of a fresh upload, within one instance and
	// across two (two handlers, as two Lambda instances): one seals.
	for name, hs := range map[string][2]*sealer.Handler{"one instance": {h, h}, "two instances": {h, w.handler()}} {
		v := w.land("org", payload(6<<20, 8), nil)
		var (
			failed []string
			wg     sync.WaitGroup
			mu     sync.Mutex
		)
		for i, m := range []eventMsg{w.landed(v), w.landed(v)} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				f := w.handle(hs[i], m)
				mu.Lock()
				failed = append(failed, f...)
				mu.Unlock()
			}()
		}
		wg.Wait()
		if len(failed) > 1 {
			t.Fatalf("%s: both concurrent deliveries failed: %v\nlogs:\n%s", name, failed, w.logText())
		}
		for range failed { // the other one comes back: now a duplicate
			if f := w.handle(h, w.landed(v)); len(f) != 0 {
				t.Fatalf("%s: redelivery failed %v\nlogs:\n%s", name, f, w.logText())
			}
		}
		if b := w.expectSealed(v); b.SealingBy != "" {
			t.Errorf("%s: claim left on the sealed backup", name)
		}
	}
	if n := w.uploadsInProgress(); n != 0 {
		t.Errorf("%d multipart uploads left open", n)
	}
}

// TestDeclarationMismatch: landed bytes that do not match the declared
// SHA-256 or size make the backup FAILED with the reason, as replicate
// words it; nothing is sealed (no object, no open upload), the plaintext
// stays, and the message is consumed.
func TestDeclarationMismatch(t *testing.T) {
	w := newWorld(t)
	h := w.handler()
	good := payload(7<<20, 1)
	bad := bytes.Clone(good)
	bad[len(bad)/2] ^= 1
	short := good[:len(good)-1]
	for name, c := range map[string]struct {
		landed, declared []byte
		reason           string
	}{
		"one flipped byte": {bad, good, "integrity: landed object has sha256 " + sum(bad) + ", declared " + sum(good)},
		"one byte short":   {short, good, "integrity: landed object has 7340031 bytes, declared 7340032"},
		"small, flipped":   {bad[len(bad)/2 : len(bad)/2+10], good[len(good)/2 : len(good)/2+10], "integrity: landed object has sha256 " + sum(bad[len(bad)/2:len(bad)/2+10]) + ", declared " + sum(good[len(good)/2:len(good)/2+10])},
	} {
		t.Run(name, func(t *testing.T) {
			u := w.land("org", c.landed, c.declared)
			if failed := w.handle(h, w.landed(u)); len(failed) != 0 {
				t.Fatalf("failed %v", failed)
			}
			b := w.backup(u.b.ID)
			if b.Status != catalog.StatusFailed || b.StatusReason != c.reason || b.Seal != nil {
				t.Fatalf("status %s %q seal %+v, want FAILED %q", b.Status, b.StatusReason, b.Seal, c.reason)
			}
			if _, ok := w.get(sealer.SealedKey(b.OrganizationID, b.ID)); ok {
				t.Fatal("a sealed object was written")
			}
			if _, ok := w.get(u.b.LandingKey); !ok {
				t.Fatal("the plaintext was deleted")
			}
			if n := w.uploadsInProgress(); n != 0 {
				t.Fatalf("%d multipart uploads left open", n)
			}
			// Delivered again: still FAILED, nothing written.
			if failed := w.handle(h, w.landed(u)); len(failed) != 0 {
				t.Fatalf("redelivery failed %v", failed)
			}
			if _, ok := w.get(sealer.SealedKey(b.OrganizationID, b.ID)); ok {
				t.Fatal("a sealed object was written on redelivery")
			}
		})
	}
}

// TestKeepPlaintext: with KeepPlaintext the landing object stays.
func TestKeepPlaintext(t *testing.T) {
	w := newWorld(t)
	h := w.handler(func(c *sealer.Config) { c.KeepPlaintext = true })
	u := w.land("org", payload(1000, 3), nil)
	if failed := w.handle(h, w.landed(u)); len(failed) != 0 {
		t.Fatalf("failed %v", failed)
	}
	w.expectSealed(u)
	if got, ok := w.get(u.b.LandingKey); !ok || !bytes.Equal(got, u.data) {
		t.Fatal("plaintext not kept")
	}
}

// TestAdoptsOrReplacesLeftovers: a sealed object left by a delivery that
// stopped before recording it is recorded as is when it opens to the
// declared bytes (never replaced), and removed then sealed afresh when it
// does not.
func TestAdoptsOrReplacesLeftovers(t *testing.T) {
	w := newWorld(t)
	h := w.handler()

	u := w.land("org", payload(2<<20, 11), nil)
	k, rec, err := w.keys.Create(w.ctx, u.b.OrganizationID, u.b.ID)
	if err != nil {
		t.Fatal(err)
	}
	var left bytes.Buffer
	if _, err := seal.Seal(&left, bytes.NewReader(u.data), k, seal.Header{KMSKeyID: rec.KMSKeyID,
		OrganizationID: u.b.OrganizationID, BackupID: u.b.ID, PlaintextSize: int64(len(u.data))}); err != nil {
		t.Fatal(err)
	}
	key := sealer.SealedKey(u.b.OrganizationID, u.b.ID)
	w.put(key, left.Bytes())
	if failed := w.handle(h, w.landed(u)); len(failed) != 0 {
		t.Fatalf("failed %v\nlogs:\n%s", failed, w.logText())
	}
	if b := w.expectSealed(u); b.Seal.CipherSHA256 != sum(left.Bytes()) {
		t.Fatal("the leftover sealed object was replaced instead of recorded")
	}

	// Garbage at the sealed key: removed, the message returns; next time
	// the backup is sealed properly.
	v := w.land("org", payload(3000, 12), nil)
	w.put(sealer.SealedKey(v.b.OrganizationID, v.b.ID), []byte("WS191SEAL not really"))
	if failed := w.handle(h, w.landed(v)); len(failed) != 1 {
		t.Fatalf("garbage leftover: failed %v, want the message back", failed)
	}
	if failed := w.handle(h, w.landed(v)); len(failed) != 0 {
		t.Fatalf("second delivery failed %v\nlogs:\n%s", failed, w.logText())
	}
	w.expectSealed(v)
}

// TestLeftAlone: erased, failed and crypto-shredded backups are not
// sealed; their messages are consumed, and what landed for an erased or
// shredded backup is deleted.
func TestLeftAlone(t *testing.T) {
	w := newWorld(t)
	h := w.handler()
	for _, status := range []catalog.Status{catalog.StatusErased, catalog.StatusFailed} {
		u := w.land("org", payload(100, 1), nil)
		u.b.Status = status
		if _, err := w.store.UpdateBackup(w.ctx, u.b); err != nil {
			t.Fatal(err)
		}
		if failed := w.handle(h, w.landed(u)); len(failed) != 0 {
			t.Fatalf("%s: failed %v", status, failed)
		}
		if _, ok := w.get(sealer.SealedKey(u.b.OrganizationID, u.b.ID)); ok {
			t.Fatalf("%s backup sealed", status)
		}
		// An upload that lands after its backup was erased is deleted;
		// a FAILED backup's upload stays for the operator to inspect.
		if _, kept := w.get(u.b.LandingKey); kept != (status == catalog.StatusFailed) {
			t.Errorf("%s backup: upload kept %v", status, kept)
		}
	}
	u := w.land("org", payload(100, 2), nil)
	if _, err := w.keys.Destroy(w.ctx, u.b.OrganizationID, u.b.ID, "test", "erasure requested"); err != nil {
		t.Fatal(err)
	}
	if failed := w.handle(h, w.landed(u)); len(failed) != 0 {
		t.Fatalf("shredded: failed %v", failed)
	}
	if b := w.backup(u.b.ID); b.Seal != nil {
		t.Fatalf("shredded backup sealed: %+v", b.Seal)
	}
	if _, ok := w.get(sealer.SealedKey(u.b.OrganizationID, u.b.ID)); ok {
		t.Fatal("shredded backup has a sealed object")
	}
	if _, ok := w.get(u.b.LandingKey); ok {
		t.Fatal("the plaintext upload of a shredded backup was kept")
	}
}

// TestUnprocessableMessages: a malformed body, another bucket, a sealed/
// key and an unknown backup are returned for the dead-letter queue; the
// rest of the batch is sealed.
func TestUnprocessableMessages(t *testing.T) {
	w := newWorld(t)
	h := w.handler()
	u := w.land("org", payload(10, 1), nil)
	bad := []eventMsg{
		{MessageId: "garbage", Body: "{not json", Attributes: map[string]string{}},
		w.event("other-bucket", u.b.LandingKey, 10),
		w.event(w.bucket, sealer.SealedKey("org", u.b.ID), 10),
		w.event(w.bucket, "backups/org/no-such-backup", 10),
	}
	bad[1].MessageId, bad[2].MessageId, bad[3].MessageId = "other-bucket", "sealed-key", "no-record"
	failed := w.handle(h, append(bad, w.landed(u))...)
	want := map[string]bool{"garbage": true, "other-bucket": true, "sealed-key": true, "no-record": true}
	if len(failed) != len(want) {
		t.Fatalf("failed %v, want %v", failed, want)
	}
	for _, id := range failed {
		if !want[id] {
			t.Fatalf("failed %v, want %v", failed, want)
		}
	}
	w.expectSealed(u)
}

// TestNoKeyMaterialInLogs: the data key appears in no log line.
func TestNoKeyMaterialInLogs(t *testing.T) {
	w := newWorld(t)
	h := w.handler()
	u := w.land("org", payload(5000, 9), nil)
	if failed := w.handle(h, w.landed(u)); len(failed) != 0 {
		t.Fatal(failed)
	}
	w.expectSealed(u)
	k, _, err := w.keys.Open(w.ctx, u.b.OrganizationID, u.b.ID)
	if err != nil {
		t.Fatal(err)
	}
	logs := w.logText()
	for _, form := range keyForms(k) {
		if strings.Contains(logs, form) {
			t.Fatalf("the data key is in the logs (%q)", form)
		}
	}
	if strings.Contains(logs, marker) {
		t.Fatal("plaintext in the logs")
	}
}
