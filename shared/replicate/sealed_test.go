package replicate

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/policy"
	"github.com/wedsync/backup-replication/shared/storage"
)

// putSealed writes cipher at b's sealed key in the landing bucket, as the
// seal step does, and returns the key.
func (e *env) putSealed(b catalog.Backup, cipher []byte) string {
	e.t.Helper()
	key := SealedPrefix + b.OrganizationID + "/" + b.ID
	if _, err := e.s3.PutObject(e.t.Context(), &s3.PutObjectInput{Bucket: aws.String(e.landing), Key: aws.String(key),
		Body: bytes.NewReader(cipher)}); err != nil {
		e.t.Fatal(err)
	}
	return key
}

// recordSeal records the seal of b's sealed object, which holds bytes with
// cipherSHA256 and size.
func (e *env) recordSeal(b catalog.Backup, cipherSHA256 string, size int64) catalog.Backup {
	e.t.Helper()
	err := e.store.SetSeal(e.t.Context(), b.ID, catalog.Seal{Key: SealedPrefix + b.OrganizationID + "/" + b.ID,
		Format: "tink-aes256-gcm-hkdf-1mb", KMSKeyID: "alias/ws191/org/" + b.OrganizationID,
		CipherSHA256: cipherSHA256, CipherSize: size})
	if err != nil {
		e.t.Fatal(err)
	}
	return e.backup(b.ID)
}

// seal stands in for the seal step: the sealed object written, its seal
// recorded, the plaintext landing object deleted.
func (e *env) seal(b catalog.Backup, cipher []byte) catalog.Backup {
	e.t.Helper()
	e.putSealed(b, cipher)
	b = e.recordSeal(b, sum(cipher), int64(len(cipher)))
	if _, err := e.s3.DeleteObject(e.t.Context(), &s3.DeleteObjectInput{Bucket: aws.String(e.landing),
		Key: aws.String(b.LandingKey)}); err != nil {
		e.t.Fatal(err)
	}
	return b
}

// sealedMessage is the SQS record EventBridge delivers for b's sealed
// object.
func (e *env) sealedMessage(b catalog.Backup, receive int) events.SQSMessage {
	sealed := b
	sealed.LandingKey, sealed.Size = SealedPrefix+b.OrganizationID+"/"+b.ID, b.Size
	if b.Seal != nil {
		sealed.Size = b.Seal.CipherSize
	}
	return e.message(sealed, receive)
}

func requireSeal(c *Config) { c.RequireSeal = true }

// The sealed object is what every provider receives, under the backup's
// own key: streamed to S3, copied server-side within S3, streamed to GCS.
// Each replica is verified against the seal's cipher SHA-256 and size, the
// providers hold exactly the ciphertext (and nothing under sealed/), and
// the policy counts the copies: PROTECTED.
func TestSealedObjectIsWhatProvidersReceive(t *testing.T) {
	e := newEnv(t)
	e.bucket("replica-a")
	e.bucket("replica-b")
	streamed := e.streamingS3("replica-a")
	copied := e.s3Provider("s3-copy", "replica-b", moto.URL)
	offsite := e.gcsProvider()
	plain := randomBytes(1<<20 + 3)
	cipher := randomBytes(1<<20 + 3 + 61)
	b := e.seal(e.upload(plain, ""), cipher)

	for _, p := range []storage.Provider{streamed, copied, offsite} {
		if failed := handle(t, e.handlerWith(p, requireSeal, nil), e.sealedMessage(b, 1)); len(failed) != 0 {
			t.Fatalf("%s: batch item failures %v; logs:\n%v", p.Name(), failed, e.logs.lines())
		}
		r := e.replica(b, p.Name())
		if r.State != catalog.ReplicaVerified || r.VerifiedSHA256 != sum(cipher) || r.Bytes != int64(len(cipher)) ||
			r.Key != b.LandingKey {
			t.Fatalf("%s replica %+v", p.Name(), r)
		}
		if got := readSum(t, p, b.LandingKey); got != sum(cipher) {
			t.Fatalf("%s holds sha256 %q under %s, want the ciphertext's", p.Name(), got, b.LandingKey)
		}
		if got := readSum(t, p, b.Seal.Key); got != "" {
			t.Fatalf("%s holds an object under the sealed key", p.Name())
		}
		st, err := p.Stat(t.Context(), b.LandingKey)
		if err != nil || st.ContentType != sealedContentType || st.Metadata["seal-format"] != b.Seal.Format {
			t.Fatalf("%s copy's content type %q, metadata %v (%v)", p.Name(), st.ContentType, st.Metadata, err)
		}
	}
	if !hasTransfer(e.logs, "s3-copy", "copy") {
		t.Errorf("s3-copy did not copy server-side from the sealed key: %v", e.logs.lines())
	}
	final := e.backup(b.ID)
	if final.Status != catalog.StatusProtected || final.ProtectedAt == nil {
		t.Fatalf("backup %s %q", final.Status, final.StatusReason)
	}
}

