package providers

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/wedsync/backup-replication/shared/storage"
)

// The lock settings of the configuration reach the providers: with
// S3_REPLICA_OBJECT_LOCK_RETENTION (the secret path) and
// S3_STANDBY_OBJECT_LOCK_RETENTION/_MODE (the function's own role), every
// copy written is under retention in the mode asked, for the time asked.
func TestBuildWritesUnderObjectLock(t *testing.T) {
	w := newWorld(t)
	s3c := awss3.NewFromConfig(w.awsCfg, func(o *awss3.Options) { o.UsePathStyle = true })
	for _, b := range []string{"locked-replica", "locked-standby"} {
		if _, err := s3c.CreateBucket(t.Context(), &awss3.CreateBucketInput{Bucket: aws.String(b),
			ObjectLockEnabledForBucket: aws.Bool(true)}); err != nil {
			t.Fatal(err)
		}
	}
	env := w.localEnv(t)
	env["S3_REPLICA_BUCKET"], env["S3_STANDBY_BUCKET"] = "locked-replica", "locked-standby"
	env["S3_REPLICA_OBJECT_LOCK_RETENTION"] = "2d"
	env["S3_STANDBY_OBJECT_LOCK_RETENTION"], env["S3_STANDBY_OBJECT_LOCK_MODE"] = "36h", "COMPLIANCE"
	ps, err := build(t, w, env)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("contract signed 2027-06-12")
	sum := sha256.Sum256(data)
	for _, c := range []struct {
		name, bucket string
		mode         types.ObjectLockMode
		retention    time.Duration
	}{
		{"s3", "locked-replica", types.ObjectLockModeGovernance, 48 * time.Hour},
		{"s3-standby", "locked-standby", types.ObjectLockModeCompliance, 36 * time.Hour},
	} {
		before := time.Now()
		if _, err := ps[c.name].Put(t.Context(), "backups/org/locked", bytes.NewReader(data), int64(len(data)),
			storage.PutOptions{SHA256: hex.EncodeToString(sum[:])}); err != nil {
			t.Fatalf("%s put: %v", c.name, err)
		}
		head, err := s3c.HeadObject(t.Context(), &awss3.HeadObjectInput{Bucket: aws.String(c.bucket), Key: aws.String("backups/org/locked")})
		if err != nil {
			t.Fatal(err)
		}
		until := aws.ToTime(head.ObjectLockRetainUntilDate)
		if head.ObjectLockMode != c.mode || until.Before(before.Add(c.retention-time.Minute)) || until.After(time.Now().Add(c.retention+time.Minute)) {
			t.Errorf("%s: lock %q until %v, want %s for %s", c.name, head.ObjectLockMode, until, c.mode, c.retention)
		}
	}
}
