package health

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/fsouza/fake-gcs-server/fakestorage"

	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/replicate"
	"github.com/wedsync/backup-replication/shared/storage"
)

// sealedBackup is w.backup after the seal step: the plaintext landing
// object replaced by the sealed one (cipher), its seal recorded, and
// verified copies of the ciphertext on the named providers.
func (w *world) sealedBackup(plain, cipher []byte, landedAgo time.Duration, verifiedOn ...string) catalog.Backup {
	w.t.Helper()
	b := w.backup(plain, landedAgo)
	key := replicate.SealedPrefix + b.OrganizationID + "/" + b.ID
	if _, err := w.s3.PutObject(w.ctx, &s3.PutObjectInput{Bucket: aws.String(w.landing), Key: aws.String(key),
		Body: bytes.NewReader(cipher)}); err != nil {
		w.t.Fatal(err)
	}
	if _, err := w.s3.DeleteObject(w.ctx, &s3.DeleteObjectInput{Bucket: aws.String(w.landing), Key: aws.String(b.LandingKey)}); err != nil {
		w.t.Fatal(err)
	}
	if err := w.cat.SetSeal(w.ctx, b.ID, catalog.Seal{Key: key, Format: "tink-aes256-gcm-hkdf-1mb", KMSKeyID: "alias/test",
		CipherSHA256: sha(cipher), CipherSize: int64(len(cipher))}); err != nil {
		w.t.Fatal(err)
	}
	b, _ = w.cat.GetBackup(w.ctx, b.ID)
	for _, name := range verifiedOn {
		if _, err := w.direct[name].Put(w.ctx, b.LandingKey, bytes.NewReader(cipher), int64(len(cipher)),
			storage.PutOptions{SHA256: sha(cipher)}); err != nil {
			w.t.Fatalf("put on %s: %v", name, err)
		}
		w.replica(b, name, catalog.ReplicaVerified)
	}
	if _, err := w.h.settle(w.ctx, b.ID); err != nil {
		w.t.Fatal(err)
	}
	b, _ = w.cat.GetBackup(w.ctx, b.ID)
	return b
}

// Reconcile of a sealed backup queues the sealed object's event (its
// copies are made from the ciphertext), and when the sealed object is gone
// repairs the copy from another provider's ciphertext, verified against
// the cipher SHA-256.
func TestReconcileSealedBackup(t *testing.T) {
	w := newWorld(t, nil)
	plain, cipher := payload(3000), payload(3061)
	cipher[0] = 'X'
	queued := w.sealedBackup(plain, cipher, 2*time.Hour, "supabase", "s3")
	gone := w.sealedBackup(plain, cipher, 2*time.Hour, "supabase", "s3")
	if _, err := w.s3.DeleteObject(w.ctx, &s3.DeleteObjectInput{Bucket: aws.String(w.landing), Key: aws.String(gone.Seal.Key)}); err != nil {
		t.Fatal(err)
	}
	if queued.Status != catalog.StatusAtRisk || !strings.Contains(queued.StatusReason, "2 of 3") {
		t.Fatalf("sealed backup with two ciphertext copies: %s %q", queued.Status, queued.StatusReason)
	}
	rep, err := w.h.Reconcile(w.ctx, []string{"gcs"}, periodicStatuses)
	if err != nil || rep.Queued != 1 || rep.Repaired != 1 {
		t.Fatalf("Reconcile: %+v %v", rep, err)
	}
	evs := w.events("gcs")
	if len(evs) != 1 || !evs[0].Sealed || evs[0].Key != queued.Seal.Key || evs[0].Size != int64(len(cipher)) ||
		evs[0].ReplicaKey() != queued.LandingKey {
		t.Fatalf("gcs queue: %+v, want the sealed object's event", evs)
	}
	if got := w.read("gcs", gone.LandingKey); !bytes.Equal(got, cipher) {
		t.Fatalf("repaired copy holds %d bytes, not the ciphertext", len(got))
	}
	r, _ := w.cat.GetReplica(w.ctx, gone.ID, "gcs")
	if r.State != catalog.ReplicaVerified || r.VerifiedSHA256 != sha(cipher) || r.Bytes != int64(len(cipher)) {
		t.Fatalf("repaired replica %+v", r)
	}
	if b, _ := w.cat.GetBackup(w.ctx, gone.ID); b.Status != catalog.StatusProtected {
		t.Fatalf("repaired sealed backup is %s (%s)", b.Status, b.StatusReason)
	}
}

// Scrubbing reads sealed copies against the cipher SHA-256 and size: intact
// ciphertext is no finding, a flipped byte is, and the copy is queued to be
// rewritten from the sealed object.
func TestScrubSealedCopies(t *testing.T) {
	w := newWorld(t, scrubbing)
	plain, cipher := payload(5000), payload(5061)
	cipher[0] = 'X'
	b := w.sealedBackup(plain, cipher, 10*time.Minute, "supabase", "s3", "gcs")
	if b.Status != catalog.StatusProtected {
		t.Fatalf("seeded sealed backup is %s (%s)", b.Status, b.StatusReason)
	}
	w.h.Round(w.ctx)
	rep := w.h.Maintain(w.ctx)
	if rep.Scrub.Checked != 3 || rep.Scrub.Corrupt != 0 || rep.Scrub.Missing != 0 || len(rep.Errors) != 0 {
		t.Fatalf("intact ciphertext: %+v, errors %v", rep.Scrub, rep.Errors)
	}
	bad := bytes.Clone(cipher)
	bad[4321] ^= 0x20
	w.gcs.Server.CreateObject(fakestorage.Object{ObjectAttrs: fakestorage.ObjectAttrs{BucketName: w.gcsBucket, Name: b.LandingKey}, Content: bad})
	rep = w.h.Maintain(w.ctx)
	if rep.Scrub.Corrupt != 1 || rep.Scrub.Queued != 1 {
		t.Fatalf("flipped byte: %+v, errors %v", rep.Scrub, rep.Errors)
	}
	evs := w.events("gcs")
	if len(evs) != 1 || !evs[0].Sealed || evs[0].Key != b.Seal.Key {
		t.Fatalf("gcs queue: %+v, want the sealed object's event", evs)
	}
}