// hasTransfer reports whether a "transfer" line of provider used method.
func hasTransfer(logs *lockedBuffer, provider, method string) bool {
	for _, l := range logs.lines() {
		if l["msg"] == "transfer" && l["provider"] == provider && l["op"] == method && l["error"] == nil {
			return true
		}
	}
	return false
}

// The plaintext landing event belongs to the seal step: with RequireSeal it
// is consumed with an info line and nothing copied; once the backup is
// sealed it is consumed whatever RequireSeal says. A plaintext copy made
// before sealing no longer counts and is replaced by the sealed bytes.
func TestPlaintextEventLeftToTheSealStep(t *testing.T) {
	e := newEnv(t)
	e.bucket("replica")
	p := e.streamingS3("replica")
	plain := randomBytes(64 << 10)
	b := e.upload(plain, "")

	if failed := handle(t, e.handlerWith(p, requireSeal, nil), e.message(b, 1)); len(failed) != 0 {
		t.Fatalf("failed %v", failed)
	}
	if _, err := e.store.GetReplica(t.Context(), b.ID, "s3"); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("replica recorded for a plaintext event: %v", err)
	}
	if got := readSum(t, p, b.LandingKey); got != "" {
		t.Fatal("plaintext copied to the provider")
	}
	if !slices.ContainsFunc(e.logs.lines(), func(l map[string]any) bool {
		return l["level"] == "INFO" && l["op"] == "replicate" && strings.Contains(l["msg"].(string), "waiting for the seal step") &&
			l["backup_id"] == b.ID
	}) {
		t.Fatalf("no info line saying the event waits for the seal step: %v", e.logs.lines())
	}

	// Without RequireSeal (no seal step deployed) the plaintext is copied.
	if failed := handle(t, e.handler(p, nil, nil), e.message(b, 1)); len(failed) != 0 {
		t.Fatalf("failed %v", failed)
	}
	if r := e.replica(b, "s3"); r.VerifiedSHA256 != b.SHA256 {
		t.Fatalf("plaintext replica %+v", r)
	}
	cipher := randomBytes(64<<10 + 61)
	b = e.seal(b, cipher)
	reps, _ := e.store.Replicas(t.Context(), b.ID)
	if res := policy.Evaluate(b, reps, testTable); res.Verified != 0 || !strings.Contains(res.Reason, "sealed object's SHA-256") {
		t.Fatalf("plaintext copy of a sealed backup still counts: %+v", res)
	}
	// A late plaintext delivery copies nothing, even without RequireSeal.
	if failed := handle(t, e.handler(p, nil, nil), e.message(b, 2)); len(failed) != 0 {
		t.Fatalf("failed %v", failed)
	}
	if got := readSum(t, p, b.LandingKey); got != sum(plain) {
		t.Fatalf("provider holds %q after a late plaintext event", got)
	}
	if failed := handle(t, e.handler(p, nil, nil), e.sealedMessage(b, 1)); len(failed) != 0 {
		t.Fatalf("failed %v", failed)
	}
	if r := e.replica(b, "s3"); r.VerifiedSHA256 != sum(cipher) || r.Attempts != 2 {
		t.Fatalf("replica after the sealed event %+v", r)
	}
	if got := readSum(t, p, b.LandingKey); got != sum(cipher) {
		t.Fatal("the plaintext copy was not replaced by the ciphertext")
	}
}

