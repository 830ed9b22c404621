package rotate_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/wedsync/backup-replication/infra/emulator"
	"github.com/wedsync/backup-replication/infra/supaemu"
	"github.com/wedsync/backup-replication/shared/credentials"
	"github.com/wedsync/backup-replication/shared/credentials/credtest"
	"github.com/wedsync/backup-replication/shared/rotate"
	"github.com/wedsync/backup-replication/shared/secret"
	"github.com/wedsync/backup-replication/shared/storage"
	"github.com/wedsync/backup-replication/shared/storage/gcs"
	"github.com/wedsync/backup-replication/shared/storage/s3"
	"github.com/wedsync/backup-replication/shared/storage/supabase"
)

// A moto server of this package's own with IAM enforced (server-wide, so a
// shared MOTO_URL server is never used).
var (
	moto    *emulator.Moto
	motoErr error
	admin   aws.Config
)

var motoOnce sync.Once

// startMoto starts the package's moto on first use (not in TestMain: fuzz
// workers run TestMain too, and need no server).
func startMoto() {
	motoOnce.Do(func() {
		os.Unsetenv(emulator.MotoURLEnv)
		ctx := context.Background()
		moto, motoErr = emulator.StartMoto(ctx)
		if motoErr == nil {
			base, _ := moto.AWSConfig(ctx)
			admin, motoErr = credtest.EnforceIAM(ctx, moto.URL, base)
		}
	})
}

func TestMain(m *testing.M) {
	code := m.Run()
	if moto != nil {
		moto.Close()
	}
	os.Exit(code)
}

// quick probes without waiting: the emulators accept a new key at once.
var quick = rotate.Probing{Attempts: 2, Wait: time.Millisecond}

type world struct {
	t   *testing.T
	sm  *secretsmanager.Client
	iam *iam.Client
	s3  *awss3.Client
}

func newWorld(t *testing.T) *world {
	t.Helper()
	startMoto()
	emulator.Require(t, motoErr)
	return &world{t: t, sm: secretsmanager.NewFromConfig(admin), iam: iam.NewFromConfig(admin),
		s3: awss3.NewFromConfig(admin, func(o *awss3.Options) { o.UsePathStyle = true })}
}

func (w *world) secret(value secret.Secret) string {
	w.t.Helper()
	out, err := w.sm.CreateSecret(w.t.Context(), &secretsmanager.CreateSecretInput{
		Name: aws.String("rotatetest-" + randomHex(6)), SecretString: aws.String(value.Reveal())})
	if err != nil {
		w.t.Fatal(err)
	}
	return aws.ToString(out.ARN)
}

// value reads the version of arn carrying stage ("" when none).
func (w *world) value(arn, stage string) secret.Secret {
	w.t.Helper()
	out, err := w.sm.GetSecretValue(w.t.Context(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn),
		VersionStage: aws.String(stage)})
	if err != nil {
		return ""
	}
	return secret.Secret(aws.ToString(out.SecretString))
}

// stages maps each version of arn to its stages.
func (w *world) stages(arn string) map[string][]string {
	w.t.Helper()
	d, err := w.sm.DescribeSecret(w.t.Context(), &secretsmanager.DescribeSecretInput{SecretId: aws.String(arn)})
	if err != nil {
		w.t.Fatal(err)
	}
	return d.VersionIdsToStages
}

func (w *world) bucket() string {
	w.t.Helper()
	name := "rot-" + randomHex(5)
	if _, err := w.s3.CreateBucket(w.t.Context(), &awss3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		w.t.Fatal(err)
	}
	return name
}

// user creates an IAM user allowed everything on buckets, with one key.
func (w *world) user(buckets ...string) (string, credentials.S3Creds) {
	w.t.Helper()
	name := "repl-" + randomHex(4)
	id, key, err := credtest.NewIAMUser(w.t.Context(), admin, name, credtest.BucketPolicy(buckets...))
	if err != nil {
		w.t.Fatal(err)
	}
	return name, credentials.S3Creds{AccessKeyID: id, SecretAccessKey: secret.Secret(key)}
}

// keys lists user's access key ids, sorted.
func (w *world) keys(user string) []string {
	w.t.Helper()
	out, err := w.iam.ListAccessKeys(w.t.Context(), &iam.ListAccessKeysInput{UserName: aws.String(user)})
	if err != nil {
		w.t.Fatal(err)
	}
	var ids []string
	for _, k := range out.AccessKeyMetadata {
		ids = append(ids, aws.ToString(k.AccessKeyId))
	}
	sort.Strings(ids)
	return ids
}

