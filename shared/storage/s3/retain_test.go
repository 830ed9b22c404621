package s3

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/wedsync/backup-replication/shared/storage"
	"github.com/wedsync/backup-replication/shared/storage/storagetest"
)

// TestRetainUntil extends a copy's object lock on a lock-enabled bucket on
// moto, never shortens it, and says NotFound for a missing object and
// Permanent on a provider without a lock.
func TestRetainUntil(t *testing.T) {
	cfg := testConfig(t)
	plain := newProvider(t, cfg)
	cfg.Bucket = "retain-" + randomHex(6)
	cfg.ObjectLockMode, cfg.ObjectLockRetention = "GOVERNANCE", time.Hour
	p := newProvider(t, cfg)
	if _, err := p.client.CreateBucket(t.Context(), &s3.CreateBucketInput{
		Bucket: aws.String(cfg.Bucket), ObjectLockEnabledForBucket: aws.Bool(true)}); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	key := "backups/org-1/backup-1"
	f := newFixture(key, 10)
	if _, err := p.Put(t.Context(), key, f.reader(), f.size, storage.PutOptions{SHA256: f.sum}); err != nil {
		t.Fatal(err)
	}
	stored := func() time.Time {
		t.Helper()
		// HeadObject: moto 5.2 has no GetObjectRetention.
		head, err := p.client.HeadObject(t.Context(), &s3.HeadObjectInput{Bucket: aws.String(cfg.Bucket), Key: aws.String(key)})
		if err != nil {
			t.Fatalf("HeadObject: %v", err)
		}
		if head.ObjectLockMode != "GOVERNANCE" {
			t.Errorf("mode %q, want GOVERNANCE", head.ObjectLockMode)
		}
		return aws.ToTime(head.ObjectLockRetainUntilDate).UTC()
	}
	storagetest.Retainer(t, p, plain, key, stored)
}