// The seal step records the seal after writing the sealed object, so its
// event can come first: replicate waits for the record (SealWait), and
// returns the message to the queue when it does not come.
func TestSealedEventWaitsForTheSealRecord(t *testing.T) {
	e := newEnv(t)
	e.bucket("replica")
	p := e.streamingS3("replica")
	cipher := randomBytes(8 << 10)

	late := e.upload(randomBytes(4096), "")
	e.putSealed(late, cipher)
	go func() {
		time.Sleep(300 * time.Millisecond)
		if err := e.store.SetSeal(t.Context(), late.ID, catalog.Seal{Key: SealedPrefix + late.OrganizationID + "/" + late.ID,
			Format: "tink-aes256-gcm-hkdf-1mb", KMSKeyID: "k", CipherSHA256: sum(cipher), CipherSize: int64(len(cipher))}); err != nil {
			t.Error(err)
		}
	}()
	h := e.handlerWith(p, func(c *Config) { c.RequireSeal, c.SealWait = true, 20*time.Second }, nil)
	msg := e.sealedMessage(late, 1)
	if failed := handle(t, h, msg); len(failed) != 0 {
		t.Fatalf("failed %v: %v", failed, e.logs.lines())
	}
	if r := e.replica(late, "s3"); r.State != catalog.ReplicaVerified || r.VerifiedSHA256 != sum(cipher) {
		t.Fatalf("replica %+v", r)
	}

	never := e.upload(randomBytes(4096), "")
	e.putSealed(never, cipher)
	h = e.handlerWith(p, func(c *Config) { c.RequireSeal, c.SealWait = true, 100*time.Millisecond }, nil)
	msg = e.message(never, 1)
	msg.Body = strings.Replace(msg.Body, `"backups/`, `"sealed/`, 1)
	if failed := handle(t, h, msg); len(failed) != 1 {
		t.Fatalf("failed %v, want the message back", failed)
	}
	if _, err := e.store.GetReplica(t.Context(), never.ID, "s3"); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("replica recorded without a seal: %v", err)
	}
}

// A sealed object that does not match its seal (other bytes, same size) is
// never replicated: the backup becomes FAILED, by streaming and by
// server-side copy alike, and no provider keeps a copy.
func TestSealedObjectNotMatchingItsSealFails(t *testing.T) {
	e := newEnv(t)
	e.bucket("replica")
	for _, p := range []storage.Provider{e.streamingS3("replica"), e.s3Provider("s3-copy", "replica", moto.URL)} {
		b := e.upload(randomBytes(4096), "")
		cipher := randomBytes(6000)
		e.putSealed(b, cipher)
		b = e.recordSeal(b, sum(randomBytes(6000)), int64(len(cipher)))
		if failed := handle(t, e.handlerWith(p, requireSeal, nil), e.sealedMessage(b, 1)); len(failed) != 0 {
			t.Fatalf("%s: failed %v", p.Name(), failed)
		}
		st := e.backup(b.ID)
		if st.Status != catalog.StatusFailed || !strings.Contains(st.StatusReason, "sealed object") {
			t.Fatalf("%s: backup %s %q", p.Name(), st.Status, st.StatusReason)
		}
		if _, err := p.Stat(t.Context(), b.LandingKey); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("%s keeps a copy of a sealed object that broke its seal: %v", p.Name(), err)
		}
	}
}

