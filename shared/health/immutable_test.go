package health

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/wedsync/backup-replication/infra/emulator"
	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/policy"
	"github.com/wedsync/backup-replication/shared/secret"
	s3p "github.com/wedsync/backup-replication/shared/storage/s3"
)

// A copy the health function repairs onto a provider that writes under
// S3 Object Lock is recorded immutable (and is under retention), and the
// policy counts it.
func TestRepairOntoLockedProviderIsImmutable(t *testing.T) {
	w := newWorld(t, func(c *Config) { c.Immutable = map[string]time.Duration{"s3": 24 * time.Hour} })
	bucket := "locked-" + randHex()
	if _, err := w.s3.CreateBucket(w.ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket),
		ObjectLockEnabledForBucket: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	locked, err := s3p.New(w.ctx, s3p.Config{Name: "s3", Bucket: bucket, Region: emulator.MotoRegion, Endpoint: moto.URL,
		UsePathStyle: true, AccessKeyID: emulator.MotoAccessKeyID, SecretAccessKey: secret.Secret(emulator.MotoSecretAccessKey),
		ObjectLockMode: "GOVERNANCE", ObjectLockRetention: 24 * time.Hour}, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.h.d.Providers["s3"] = locked
	plain, cipher := payload(2000), payload(2061)
	b := w.sealedBackup(plain, cipher, 2*time.Hour, "supabase", "gcs")
	if _, err := w.s3.DeleteObject(w.ctx, &s3.DeleteObjectInput{Bucket: aws.String(w.landing), Key: aws.String(b.Seal.Key)}); err != nil {
		t.Fatal(err)
	}
	rep, err := w.h.Reconcile(w.ctx, []string{"s3"}, periodicStatuses)
	if err != nil || rep.Repaired != 1 {
		t.Fatalf("Reconcile: %+v %v", rep, err)
	}
	r, _ := w.cat.GetReplica(w.ctx, b.ID, "s3")
	if r.State != catalog.ReplicaVerified || !r.Immutable {
		t.Fatalf("repaired replica %+v, want verified and immutable", r)
	}
	head, err := w.s3.HeadObject(w.ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(b.LandingKey)})
	if err != nil || head.ObjectLockMode != types.ObjectLockModeGovernance || head.ObjectLockRetainUntilDate == nil {
		t.Fatalf("repaired copy's lock: %+v %v", head, err)
	}
	reps, _ := w.cat.Replicas(w.ctx, b.ID)
	got, _ := w.cat.GetBackup(w.ctx, b.ID)
	if res := policy.Evaluate(got, reps, testPolicy); !res.Protected() || res.Immutable != 1 {
		t.Fatalf("policy %+v", res)
	}
}
