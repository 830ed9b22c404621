// Package erasetest builds, for tests, everything erasure, retention,
// download and restore touch, each on its emulator: the catalog and keys
// tables and KMS on moto, the landing bucket, and the three providers
// (Supabase emulator, S3 on moto, fake-gcs-server), optionally with object
// lock on S3 and retention on GCS, and a fault proxy in front of Supabase.
// Fleet.Put stores a backup the way the seal step and the replicate
// functions would: sealed under a fresh data key, on every provider,
// VERIFIED.
package erasetest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/wedsync/backup-replication/infra/emulator"
	"github.com/wedsync/backup-replication/infra/faultproxy"
	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/keys"
	"github.com/wedsync/backup-replication/shared/seal"
	"github.com/wedsync/backup-replication/shared/secret"
	"github.com/wedsync/backup-replication/shared/storage"
	"github.com/wedsync/backup-replication/shared/storage/gcs"
	s3p "github.com/wedsync/backup-replication/shared/storage/s3"
	"github.com/wedsync/backup-replication/shared/storage/supabase"
)

// Options choose what a Fleet has.
type Options struct {
	// S3Lock puts the s3 provider's bucket under object lock: every copy
	// is written in GOVERNANCE mode for this long (0: no lock).
	S3Lock time.Duration
	// GCSRetention places an object retention on every gcs copy (0: none).
	GCSRetention time.Duration
	// SupabaseProxy puts a fault proxy in front of the Supabase emulator.
	SupabaseProxy bool
}

// Fleet is one isolated environment (its own tables, buckets and KMS key).
type Fleet struct {
	AWS           aws.Config
	DB            *dynamodb.Client
	KMS           *kms.Client
	S3            *awss3.Client // path-style client on moto
	Catalog       *catalog.Dynamo
	CatalogTables catalog.Config
	Keys          *keys.Store
	KeysConfig    keys.Config
	// LandingBucket and Landing: the landing bucket, and it as a provider.
	LandingBucket string
	Landing       storage.Provider
	// Providers are supabase, s3 and gcs.
	Providers map[string]storage.Provider
	S3Bucket  string
	GCS       *emulator.GCS
	GCSBucket string
	Supabase  *emulator.Supabase
	// SupabaseProxy is the fault proxy in front of Supabase (Options.SupabaseProxy).
	SupabaseProxy *faultproxy.Server
	// SupabaseURL is the URL the supabase provider talks to.
	SupabaseURL string
	MotoURL     string

	opts Options
}

var seq atomic.Int64

// Unique returns a name no other Fleet in any process uses.
func Unique(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), seq.Add(1))
}