// s3Rotation is an S3 secret with its rotator and handler.
type s3Rotation struct {
	w      *world
	bucket string
	user   string
	key1   credentials.S3Creds
	arn    string
	h      *rotate.Handler
	pcfg   s3.Config
}

func newS3Rotation(t *testing.T, hcfg rotate.HandlerConfig, extraBuckets ...string) *s3Rotation {
	w := newWorld(t)
	r := &s3Rotation{w: w, bucket: w.bucket()}
	r.user, r.key1 = w.user(append([]string{r.bucket}, extraBuckets...)...)
	r.arn = w.secret(r.key1.Secret())
	r.pcfg = s3.Config{Name: "s3", Bucket: r.bucket, Region: emulator.MotoRegion, Endpoint: moto.URL, UsePathStyle: true}
	rot, err := rotate.NewS3(rotate.S3Config{UserName: r.user, Provider: r.pcfg, Probing: quick}, w.iam, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.h, err = rotate.New(w.sm, map[string]rotate.Rotator{r.arn: rot}, hcfg, nil); err != nil {
		t.Fatal(err)
	}
	return r
}

// works reports whether c can put and read a canary in the bucket.
func (r *s3Rotation) works(c credentials.S3Creds) error {
	cfg := r.pcfg
	cfg.AccessKeyID, cfg.SecretAccessKey = c.AccessKeyID, c.SecretAccessKey
	p, err := s3.New(r.w.t.Context(), cfg, nil)
	if err != nil {
		return err
	}
	_, err = storage.Probe(r.w.t.Context(), p)
	return err
}

// googleSide is fake-gcs-server behind the Google fake, with a service
// account whose first key is in a secret.
type googleSide struct {
	g    *credtest.Google
	sa   string
	key1 string
	pcfg gcs.Config
}

func newGoogleSide(t *testing.T) *googleSide {
	t.Helper()
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
	s := &googleSide{g: g, sa: "replicator@wedsync-test.iam.gserviceaccount.com",
		pcfg: gcs.Config{Name: "gcs", Bucket: "offsite", Endpoint: g.URL}}
	if s.key1, err = g.ServiceAccount("wedsync-test", s.sa); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *googleSide) rotator() *rotate.GCSRotator {
	return rotate.NewGCS(rotate.GCSConfig{Provider: s.pcfg, IAMEndpoint: s.g.IAMEndpoint(), Probing: quick}, nil)
}

// supabaseSide is the Supabase emulator behind a gateway that knows keys.
type supabaseSide struct {
	emu  *emulator.Supabase
	keys *credtest.KeySet
	gate *credtest.Gate
	pcfg supabase.Config
}

func newSupabaseSide(t *testing.T) *supabaseSide {
	t.Helper()
	emu, err := emulator.StartSupabase(t.TempDir())
	emulator.Require(t, err)
	t.Cleanup(func() { emu.Close() })
	s := &supabaseSide{emu: emu, keys: credtest.NewKeySet(emu.ServiceKey)}
	if s.gate, err = credtest.SupabaseGate(emu.URL, s.keys); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.gate.Close)
	s.pcfg = supabase.Config{Name: "supabase", URL: s.gate.URL, Bucket: "primary"}
	boot := s.pcfg
	boot.ServiceKey = secret.Secret(emu.ServiceKey)
	p, err := supabase.New(boot, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.EnsureBucket(t.Context()); err != nil {
		t.Fatal(err)
	}
	return s
}

// newKey mints a key the project accepts from now on (the dashboard's
// "new secret key").
func (s *supabaseSide) newKey(ttl time.Duration) string {
	k := supaemu.SignKey(s.emu.JWTSecret, supaemu.ServiceRole, ttl)
	s.keys.Add(k)
	return k
}

func (s *supabaseSide) creds(key string) credentials.SupabaseCreds {
	return credentials.SupabaseCreds{URL: s.gate.URL, ServiceKey: secret.Secret(key)}
}

// lockedLog collects log lines from concurrent writers.
type lockedLog struct {
	mu  sync.Mutex
	buf []byte
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	return len(p), nil
}

func (l *lockedLog) String() string { l.mu.Lock(); defer l.mu.Unlock(); return string(l.buf) }

func hasStage(stages map[string][]string, version, stage string) bool {
	return slices.Contains(stages[version], stage)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
