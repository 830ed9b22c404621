package validate_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/wedsync/backup-replication/infra/emulator"
	"github.com/wedsync/backup-replication/infra/supaemu"
	"github.com/wedsync/backup-replication/shared/breaker"
	"github.com/wedsync/backup-replication/shared/credentials/credtest"
	"github.com/wedsync/backup-replication/shared/secret"
	"github.com/wedsync/backup-replication/shared/storage"
	"github.com/wedsync/backup-replication/shared/storage/gcs"
	"github.com/wedsync/backup-replication/shared/storage/s3"
	"github.com/wedsync/backup-replication/shared/storage/supabase"
	"github.com/wedsync/backup-replication/shared/validate"
)

// TestCheckReportsEachProvider: a working S3 bucket, a Supabase project
// that refuses the key, and a GCS bucket that does not exist are each
// reported with their own step, kind and message.
func TestCheckReportsEachProvider(t *testing.T) {
	ctx := t.Context()
	moto, err := emulator.StartMoto(ctx)
	emulator.Require(t, err)
	t.Cleanup(func() { moto.Close() })
	cfg, _ := moto.AWSConfig(ctx)
	bucket := fmt.Sprintf("validate-%d", time.Now().UnixNano())
	if _, err := awss3.NewFromConfig(cfg, func(o *awss3.Options) { o.UsePathStyle = true }).CreateBucket(ctx,
		&awss3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	s3p, err := s3.New(ctx, s3.Config{Name: "s3", Bucket: bucket, Region: emulator.MotoRegion, Endpoint: moto.URL,
		UsePathStyle: true, AccessKeyID: "test", SecretAccessKey: "test"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sb, _ := supabaseBehindGate(t, false)
	fake, err := emulator.StartGCS()
	emulator.Require(t, err)
	t.Cleanup(func() { fake.Close() })
	gp, err := gcs.New(ctx, gcs.Config{Name: "gcs", Bucket: "no-such-bucket", Endpoint: fake.URL}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := validate.Check(ctx, map[string]storage.Provider{"s3": s3p, "supabase": sb, "gcs": gp})
	if len(got) != 3 || got[0].Provider != "gcs" || got[1].Provider != "s3" || got[2].Provider != "supabase" {
		t.Fatalf("results %+v, want gcs, s3, supabase in order", got)
	}
	if !got[1].OK || got[1].Message != "" {
		t.Errorf("s3: %+v, want OK", got[1])
	}
	if r := got[2]; r.OK || r.Step != "put" || r.Kind != "unauthorized" || !strings.Contains(r.Message, "credentials") || r.Usable() {
		t.Errorf("supabase: %+v, want put refused as unauthorized, unusable", r)
	}
	if r := got[0]; r.OK || r.Kind != "not_found" || !strings.Contains(r.Message, "bucket") || r.Usable() {
		t.Errorf("gcs: %+v, want not_found, unusable", r)
	}
	if validate.AllOK(got) {
		t.Error("AllOK with two failures")
	}
}

// TestGuard: a provider whose key is refused at cold start refuses work
// (an open-breaker refusal, with the alert hook called once) until a
// recheck finds it usable; a transfer refused as unauthorized makes it
// unusable again.
func TestGuard(t *testing.T) {
	p, keys := supabaseBehindGate(t, false)
	clk := &clock{t: time.Now()}
	var alerts []validate.Result
	var mu sync.Mutex
	g := validate.NewGuard(t.Context(), p, validate.GuardConfig{Recheck: time.Minute, Now: clk.Now,
		OnInvalid: func(_ context.Context, r validate.Result) { mu.Lock(); alerts = append(alerts, r); mu.Unlock() }})
	if r := g.Result(); r.OK || r.Kind != "unauthorized" {
		t.Fatalf("cold-start result %+v, want unauthorized", r)
	}
	_, err := g.Allow(t.Context())
	var rej *breaker.Rejection
	if !errors.Is(err, validate.ErrInvalid) || !errors.Is(err, breaker.ErrOpen) || !errors.As(err, &rej) || rej.RetryAt.IsZero() {
		t.Fatalf("Allow = %v, want a Rejection matching ErrInvalid and breaker.ErrOpen with RetryAt", err)
	}
	keys.fix()
	if _, err := g.Allow(t.Context()); err == nil {
		t.Fatal("allowed before the recheck was due")
	}
	clk.Advance(2 * time.Minute)
	done, err := g.Allow(t.Context())
	if err != nil {
		t.Fatalf("after the key was fixed and the recheck: %v", err)
	}
	done(storage.NewError("put", "supabase", "k", storage.Unauthorized, errors.New("401")))
	if _, err := g.Allow(t.Context()); !errors.Is(err, validate.ErrInvalid) {
		t.Fatalf("after a refused transfer: %v, want refusal", err)
	}
	if len(alerts) != 2 {
		t.Fatalf("%d alerts, want 2 (cold start, refused transfer)", len(alerts))
	}
}

// supabaseBehindGate is a Supabase provider whose key the gateway refuses
// until fix is called.
func supabaseBehindGate(t *testing.T, valid bool) (storage.Provider, *fixable) {
	t.Helper()
	emu, err := emulator.StartSupabase(t.TempDir())
	emulator.Require(t, err)
	t.Cleanup(func() { emu.Close() })
	key := supaemu.SignKey(emu.JWTSecret, supaemu.ServiceRole, time.Hour)
	set := credtest.NewKeySet(emu.ServiceKey)
	gate, err := credtest.SupabaseGate(emu.URL, set)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gate.Close)
	boot, _ := supabase.New(supabase.Config{URL: gate.URL, ServiceKey: secret.Secret(emu.ServiceKey), Bucket: "primary"}, nil)
	if err := boot.EnsureBucket(t.Context()); err != nil {
		t.Fatal(err)
	}
	f := &fixable{set: set, key: key}
	if valid {
		f.fix()
	}
	p, err := supabase.New(supabase.Config{Name: "supabase", URL: gate.URL, ServiceKey: secret.Secret(key), Bucket: "primary"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p, f
}

type fixable struct {
	set *credtest.KeySet
	key string
}

func (f *fixable) fix() { f.set.Add(f.key) }

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }
