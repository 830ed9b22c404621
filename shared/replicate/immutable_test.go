package replicate

import (
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/wedsync/backup-replication/infra/emulator"
	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/policy"
	"github.com/wedsync/backup-replication/shared/secret"
	"github.com/wedsync/backup-replication/shared/storage"
	s3p "github.com/wedsync/backup-replication/shared/storage/s3"
)

// lockedS3 is the S3 provider name on bucket, writing every copy under
// GOVERNANCE retention for retention.
func (e *env) lockedS3(name, bucket, endpoint string, retention time.Duration) storage.Provider {
	e.t.Helper()
	p, err := s3p.New(e.t.Context(), s3p.Config{Name: name, Bucket: e.real(bucket), Region: emulator.MotoRegion,
		Endpoint: endpoint, UsePathStyle: true, AccessKeyID: emulator.MotoAccessKeyID,
		SecretAccessKey: secret.Secret(emulator.MotoSecretAccessKey), ObjectLockMode: "GOVERNANCE", ObjectLockRetention: retention}, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

// A backup replicated to two buckets with S3 Object Lock is recorded
// immutable, each copy really is under retention
// until at least the recorded lower bound, and the policy counts both.
// A provider without a lock writes no retention and its copy is not
// immutable.
func TestCopiesUnderObjectLockAreImmutable(t *testing.T) {
	e := newEnv(t)
	for _, name := range []string{"locked-a", "locked-b"} {
		if _, err := e.s3.CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: aws.String(e.real(name)),
			ObjectLockEnabledForBucket: aws.Bool(true)}); err != nil {
			t.Fatalf("create object lock bucket: %v", err)
		}
	}
	const retention = 48 * time.Hour
	// Both stream: moto refuses a CopyObject with lock headers (it wants
	// Content-MD5 on the copy request, which AWS does not), so the
	// server-side copy under lock cannot be tried here.
	streamed := e.lockedS3("s3", "locked-a", strings.Replace(moto.URL, "127.0.0.1", "localhost", 1), retention)
	copied := e.lockedS3("s3-copy", "locked-b", strings.Replace(moto.URL, "127.0.0.1", "localhost", 1), retention)
	cipher := randomBytes(300 << 10)
	b := e.seal(e.upload(randomBytes(300<<10-61), ""), cipher)
	before := time.Now()
	for _, p := range []storage.Provider{streamed, copied, e.gcsProvider()} {
		h := e.handlerWith(p, func(c *Config) {
			c.RequireSeal, c.Immutable = true, map[string]time.Duration{"s3": retention, "s3-copy": retention}
		}, nil)
		if failed := handle(t, h, e.sealedMessage(b, 1)); len(failed) != 0 {
			t.Fatalf("%s: failed %v: %v", p.Name(), failed, e.logs.lines())
		}
	}
	for name, bucket := range map[string]string{"s3": "locked-a", "s3-copy": "locked-b"} {
		r := e.replica(b, name)
		if r.State != catalog.ReplicaVerified || !r.Immutable {
			t.Fatalf("%s replica %+v, want verified and immutable", name, r)
		}
		head, err := e.s3.HeadObject(t.Context(), &s3.HeadObjectInput{Bucket: aws.String(e.real(bucket)), Key: aws.String(b.LandingKey)})
		if err != nil {
			t.Fatal(err)
		}
		if head.ObjectLockMode != types.ObjectLockModeGovernance || head.ObjectLockRetainUntilDate == nil ||
			head.ObjectLockRetainUntilDate.Before(before.Add(retention).Add(-time.Second)) {
			t.Fatalf("%s copy's lock: mode %q until %v", name, head.ObjectLockMode, head.ObjectLockRetainUntilDate)
		}
		if !hasLockLine(e.logs, name, head.ObjectLockRetainUntilDate) {
			t.Errorf("%s: no log line giving a retain-until no later than the copy's own: %v", name, e.logs.lines())
		}
	}
	if r := e.replica(b, "gcs"); r.State != catalog.ReplicaVerified || r.Immutable {
		t.Fatalf("gcs replica %+v, want verified and not immutable", r)
	}
	reps, _ := e.store.Replicas(t.Context(), b.ID)
	res := policy.Evaluate(e.backup(b.ID), reps, testTable)
	if !res.Protected() || res.Immutable != 2 {
		t.Fatalf("policy %+v, want PROTECTED with 2 immutable copies", res)
	}
}

// hasLockLine reports whether a "copy immutable" line of provider gives a
// retain-until no later than until.
func hasLockLine(logs *lockedBuffer, provider string, until *time.Time) bool {
	for _, l := range logs.lines() {
		if l["msg"] != "copy immutable" || l["provider"] != provider {
			continue
		}
		at, err := time.Parse(time.RFC3339, l["retain_until"].(string))
		if err == nil && !at.After(*until) {
			return true
		}
	}
	return false
}

// A provider configured with a lock on a bucket that cannot hold one
// fails the write: the copy is never recorded immutable (nor verified).
func TestLockOnBucketWithoutObjectLockFails(t *testing.T) {
	e := newEnv(t)
	e.bucket("plain")
	p := e.lockedS3("s3", "plain", strings.Replace(moto.URL, "127.0.0.1", "localhost", 1), time.Hour)
	b := e.upload(randomBytes(4096), "")
	h := e.handlerWith(p, func(c *Config) { c.Immutable = map[string]time.Duration{"s3": time.Hour} }, nil)
	if failed := handle(t, h, e.message(b, 1)); len(failed) != 1 {
		t.Fatalf("failed %v, want the message back", failed)
	}
	if r := e.replica(b, "s3"); r.State != catalog.ReplicaFailed || r.Immutable {
		t.Fatalf("replica %+v", r)
	}
}
