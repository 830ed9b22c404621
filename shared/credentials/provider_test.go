package credentials_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/wedsync/backup-replication/infra/emulator"
	"github.com/wedsync/backup-replication/infra/supaemu"
	"github.com/wedsync/backup-replication/shared/credentials"
	"github.com/wedsync/backup-replication/shared/credentials/credtest"
	"github.com/wedsync/backup-replication/shared/secret"
	"github.com/wedsync/backup-replication/shared/storage"
	"github.com/wedsync/backup-replication/shared/storage/gcs"
	"github.com/wedsync/backup-replication/shared/storage/s3"
	"github.com/wedsync/backup-replication/shared/storage/supabase"
)

// s3Setup is an S3 bucket on IAM-enforcing moto, behind a recorder, with a
// replication user whose first key is the secret's AWSCURRENT.
type s3Setup struct {
	w      *world
	user   string
	key1   credentials.S3Creds
	arn    string
	rec    *credtest.Gate
	p      storage.Provider
	loader *credentials.Loader
	logs   *credtest.Logs
}

func newS3Setup(t *testing.T, clk *clock) *s3Setup {
	w := newWorld(t)
	bucket := w.Bucket()
	user, key1 := w.User(bucket)
	rec, err := credtest.S3Recorder(side.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rec.Close)
	s := &s3Setup{w: w, user: user, key1: key1, arn: w.Secret(key1.Secret()), rec: rec, logs: &credtest.Logs{}}
	s.loader = w.loader(clk)
	s.p, err = credentials.Provider(t.Context(), "s3", s.arn, s.loader, credentials.S3(s3.Config{Name: "s3",
		Bucket: bucket, Region: emulator.MotoRegion, Endpoint: rec.URL, UsePathStyle: true}, side.Admin(), nil), s.logs.Logger())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// moto verifies SigV4 wrongly for keys with "&" or non-ASCII characters
// once IAM is enforced (SignatureDoesNotMatch), so the S3 keys here are
// plain; hostile keys are the provider conformance suite's business.

// TestS3RotationMidTest: the secret rotates to a new key and the old key is
// deleted while the provider still holds it; the next operation is refused
// once with the old key, succeeds with the new one, and every operation
// after that uses the new key only.
func TestS3RotationMidTest(t *testing.T) {
	s := newS3Setup(t, nil)
	ctx := t.Context()
	if err := credtest.RoundTrip(ctx, s.p, "before/rotation.bin", credtest.RandomBytes(2048)); err != nil {
		t.Fatalf("before rotation: %v", err)
	}
	key2 := s.w.NewKey(s.user)
	s.w.Promote(s.arn, s.w.Stage(s.arn, key2.Secret(), credentials.StagePending))
	s.w.DeleteKey(s.user, s.key1.AccessKeyID)

	mark := len(s.rec.Requests())
	if err := credtest.RoundTrip(ctx, s.p, "after/rotation with spaces.bin", credtest.RandomBytes(4096)); err != nil {
		t.Fatalf("first operations after rotation (key1 %s key2 %s): %v%s", s.key1.AccessKeyID, key2.AccessKeyID, err, describe(since(s.rec.Requests(), mark)))
	}
	after := since(s.rec.Requests(), mark)
	if len(after) < 2 || after[0].Credential != s.key1.AccessKeyID || after[0].Status != 403 {
		t.Fatalf("want the first request after rotation refused with the old key:%s", describe(after))
	}
	for _, r := range after[1:] {
		if r.Credential != key2.AccessKeyID || r.Status >= 400 {
			t.Fatalf("after one refusal every request should use the new key and succeed:%s", describe(after))
		}
	}
	if c, ok := storage.As[storage.Copier](s.p); !ok {
		t.Error("the S3 provider's Copier is not found through the credentials layer")
	} else if _, bare := c.(*s3.Provider); bare {
		t.Error("storage.As found the bare S3 provider: a copy would bypass the credentials layer")
	}
	if _, ok := storage.As[storage.Resumer](s.p); !ok {
		t.Error("the S3 provider's Resumer is not found through the credentials layer")
	}
	if !strings.Contains(s.logs.String(), `"reason":"credentials refused"`) {
		t.Errorf("no log line says the credentials were replaced: %s", s.logs.String())
	}
	if strings.Contains(s.logs.String(), key2.SecretAccessKey.Reveal()) || strings.Contains(s.logs.String(), s.key1.SecretAccessKey.Reveal()) {
		t.Fatal("a secret access key is in the logs")
	}
}

// TestS3PendingDuringRotation: the old key is revoked before finishSecret
// moved AWSCURRENT (an operator was quick); the AWSPENDING key carries on.
// Then finishSecret promotes it and nothing changes for the provider.
func TestS3PendingDuringRotation(t *testing.T) {
	s := newS3Setup(t, nil)
	ctx := t.Context()
	key2 := s.w.NewKey(s.user)
	v2 := s.w.Stage(s.arn, key2.Secret(), credentials.StagePending)
	s.w.DeleteKey(s.user, s.key1.AccessKeyID)
	if err := credtest.RoundTrip(ctx, s.p, "window/pending.bin", credtest.RandomBytes(1000)); err != nil {
		t.Fatalf("with AWSCURRENT revoked and AWSPENDING valid: %v", err)
	}
	s.w.Promote(s.arn, v2)
	mark := len(s.rec.Requests())
	if err := credtest.RoundTrip(ctx, s.p, "window/after-finish.bin", credtest.RandomBytes(1000)); err != nil {
		t.Fatalf("after finish: %v", err)
	}
	for _, r := range since(s.rec.Requests(), mark) {
		if r.Credential != key2.AccessKeyID || r.Refused || r.Status >= 400 {
			t.Fatalf("after finish every request should use the pending-now-current key:%s", describe(since(s.rec.Requests(), mark)))
		}
	}
}

// TestS3PreviousWhileNewKeyIsNotAccepted: AWSCURRENT moved to a key the
// store does not accept yet (IAM propagation); the AWSPREVIOUS key, still
// valid, keeps operations going.
func TestS3PreviousWhileNewKeyIsNotAccepted(t *testing.T) {
	clk := newClock()
	s := newS3Setup(t, clk)
	ctx := t.Context()
	unknown := credentials.S3Creds{AccessKeyID: "AKIANOTYETPROPAGATED", SecretAccessKey: "x"}
	s.w.Promote(s.arn, s.w.Stage(s.arn, unknown.Secret(), credentials.StagePending))
	clk.Advance(2 * time.Hour) // the loader's TTL passed: the provider sees the new AWSCURRENT
	mark := len(s.rec.Requests())
	if err := credtest.RoundTrip(ctx, s.p, "prev/after.bin", credtest.RandomBytes(100)); err != nil {
		t.Fatalf("with the new key refused and the previous one valid: %v", err)
	}
	after := since(s.rec.Requests(), mark)
	if len(after) < 2 || after[0].Credential != unknown.AccessKeyID || after[1].Credential != s.key1.AccessKeyID {
		t.Fatalf("want one refusal of the new key, then the previous key:%s", describe(after))
	}
	mark = len(s.rec.Requests())
	if err := credtest.RoundTrip(ctx, s.p, "prev/again.bin", credtest.RandomBytes(100)); err != nil {
		t.Fatal(err)
	}
	for _, r := range since(s.rec.Requests(), mark) {
		if r.Credential != s.key1.AccessKeyID {
			t.Fatalf("the refused AWSCURRENT should not be tried again within the TTL:%s", describe(since(s.rec.Requests(), mark)))
		}
	}
	// No valid key anywhere: the refusal reaches the caller.
	s.w.DeleteKey(s.user, s.key1.AccessKeyID)
	if err := credtest.RoundTrip(ctx, s.p, "prev/none.bin", credtest.RandomBytes(100)); storage.KindOf(err) != storage.Unauthorized {
		t.Fatalf("with no valid key anywhere: %v, want Unauthorized", err)
	}
}

// TestS3NonSeekablePut: a Put whose reader cannot be replayed is not
// retried, but the next operation uses the fresh credentials without being
// refused first.
func TestS3NonSeekablePut(t *testing.T) {
	s := newS3Setup(t, nil)
	ctx := t.Context()
	key2 := s.w.NewKey(s.user)
	s.w.Promote(s.arn, s.w.Stage(s.arn, key2.Secret(), credentials.StagePending))
	s.w.DeleteKey(s.user, s.key1.AccessKeyID)
	data := credtest.RandomBytes(512)
	sum := sha256.Sum256(data)
	_, err := s.p.Put(ctx, "stream.bin", io.MultiReader(bytes.NewReader(data)), int64(len(data)),
		storage.PutOptions{SHA256: hex.EncodeToString(sum[:])})
	if storage.KindOf(err) != storage.Unauthorized {
		t.Fatalf("non-replayable Put with a revoked key: %v, want Unauthorized (it cannot be retried)", err)
	}
	mark := len(s.rec.Requests())
	if err := credtest.RoundTrip(ctx, s.p, "stream.bin", data); err != nil {
		t.Fatal(err)
	}
	if after := since(s.rec.Requests(), mark); len(after) == 0 || after[0].Credential != key2.AccessKeyID || after[0].Refused {
		t.Fatalf("the next operation should use the new key at once:%s", describe(after))
	}
}

// TestS3NonSeekablePutFindsPending: the same with only AWSPENDING valid
// (AWSCURRENT revoked early): the Stat that follows the refused Put finds
// the pending key, and the next operation uses it.
func TestS3NonSeekablePutFindsPending(t *testing.T) {
	s := newS3Setup(t, nil)
	ctx := t.Context()
	key2 := s.w.NewKey(s.user)
	s.w.Stage(s.arn, key2.Secret(), credentials.StagePending)
	s.w.DeleteKey(s.user, s.key1.AccessKeyID)
	data := credtest.RandomBytes(256)
	_, err := s.p.Put(ctx, "pending.bin", io.MultiReader(bytes.NewReader(data)), int64(len(data)), storage.PutOptions{SHA256: sha(string(data))})
	if storage.KindOf(err) != storage.Unauthorized {
		t.Fatalf("non-replayable Put with a revoked key: %v, want Unauthorized", err)
	}
	mark := len(s.rec.Requests())
	if err := credtest.RoundTrip(ctx, s.p, "pending.bin", data); err != nil {
		t.Fatal(err)
	}
	if after := since(s.rec.Requests(), mark); len(after) == 0 || after[0].Credential != key2.AccessKeyID || after[0].Refused {
		t.Fatalf("the next operation should use the pending key at once:%s", describe(after))
	}
}

// TestGCSRotationMidTest: the service-account key in the secret rotates and
// the old key is deleted; the next operation is refused once (the cached
// token of the old key), then runs with a token of the new key.
func TestGCSRotationMidTest(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	fake, err := emulator.StartGCS()
	emulator.Require(t, err)
	t.Cleanup(func() { fake.Close() })
	if err := fake.CreateBucket("offsite"); err != nil {
		t.Fatal(err)
	}
	g, err := credtest.NewGoogle(fake.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	const sa = "replicator@wedsync-test.iam.gserviceaccount.com"
	key1, err := g.ServiceAccount("wedsync-test", sa)
	if err != nil {
		t.Fatal(err)
	}
	arn := w.Secret(secret.Secret(key1))
	p, err := credentials.Provider(ctx, "gcs", arn, w.loader(nil), credentials.GCS(gcs.Config{Name: "gcs",
		Bucket: "offsite", Endpoint: g.URL}, nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := credtest.RoundTrip(ctx, p, "before.bin", credtest.RandomBytes(3000)); err != nil {
		t.Fatalf("before rotation: %v", err)
	}
	old := g.Keys(sa)[0]
	key2, err := g.ServiceAccount("wedsync-test", sa)
	if err != nil {
		t.Fatal(err)
	}
	w.Promote(arn, w.Stage(arn, secret.Secret(key2), credentials.StagePending))
	g.DeleteKey(sa, old)
	newID := g.Keys(sa)[0]

	mark := len(g.Requests())
	if err := credtest.RoundTrip(ctx, p, "after rotation/ü.bin", credtest.RandomBytes(3000)); err != nil {
		t.Fatalf("after rotation: %v", err)
	}
	after := since(g.Requests(), mark)
	if len(after) < 2 || after[0].Credential != old || !after[0].Refused {
		t.Fatalf("want the first request refused with the old key's token:%s", describe(after))
	}
	for _, r := range after[1:] {
		if r.Refused || (r.Credential != "" && r.Credential != newID) {
			t.Fatalf("after one refusal requests should carry the new key's token:%s", describe(after))
		}
	}
	if _, ok := storage.As[storage.Resumer](p); !ok {
		t.Error("the GCS provider's Resumer is not found through the credentials layer")
	}
}

// TestSupabaseRotationMidTest: a new service key goes into the secret and
// the old one is revoked at the gateway; one refusal, then the new key; the
// provider's SignedURL and Resumer are still found, and signing goes
// through the same refetch-and-retry.
func TestSupabaseRotationMidTest(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	emu, err := emulator.StartSupabase(t.TempDir())
	emulator.Require(t, err)
	t.Cleanup(func() { emu.Close() })
	keys := credtest.NewKeySet(emu.ServiceKey)
	gate, err := credtest.SupabaseGate(emu.URL, keys)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gate.Close)
	boot, err := supabase.New(supabase.Config{URL: gate.URL, ServiceKey: secret.Secret(emu.ServiceKey), Bucket: "primary"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := boot.EnsureBucket(ctx); err != nil {
		t.Fatal(err)
	}
	arn := w.Secret(credentials.SupabaseCreds{URL: gate.URL, ServiceKey: secret.Secret(emu.ServiceKey)}.Secret())
	p, err := credentials.Provider(ctx, "supabase", arn, w.loader(nil),
		credentials.Supabase(supabase.Config{Name: "supabase", Bucket: "primary"}, nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := credtest.RoundTrip(ctx, p, "before.bin", credtest.RandomBytes(777)); err != nil {
		t.Fatal(err)
	}
	newKey := supaemu.SignKey(emu.JWTSecret, supaemu.ServiceRole, 24*time.Hour)
	keys.Add(newKey)
	w.Promote(arn, w.Stage(arn, credentials.SupabaseCreds{URL: gate.URL, ServiceKey: secret.Secret(newKey)}.Secret(), credentials.StagePending))
	keys.Remove(emu.ServiceKey)

	mark := len(gate.Requests())
	if err := credtest.RoundTrip(ctx, p, "after/wedding photos (1).bin", credtest.RandomBytes(777)); err != nil {
		t.Fatalf("after rotation: %v", err)
	}
	after := since(gate.Requests(), mark)
	if len(after) < 2 || after[0].Credential != credtest.Fingerprint(emu.ServiceKey) || !after[0].Refused {
		t.Fatalf("want one refusal with the old key first:%s", describe(after))
	}
	for _, r := range after[1:] {
		if r.Refused {
			t.Fatalf("refused again after switching keys:%s", describe(after))
		}
	}
	if _, ok := storage.As[storage.Resumer](p); !ok {
		t.Error("Resumer not found through the credentials layer")
	}
	sg, ok := storage.As[signer](p)
	if !ok {
		t.Fatal("SignedURL not found through the credentials layer")
	}
	if _, ok := sg.(*supabase.Provider); ok {
		t.Fatal("storage.As found the bare provider: signing would bypass the credentials layer")
	}
	if _, err := p.Put(ctx, "signed.bin", bytes.NewReader([]byte("x")), 1, storage.PutOptions{SHA256: sha("x")}); err != nil {
		t.Fatal(err)
	}
	keys.Add(emu.ServiceKey) // roll back: the old key becomes valid, the new one is revoked
	keys.Remove(newKey)
	w.Promote(arn, w.Stage(arn, credentials.SupabaseCreds{URL: gate.URL, ServiceKey: secret.Secret(emu.ServiceKey)}.Secret(), credentials.StagePending))
	mark = len(gate.Requests())
	u, err := sg.SignedURL(ctx, "signed.bin", time.Minute)
	if err != nil || !strings.Contains(u, "token=") {
		t.Fatalf("SignedURL after a second rotation: %q, %v", u, err)
	}
	if after := since(gate.Requests(), mark); len(after) != 2 || !after[0].Refused || after[1].Refused {
		t.Fatalf("SignedURL: want one refusal then success:%s", describe(after))
	}
}

// signer is the SignedURL ability (shared/api's Signer).
type signer interface {
	SignedURL(ctx context.Context, key string, ttl time.Duration) (string, error)
}

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