// New builds a Fleet on m and the in-process emulators. Missing
// emulators end the test as emulator.Require says.
func New(t testing.TB, m *emulator.Moto, o Options) *Fleet {
	t.Helper()
	ctx := context.Background()
	awsCfg, err := m.AWSConfig(ctx)
	must(t, err)
	f := &Fleet{AWS: awsCfg, DB: dynamodb.NewFromConfig(awsCfg), KMS: kms.NewFromConfig(awsCfg), MotoURL: m.URL,
		S3: awss3.NewFromConfig(awsCfg, func(o *awss3.Options) { o.UsePathStyle = true }), Providers: map[string]storage.Provider{}, opts: o}

	f.CatalogTables = catalog.Config{BackupsTable: Unique("backups"), ReplicasTable: Unique("replicas")}
	must(t, catalog.EnsureTables(ctx, f.DB, f.CatalogTables))
	f.Catalog, err = catalog.NewDynamo(f.DB, f.CatalogTables)
	must(t, err)
	key, err := f.KMS.CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("erasetest")})
	must(t, err)
	f.KeysConfig = keys.Config{Table: Unique("keys"), DefaultKeyID: aws.ToString(key.KeyMetadata.KeyId)}
	_, err = f.DB.CreateTable(ctx, keys.TableInput(f.KeysConfig.Table))
	must(t, err)
	must(t, dynamodb.NewTableExistsWaiter(f.DB).Wait(ctx,
		&dynamodb.DescribeTableInput{TableName: aws.String(f.KeysConfig.Table)}, time.Minute))
	f.Keys, err = keys.New(f.KeysConfig, f.KMS, f.DB)
	must(t, err)

	f.LandingBucket = Unique("landing")
	_, err = f.S3.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(f.LandingBucket)})
	must(t, err)
	f.Landing = f.s3Provider(t, "landing", f.LandingBucket, 0)
	f.S3Bucket = Unique("replica")
	_, err = f.S3.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(f.S3Bucket),
		ObjectLockEnabledForBucket: aws.Bool(o.S3Lock > 0)})
	must(t, err)
	f.Providers["s3"] = f.s3Provider(t, "s3", f.S3Bucket, o.S3Lock)

	f.GCS, err = emulator.StartGCS()
	emulator.Require(t, err)
	t.Cleanup(func() { f.GCS.Close() })
	f.GCSBucket = "offsite"
	must(t, f.GCS.CreateBucket(f.GCSBucket))
	gp, err := gcs.New(ctx, gcs.Config{Bucket: f.GCSBucket, Endpoint: f.GCS.URL, Retention: o.GCSRetention}, nil)
	must(t, err)
	t.Cleanup(func() { gp.Close() })
	f.Providers["gcs"] = gp

	f.Supabase, err = emulator.StartSupabase(t.TempDir())
	emulator.Require(t, err)
	t.Cleanup(func() { f.Supabase.Close() })
	f.SupabaseURL = f.Supabase.URL
	if o.SupabaseProxy {
		f.SupabaseProxy, err = faultproxy.Start(f.Supabase.URL, faultproxy.Options{Flavor: faultproxy.Supabase})
		must(t, err)
		t.Cleanup(func() { f.SupabaseProxy.Close() })
		f.SupabaseURL = f.SupabaseProxy.URL
	}
	sp, err := supabase.New(supabase.Config{URL: f.SupabaseURL, ServiceKey: secret.Secret(f.Supabase.ServiceKey), Bucket: "backups"}, nil)
	must(t, err)
	must(t, sp.EnsureBucket(ctx))
	f.Providers["supabase"] = sp
	return f
}

// S3Config is the s3 provider configuration of a bucket on this moto.
func (f *Fleet) S3Config(name, bucket string) s3p.Config {
	return s3p.Config{Name: name, Bucket: bucket, Region: emulator.MotoRegion, Endpoint: f.MotoURL, UsePathStyle: true,
		AccessKeyID: emulator.MotoAccessKeyID, SecretAccessKey: secret.Secret(emulator.MotoSecretAccessKey)}
}

func (f *Fleet) s3Provider(t testing.TB, name, bucket string, lock time.Duration) storage.Provider {
	cfg := f.S3Config(name, bucket)
	if lock > 0 {
		cfg.ObjectLockMode, cfg.ObjectLockRetention = "GOVERNANCE", lock
	}
	p, err := s3p.NewWithClient(cfg, awss3.NewFromConfig(f.AWS, s3p.ClientOptions(cfg)), nil)
	must(t, err)
	return p
}

// Stored is a backup Put stored.
type Stored struct {
	Backup catalog.Backup
	// Plaintext and Sealed are the bytes (Put only; PutStream leaves them nil).
	Plaintext []byte
	Sealed    []byte
}

// Put stores plain as backup of org created at created (zero: now):
// the catalog record, a data key, the sealed object in the landing bucket
// and on every provider (on; default all three), a VERIFIED replica each,
// the seal, and the status (PROTECTED when empty).
func (f *Fleet) Put(t testing.TB, org string, plain []byte, created time.Time, status catalog.Status, on ...string) Stored {
	t.Helper()
	st, sealedPath := f.put(t, org, bytes.NewReader(plain), int64(len(plain)), created, status, true, on...)
	st.Plaintext = plain
	sealed, err := os.ReadFile(sealedPath)
	must(t, err)
	st.Sealed = sealed
	return st
}