// A sealed event naming another object than the recorded seal is never
// copied: it goes back to the queue (and on to the dead-letter queue).
func TestSealedEventForAnotherObjectIsRefused(t *testing.T) {
	e := newEnv(t)
	e.bucket("replica")
	p := e.streamingS3("replica")
	cipher := randomBytes(4096)
	b := e.upload(randomBytes(1024), "")
	e.putSealed(b, cipher)
	err := e.store.SetSeal(t.Context(), b.ID, catalog.Seal{Key: SealedPrefix + b.OrganizationID + "/other",
		Format: "tink-aes256-gcm-hkdf-1mb", KMSKeyID: "k", CipherSHA256: sum(cipher), CipherSize: int64(len(cipher))})
	if err != nil {
		t.Fatal(err)
	}
	b = e.backup(b.ID)
	msg := e.message(b, 1)
	msg.Body = strings.Replace(msg.Body, `"backups/`, `"sealed/`, 1)
	if failed := handle(t, e.handlerWith(p, requireSeal, nil), msg); len(failed) != 1 {
		t.Fatalf("failed %v, want the message back", failed)
	}
	if _, err := e.store.GetReplica(t.Context(), b.ID, "s3"); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("replica recorded: %v", err)
	}
}

// Failover, park and backfill carry the sealed event: while s3's breaker
// is open the standby receives the ciphertext, the message waiting in s3's
// queue still names the sealed object, and the backfill copies the
// ciphertext to s3 and expires the standby's copy.
func TestSealedFailoverParkAndBackfill(t *testing.T) {
	e := newEnv(t)
	for _, name := range []string{"replica", "replica-b", "standby"} {
		e.bucket(name)
	}
	q := e.queue()
	clk := &clock{t: time.Now()}
	standby := e.s3Provider("s3-standby", "standby", moto.URL)
	h := e.handlerWith(e.streamingS3("replica"), func(c *Config) {
		c.QueueURL, c.ParkMin, c.ParkMax, c.RequireSeal = q.url, time.Second, time.Second, true
	}, func(d *Deps) { d.Gate, d.Queue, d.Now, d.Standby = openBreaker(t, "s3", clk), q.sqs, clk.Now, standby })
	cipher := randomBytes(100<<10 + 61)
	b := e.seal(e.upload(randomBytes(100<<10), ""), cipher)
	for _, p := range []storage.Provider{e.s3Provider("s3-copy", "replica-b", moto.URL), e.gcsProvider()} {
		if failed := handle(t, e.handlerWith(p, requireSeal, nil), e.sealedMessage(b, 1)); len(failed) != 0 {
			t.Fatalf("%s: %v", p.Name(), failed)
		}
	}
	if failed := handle(t, h, e.sealedMessage(b, 1)); len(failed) != 0 {
		t.Fatalf("while s3 is down: failed %v", failed)
	}
	if r := e.replica(b, "s3-standby"); r.State != catalog.ReplicaVerified || r.VerifiedSHA256 != sum(cipher) {
		t.Fatalf("standby replica %+v", r)
	}
	if got := readSum(t, standby, b.LandingKey); got != sum(cipher) {
		t.Fatalf("standby holds %q, want the ciphertext", got)
	}
	if st := e.backup(b.ID); st.Status != catalog.StatusProtected {
		t.Fatalf("with the standby: %s %q", st.Status, st.StatusReason)
	}
	waiting := q.receive(5 * time.Second)
	if len(waiting) != 1 {
		t.Fatalf("%d messages waiting", len(waiting))
	}
	if ev, err := ParseEvent(waiting[0].Body); err != nil || !ev.Sealed || ev.Key != b.Seal.Key {
		t.Fatalf("parked message %+v %v, want the sealed event", ev, err)
	}
	clk.advance(2 * time.Minute)
	if failed := handle(t, h, waiting[0]); len(failed) != 0 {
		t.Fatalf("backfill failed: %v", failed)
	}
	if r := e.replica(b, "s3"); r.State != catalog.ReplicaVerified || r.VerifiedSHA256 != sum(cipher) {
		t.Fatalf("s3 replica after backfill %+v", r)
	}
	if r := e.replica(b, "s3-standby"); r.State != catalog.ReplicaDeleted {
		t.Fatalf("standby copy after backfill %+v", r)
	}
	if _, err := standby.Stat(t.Context(), b.LandingKey); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("standby copy still stored: %v", err)
	}
}
