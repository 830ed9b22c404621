package health

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/fsouza/fake-gcs-server/fakestorage"

	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/storage"
)

func scrubbing(c *Config) { c.ScrubBytes = 1 << 20 }

// A copy changed on the provider behind our back is found by scrubbing,
// marked FAILED, alerted once, and queued to be rewritten from landing.
func TestScrubFindsCorruptCopyAndRequeuesIt(t *testing.T) {
	w := newWorld(t, scrubbing)
	data := payload(5000)
	b := w.backup(data, 10*time.Minute, "supabase", "s3", "gcs")
	if b.Status != catalog.StatusProtected {
		t.Fatalf("seeded backup is %s", b.Status)
	}
	w.h.Round(w.ctx)
	bad := bytes.Clone(data)
	bad[4321] ^= 0x20
	w.gcs.Server.CreateObject(fakestorage.Object{ObjectAttrs: fakestorage.ObjectAttrs{BucketName: w.gcsBucket, Name: b.LandingKey}, Content: bad})

	rep := w.h.Maintain(w.ctx)
	if rep.Scrub.Checked != 3 || rep.Scrub.Corrupt != 1 || rep.Scrub.Queued != 1 || rep.Scrub.Missing != 0 || len(rep.Errors) != 0 {
		t.Fatalf("scrub: %+v, errors %v", rep.Scrub, rep.Errors)
	}
	r, _ := w.cat.GetReplica(w.ctx, b.ID, "gcs")
	if r.State != catalog.ReplicaFailed || r.LastErrorKind != "integrity" || !strings.Contains(r.LastError, "scrub") {
		t.Errorf("gcs replica: %+v", r)
	}
	if got, _ := w.cat.GetBackup(w.ctx, b.ID); got.Status != catalog.StatusAtRisk {
		t.Errorf("backup with a corrupt copy is %s", got.Status)
	}
	evs := w.events("gcs")
	if len(evs) != 1 || evs[0].BackupID != b.ID || evs[0].Key != b.LandingKey || evs[0].Bucket != w.landing || evs[0].Size != b.Size {
		t.Errorf("gcs queue: %+v", evs)
	}
	a := w.alertsSent()
	if len(a) != 1 || a[0].incident() != "integrity:"+b.ID+":gcs" || !strings.Contains(a[0].Message, "queued") {
		t.Fatalf("alerts: %+v", a)
	}

	// The next run neither re-reads the FAILED copy nor alerts again.
	rep = w.h.Maintain(w.ctx)
	if rep.Scrub.Corrupt != 0 || len(w.alertsSent()) != 0 {
		t.Errorf("second run: %+v", rep.Scrub)
	}
	// The replicate function rewrites it (here: by hand) and the incident
	// closes with one recovery message.
	if _, err := w.direct["gcs"].Put(w.ctx, b.LandingKey, bytes.NewReader(data), b.Size, storage.PutOptions{SHA256: b.SHA256}); err != nil {
		t.Fatal(err)
	}
	w.replica(b, "gcs", catalog.ReplicaVerified)
	w.h.Maintain(w.ctx)
	if a := w.alertsSent(); len(a) != 1 || a[0].phase() != "resolved" {
		t.Errorf("after the rewrite: %+v", a)
	}
}

// With the landing object gone, scrubbing repairs a corrupt and a missing
// copy from a good one, proves them by reading back, and the backup is
// PROTECTED again.
func TestScrubRepairsFromAnotherCopy(t *testing.T) {
	w := newWorld(t, scrubbing)
	data := payload(7000)
	b := w.backup(data, 10*time.Minute, "supabase", "s3", "gcs")
	w.h.Round(w.ctx)
	if _, err := w.s3.DeleteObject(w.ctx, &s3.DeleteObjectInput{Bucket: aws.String(w.landing), Key: aws.String(b.LandingKey)}); err != nil {
		t.Fatal(err)
	}
	bad := bytes.ToUpper(data)
	if _, err := w.direct["supabase"].Put(w.ctx, b.LandingKey, bytes.NewReader(bad), int64(len(bad)), storage.PutOptions{SHA256: sha(bad)}); err != nil {
		t.Fatal(err)
	}
	if err := w.direct["s3"].Delete(w.ctx, b.LandingKey); err != nil {
		t.Fatal(err)
	}

	rep := w.h.Maintain(w.ctx)
	if rep.Scrub.Corrupt != 1 || rep.Scrub.Missing != 1 || rep.Scrub.Repaired != 2 || rep.Scrub.Queued != 0 {
		t.Fatalf("scrub: %+v, errors %v", rep.Scrub, rep.Errors)
	}
	for _, name := range []string{"supabase", "s3"} {
		if got := w.read(name, b.LandingKey); !bytes.Equal(got, data) {
			t.Errorf("%s holds %d bytes that are not the backup", name, len(got))
		}
		r, _ := w.cat.GetReplica(w.ctx, b.ID, name)
		if r.State != catalog.ReplicaVerified || r.Evidence != "sha256-readback" || r.VerifiedSHA256 != b.SHA256 {
			t.Errorf("%s replica: %+v", name, r)
		}
	}
	if got, _ := w.cat.GetBackup(w.ctx, b.ID); got.Status != catalog.StatusProtected {
		t.Errorf("repaired backup is %s (%s)", got.Status, got.StatusReason)
	}
	opened := w.alertsSent()
	if len(opened) != 2 {
		t.Fatalf("alerts: %+v", opened)
	}
	for _, a := range opened {
		if a.phase() != "open" || !strings.Contains(a.Message, "Repaired here: copied from gcs") {
			t.Errorf("alert: %s", a.Message)
		}
	}
	w.h.Maintain(w.ctx)
	if closed := w.alertsSent(); len(closed) != 2 || closed[0].phase() != "resolved" || closed[1].phase() != "resolved" {
		t.Errorf("after repair: %+v", closed)
	}
}

// The byte budget bounds each run, and the rotation carries on where the
// last run stopped, so every copy is read in turn.
func TestScrubRotatesWithinBudget(t *testing.T) {
	w := newWorld(t, func(c *Config) { c.ScrubBytes = 2500 })
	var ids []string
	for i := 0; i < 4; i++ {
		ids = append(ids, w.backup(payload(1000), 10*time.Minute, "s3").ID)
	}
	w.h.Round(w.ctx)
	first := w.h.Maintain(w.ctx).Scrub
	second := w.h.Maintain(w.ctx).Scrub
	third := w.h.Maintain(w.ctx).Scrub
	if first.Checked != 2 || first.Bytes["s3"] != 2000 || second.Checked != 2 || third.Checked != 2 {
		t.Errorf("runs within a 2500-byte budget checked %d, %d, %d copies (%+v)", first.Checked, second.Checked, third.Checked, first)
	}
	// The first run stops at the third backup, the second starts there and
	// finishes the pass with the fourth.
	if first.Backups != 3 || second.Backups != 2 {
		t.Errorf("visited %d then %d backups; want 3 (the third did not fit) then 2", first.Backups, second.Backups)
	}
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