// PutStream is Put for size bytes read from src, sealed through a
// temporary file so that memory stays flat whatever the size, and without
// the sealed object in the landing bucket (only the provider copies).
func (f *Fleet) PutStream(t testing.TB, org string, src io.Reader, size int64, status catalog.Status, on ...string) Stored {
	t.Helper()
	st, _ := f.put(t, org, src, size, time.Time{}, status, false, on...)
	return st
}

func (f *Fleet) put(t testing.TB, org string, src io.Reader, size int64, created time.Time, status catalog.Status, landing bool, on ...string) (Stored, string) {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	if created.IsZero() {
		created = now
	}
	if status == "" {
		status = catalog.StatusProtected
	}
	if len(on) == 0 {
		on = []string{"supabase", "s3", "gcs"}
	}
	id := fmt.Sprintf("bk%s%04d", created.UTC().Format("20060102T150405"), seq.Add(1)%10000)
	b, _, err := f.Catalog.CreateBackup(ctx, catalog.Backup{ID: id, OrganizationID: org, Name: id + ".zip",
		Size: size, ContentType: "application/zip", LandingKey: "backups/" + org + "/" + id,
		Status: catalog.StatusPending, CreatedAt: created.UTC(), UpdatedAt: now})
	must(t, err)
	dataKey, rec, err := f.Keys.Create(ctx, org, id)
	must(t, err)
	file, err := os.CreateTemp(t.TempDir(), "sealed-*")
	must(t, err)
	defer file.Close()
	res, err := seal.Seal(file, src, dataKey,
		seal.Header{Format: seal.Format, KMSKeyID: rec.KMSKeyID, OrganizationID: org, BackupID: id, PlaintextSize: size})
	must(t, err)
	b.SHA256 = res.PlaintextSHA256
	upload := func(p storage.Provider, key string) storage.ObjectInfo {
		_, err := file.Seek(0, io.SeekStart)
		must(t, err)
		info, err := p.Put(ctx, key, file, res.CipherSize, storage.PutOptions{SHA256: res.CipherSHA256, ContentType: "application/octet-stream"})
		must(t, err)
		return info
	}
	sealedKey := "sealed/" + org + "/" + id
	if landing {
		upload(f.Landing, sealedKey)
	}
	for _, name := range on {
		info := upload(f.Providers[name], b.LandingKey)
		_, err = f.Catalog.PutReplica(ctx, catalog.Replica{BackupID: id, Provider: name, State: catalog.ReplicaVerified,
			Key: b.LandingKey, Bytes: info.Size, VerifiedSHA256: res.CipherSHA256, Evidence: "sha256-readback", Attempts: 1,
			Immutable: f.immutable(name), StartedAt: &now, VerifiedAt: &now, UpdatedAt: now})
		must(t, err)
	}
	b, err = f.Catalog.UpdateBackup(ctx, b) // the declared SHA-256, as the upload would have declared it
	must(t, err)
	must(t, f.Catalog.SetSeal(ctx, id, catalog.Seal{Key: sealedKey, Format: seal.Format, KMSKeyID: rec.KMSKeyID,
		CipherSHA256: res.CipherSHA256, CipherSize: res.CipherSize, SealedAt: now}))
	b, err = f.Catalog.GetBackup(ctx, id)
	must(t, err)
	b.Status, b.LandedAt = status, &now
	if status == catalog.StatusProtected {
		b.ProtectedAt = &now
	}
	b, err = f.Catalog.UpdateBackup(ctx, b)
	must(t, err)
	return Stored{Backup: b}, file.Name()
}

// immutable reports whether the copies on provider name are under lock.
func (f *Fleet) immutable(name string) bool {
	return (name == "s3" && f.opts.S3Lock > 0) || (name == "gcs" && f.opts.GCSRetention > 0)
}

// Present reports whether provider holds key (a Stat that does not say
// not found).
func Present(t testing.TB, p storage.Provider, key string) bool {
	t.Helper()
	_, err := p.Stat(context.Background(), key)
	if err != nil && storage.KindOf(err) != storage.NotFound {
		t.Fatalf("stat %s on %s: %v", key, p.Name(), err)
	}
	return err == nil
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
