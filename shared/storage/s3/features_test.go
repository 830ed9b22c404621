package s3

import (
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/wedsync/backup-replication/shared/storage"
)

func TestListPages(t *testing.T) {
	cfg := testConfig(t)
	p := newProvider(t, cfg)
	p.listPage = 2
	want := map[string]bool{}
	for i := range 7 {
		key := fmt.Sprintf("paged/%02d", i)
		f := newFixture(key, int64(i))
		if _, err := p.Put(t.Context(), key, f.reader(), f.size, storage.PutOptions{SHA256: f.sum}); err != nil {
			t.Fatal(err)
		}
		want[key] = true
	}
	got := map[string]bool{}
	if err := p.List(t.Context(), "paged/", func(o storage.ObjectInfo) error { got[o.Key] = true; return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Errorf("List over pages of 2 found %d objects, want %d: %v", len(got), len(want), got)
	}
}

func TestObjectLock(t *testing.T) {
	cfg := testConfig(t)
	cfg.Bucket = "locked-" + randomHex(6)
	cfg.ObjectLockMode, cfg.ObjectLockRetention = "GOVERNANCE", time.Hour
	cfg.PartSize, cfg.MultipartThreshold = 5<<20, 5<<20
	p := newProvider(t, cfg)
	p.copyThreshold, p.copyPart = 5<<20, 5<<20
	if _, err := p.client.CreateBucket(t.Context(), &s3.CreateBucketInput{
		Bucket: aws.String(cfg.Bucket), ObjectLockEnabledForBucket: aws.Bool(true)}); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	put := func(key string, size int64) error {
		f := newFixture(key, size)
		_, err := p.Put(t.Context(), key, f.reader(), size, storage.PutOptions{SHA256: f.sum})
		return err
	}
	cases := []struct {
		name  string
		write func(key string) error
	}{
		{"put-object", func(key string) error { return put(key, 10) }},
		{"multipart", func(key string) error { return put(key, 6<<20+1) }},
		{"copy-by-parts", func(key string) error {
			if err := put(key+"-src", 6<<20+1); err != nil {
				return err
			}
			src := storage.Locator{Endpoint: moto.URL, Bucket: cfg.Bucket, Key: key + "-src"}
			_, err := p.Copy(t.Context(), src, key, storage.PutOptions{SHA256: newFixture(key+"-src", 6<<20+1).sum})
			return err
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			key := "immutable-" + tc.name
			if err := tc.write(key); err != nil {
				t.Fatalf("write under object lock: %v", err)
			}
			head, err := p.client.HeadObject(t.Context(), &s3.HeadObjectInput{Bucket: aws.String(cfg.Bucket), Key: aws.String(key)})
			if err != nil {
				t.Fatal(err)
			}
			until := aws.ToTime(head.ObjectLockRetainUntilDate)
			if head.ObjectLockMode != types.ObjectLockModeGovernance || time.Until(until) < 50*time.Minute {
				t.Errorf("lock mode %q until %v, want GOVERNANCE for an hour", head.ObjectLockMode, until)
			}
			// A locked version cannot be removed without a governance bypass.
			_, err = p.client.DeleteObject(t.Context(), &s3.DeleteObjectInput{Bucket: aws.String(cfg.Bucket), Key: aws.String(key), VersionId: head.VersionId})
			if err == nil {
				t.Errorf("deleting the locked version succeeded")
			}
		})
	}
}
