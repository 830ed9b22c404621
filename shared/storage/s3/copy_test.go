package s3

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/wedsync/backup-replication/shared/storage"
)

// fixture streams size deterministic bytes and knows their SHA-256.
type fixture struct {
	seed [32]byte
	size int64
	sum  string
}

func newFixture(name string, size int64) fixture {
	f := fixture{seed: sha256.Sum256([]byte(name)), size: size}
	h := sha256.New()
	io.Copy(h, f.reader())
	f.sum = hex.EncodeToString(h.Sum(nil))
	return f
}

func (f fixture) reader() io.Reader { return io.LimitReader(rand.NewChaCha8(f.seed), f.size) }

// readSHA256 reads the whole object and returns its size and SHA-256.
func readSHA256(t *testing.T, p storage.Provider, key string) (int64, string) {
	t.Helper()
	rc, err := p.Get(t.Context(), key, 0, -1)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, rc)
	if err != nil {
		t.Fatalf("Get(%q): reading: %v", key, err)
	}
	return n, hex.EncodeToString(h.Sum(nil))
}

func TestCopy(t *testing.T) {
	landingCfg, replicaCfg := testConfig(t), testConfig(t)
	landing, replica := newProvider(t, landingCfg), newProvider(t, replicaCfg)
	// Small copy parts so that a 12 MiB object goes by UploadPartCopy.
	parted := newProvider(t, replicaCfg)
	parted.copyThreshold, parted.copyPart = 5<<20, 5<<20

	cases := []struct {
		name string
		p    *Provider
		key  string
		size int64
	}{
		{"copy-object", replica, "backups/org-1/b-1", 3<<20 + 5},
		{"copy-object-hostile-key", replica, "backups/org 1/café 💍 #1 ?a=b&c+d%20", 1000},
		{"copy-object-empty", replica, "backups/org-1/empty", 0},
		{"upload-part-copy", parted, "backups/org-1/b-big", 12<<20 + 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(tc.name, tc.size)
			if _, err := landing.Put(t.Context(), tc.key, f.reader(), f.size, storage.PutOptions{SHA256: f.sum}); err != nil {
				t.Fatalf("Put to landing: %v", err)
			}
			src := storage.Locator{Endpoint: moto.URL + "/", Bucket: landingCfg.Bucket, Key: tc.key, Size: f.size}
			info, err := tc.p.Copy(t.Context(), src, tc.key, storage.PutOptions{
				SHA256: f.sum, ContentType: "application/x-backup", Metadata: map[string]string{"backup-id": "b-1"}})
			if err != nil {
				t.Fatalf("Copy: %v", err)
			}
			if info.Size != f.size || info.SHA256 != f.sum || info.Metadata["backup-id"] != "b-1" || info.ContentType != "application/x-backup" {
				t.Errorf("Copy returned %+v", info)
			}
			if tc.p == replica && info.Checksums.SHA256 != f.sum {
				t.Errorf("CopyObject: S3's SHA-256 of the copy is %q, want %s", info.Checksums.SHA256, f.sum)
			}
			if n, sum := readSHA256(t, replica, tc.key); n != f.size || sum != f.sum {
				t.Errorf("copy reads back %d bytes %s, want %d %s", n, sum, f.size, f.sum)
			}
		})
	}

	t.Run("wrong-sha256", func(t *testing.T) {
		f := newFixture("wrong", 4096)
		key := "backups/org-1/wrong"
		if _, err := landing.Put(t.Context(), key, f.reader(), f.size, storage.PutOptions{SHA256: f.sum}); err != nil {
			t.Fatal(err)
		}
		other := newFixture("other", 4096).sum
		for _, p := range []*Provider{replica, parted} {
			_, err := p.Copy(t.Context(), storage.Locator{Endpoint: moto.URL, Bucket: landingCfg.Bucket, Key: key}, key, storage.PutOptions{SHA256: other})
			if storage.KindOf(err) != storage.Integrity {
				t.Errorf("Copy with a wrong SHA-256 = %v, want kind integrity", err)
			}
			if _, err := p.Stat(t.Context(), key); storage.KindOf(err) != storage.NotFound {
				t.Errorf("after a failed copy Stat = %v, want not found", err)
			}
		}
	})

	t.Run("wrong-sha256-source-without-checksum", func(t *testing.T) {
		// An app's presigned upload leaves no checksum on the landing
		// object: the copy itself is what S3 hashes and Copy checks.
		f := newFixture("plain", 6<<20+1)
		key := "backups/org-1/plain"
		if _, err := landing.client.PutObject(t.Context(), &s3.PutObjectInput{
			Bucket: aws.String(landingCfg.Bucket), Key: aws.String(key), Body: f.reader(), ContentLength: aws.Int64(f.size),
		}, withPayloadHash(f.sum)); err != nil {
			t.Fatal(err)
		}
		src := storage.Locator{Endpoint: moto.URL, Bucket: landingCfg.Bucket, Key: key}
		_, err := replica.Copy(t.Context(), src, key, storage.PutOptions{SHA256: newFixture("other", 1).sum})
		if storage.KindOf(err) != storage.Integrity {
			t.Errorf("CopyObject with a wrong SHA-256 = %v, want kind integrity", err)
		}
		if _, err := replica.Stat(t.Context(), key); storage.KindOf(err) != storage.NotFound {
			t.Errorf("after a failed copy Stat = %v, want not found", err)
		}
		// By parts, S3 keeps only a composite checksum: Copy cannot prove
		// the bytes and says so by reporting no provider SHA-256.
		info, err := parted.Copy(t.Context(), src, key+"-parted", storage.PutOptions{SHA256: f.sum})
		if err != nil {
			t.Fatalf("UploadPartCopy: %v", err)
		}
		if info.Checksums.SHA256 != "" {
			t.Errorf("UploadPartCopy claims a full-object SHA-256 %q it cannot have", info.Checksums.SHA256)
		}
	})

	t.Run("wrong-size", func(t *testing.T) {
		f := newFixture("sized", 100)
		key := "backups/org-1/sized"
		if _, err := landing.Put(t.Context(), key, f.reader(), f.size, storage.PutOptions{SHA256: f.sum}); err != nil {
			t.Fatal(err)
		}
		_, err := replica.Copy(t.Context(), storage.Locator{Endpoint: moto.URL, Bucket: landingCfg.Bucket, Key: key, Size: 101}, key, storage.PutOptions{SHA256: f.sum})
		if storage.KindOf(err) != storage.Integrity {
			t.Errorf("Copy of a source with another size = %v, want kind integrity", err)
		}
	})

	t.Run("missing-source", func(t *testing.T) {
		_, err := replica.Copy(t.Context(), storage.Locator{Endpoint: moto.URL, Bucket: landingCfg.Bucket, Key: "nope"}, "nope", storage.PutOptions{SHA256: newFixture("x", 1).sum})
		if storage.KindOf(err) != storage.NotFound {
			t.Errorf("Copy of a missing source = %v, want kind not_found", err)
		}
	})

	t.Run("other-store", func(t *testing.T) {
		for _, ep := range []string{"", "http://127.0.0.1:1", "https://s3.eu-west-1.amazonaws.com"} {
			_, err := replica.Copy(t.Context(), storage.Locator{Endpoint: ep, Bucket: landingCfg.Bucket, Key: "k"}, "k", storage.PutOptions{SHA256: newFixture("x", 1).sum})
			if !errors.Is(err, storage.ErrCannotCopy) {
				t.Errorf("Copy from endpoint %q = %v, want storage.ErrCannotCopy", ep, err)
			}
		}
		c, ok := storage.As[storage.Copier](replica)
		if !ok || c == nil {
			t.Errorf("storage.As does not find the Copier")
		}
	})
}
