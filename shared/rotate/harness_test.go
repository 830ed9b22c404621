package rotate_test

import (
	"os"
	"slices"
	"testing"
	"time"

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

// side is this package's own moto with IAM enforced (credtest.IAMMoto).
var side credtest.IAMMoto

func TestMain(m *testing.M) {
	code := m.Run()
	side.Close()
	os.Exit(code)
}

// quick probes without waiting: the emulators accept a new key at once.
var quick = rotate.Probing{Attempts: 2, Wait: time.Millisecond}

// world is one test's AWS side (credtest.World).
type world struct{ *credtest.World }

func newWorld(t *testing.T) *world {
	t.Helper()
	return &world{side.World(t)}
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
	r := &s3Rotation{w: w, bucket: w.Bucket()}
	r.user, r.key1 = w.User(append([]string{r.bucket}, extraBuckets...)...)
	r.arn = w.Secret(r.key1.Secret())
	r.pcfg = s3.Config{Name: "s3", Bucket: r.bucket, Region: emulator.MotoRegion, Endpoint: side.URL(), UsePathStyle: true}
	rot, err := rotate.NewS3(rotate.S3Config{UserName: r.user, Provider: r.pcfg, Probing: quick}, w.IAM, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.h, err = rotate.New(w.SM, map[string]rotate.Rotator{r.arn: rot}, hcfg, nil); err != nil {
		t.Fatal(err)
	}
	return r
}

// works reports whether c can put and read a canary in the bucket.
func (r *s3Rotation) works(c credentials.S3Creds) error {
	cfg := r.pcfg
	cfg.AccessKeyID, cfg.SecretAccessKey = c.AccessKeyID, c.SecretAccessKey
	p, err := s3.New(r.w.T.Context(), cfg, nil)
	if err != nil {
		return err
	}
	_, err = storage.Probe(r.w.T.Context(), p)
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

func hasStage(stages map[string][]string, version, stage string) bool {
	return slices.Contains(stages[version], stage)
}
