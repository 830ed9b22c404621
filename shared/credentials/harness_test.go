package credentials_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/wedsync/backup-replication/infra/emulator"
	"github.com/wedsync/backup-replication/shared/credentials"
	"github.com/wedsync/backup-replication/shared/credentials/credtest"
	"github.com/wedsync/backup-replication/shared/secret"
	"github.com/wedsync/backup-replication/shared/storage"
)

// A moto server of this package's own, with IAM enforced: enforcement is
// server-wide, so a shared server (MOTO_URL) is never used.
var (
	moto    *emulator.Moto
	motoErr error
	admin   aws.Config // signed by an administrator user once IAM is enforced
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

// world is one test's AWS side: Secrets Manager and IAM as the
// administrator, and S3 buckets.
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

// secret creates a secret holding value and returns its ARN.
func (w *world) secret(value secret.Secret) string {
	w.t.Helper()
	out, err := w.sm.CreateSecret(w.t.Context(), &secretsmanager.CreateSecretInput{
		Name: aws.String("credtest-" + randomHex(6)), SecretString: aws.String(value.Reveal())})
	if err != nil {
		w.t.Fatal(err)
	}
	return aws.ToString(out.ARN)
}

// stage puts value as a new version of arn with the given stages and
// returns its version id.
func (w *world) stage(arn string, value secret.Secret, stages ...string) string {
	w.t.Helper()
	out, err := w.sm.PutSecretValue(w.t.Context(), &secretsmanager.PutSecretValueInput{SecretId: aws.String(arn),
		SecretString: aws.String(value.Reveal()), VersionStages: stages})
	if err != nil {
		w.t.Fatal(err)
	}
	return aws.ToString(out.VersionId)
}

// promote moves AWSCURRENT to version, as finishSecret does.
func (w *world) promote(arn, version string) {
	w.t.Helper()
	d, err := w.sm.DescribeSecret(w.t.Context(), &secretsmanager.DescribeSecretInput{SecretId: aws.String(arn)})
	if err != nil {
		w.t.Fatal(err)
	}
	var from string
	for id, stages := range d.VersionIdsToStages {
		for _, s := range stages {
			if s == credentials.StageCurrent {
				from = id
			}
		}
	}
	if _, err := w.sm.UpdateSecretVersionStage(w.t.Context(), &secretsmanager.UpdateSecretVersionStageInput{
		SecretId: aws.String(arn), VersionStage: aws.String(credentials.StageCurrent),
		MoveToVersionId: aws.String(version), RemoveFromVersionId: aws.String(from)}); err != nil {
		w.t.Fatal(err)
	}
}

// bucket creates an S3 bucket.
func (w *world) bucket() string {
	w.t.Helper()
	name := "cred-" + randomHex(5)
	if _, err := w.s3.CreateBucket(w.t.Context(), &awss3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		w.t.Fatal(err)
	}
	return name
}

// user creates an IAM user allowed everything on bucket, with one key.
func (w *world) user(bucket string) (string, credentials.S3Creds) {
	w.t.Helper()
	name := "repl-" + randomHex(4)
	id, key, err := credtest.NewIAMUser(w.t.Context(), admin, name, credtest.BucketPolicy(bucket))
	if err != nil {
		w.t.Fatal(err)
	}
	return name, credentials.S3Creds{AccessKeyID: id, SecretAccessKey: secret.Secret(key)}
}

// newKey adds an access key to user.
func (w *world) newKey(user string) credentials.S3Creds {
	w.t.Helper()
	out, err := w.iam.CreateAccessKey(w.t.Context(), &iam.CreateAccessKeyInput{UserName: aws.String(user)})
	if err != nil {
		w.t.Fatal(err)
	}
	return credentials.S3Creds{AccessKeyID: aws.ToString(out.AccessKey.AccessKeyId),
		SecretAccessKey: secret.Secret(aws.ToString(out.AccessKey.SecretAccessKey))}
}

func (w *world) deleteKey(user, id string) {
	w.t.Helper()
	if _, err := w.iam.DeleteAccessKey(w.t.Context(), &iam.DeleteAccessKeyInput{UserName: aws.String(user),
		AccessKeyId: aws.String(id)}); err != nil {
		w.t.Fatal(err)
	}
}

// loader reads with a TTL long enough that only a refusal or the test's
// clock makes it read again.
func (w *world) loader(clock *clock) *credentials.Loader {
	cfg := credentials.LoaderConfig{TTL: time.Hour, MinRefresh: time.Nanosecond}
	if clock != nil {
		cfg.Now = clock.Now
	}
	return credentials.NewLoader(w.sm, cfg)
}

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// logs is a concurrent JSON log destination.
type logs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logs) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.buf.Write(p) }

func (l *logs) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.buf.String() }

func (l *logs) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// roundTrip puts, stats, reads back and deletes one object through p.
func roundTrip(ctx context.Context, p storage.Provider, key string, data []byte) error {
	sum := sha256.Sum256(data)
	want := hex.EncodeToString(sum[:])
	if _, err := p.Put(ctx, key, bytes.NewReader(data), int64(len(data)), storage.PutOptions{SHA256: want}); err != nil {
		return fmt.Errorf("put: %w", err)
	}
	info, err := p.Stat(ctx, key)
	if err != nil {
		return fmt.Errorf("stat: %w", err)
	}
	if info.Size != int64(len(data)) {
		return fmt.Errorf("stat: size %d, want %d", info.Size, len(data))
	}
	rc, err := p.Get(ctx, key, 0, -1)
	if err != nil {
		return fmt.Errorf("get: %w", err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, data) {
		return fmt.Errorf("get: read back %d bytes (err %v), want the %d written", len(got), err, len(data))
	}
	return p.Delete(ctx, key)
}

// since returns the gate requests after the first n.
func since(reqs []credtest.Request, n int) []credtest.Request {
	if n > len(reqs) {
		return nil
	}
	return reqs[n:]
}

// describe renders requests for failure messages.
func describe(reqs []credtest.Request) string {
	var b strings.Builder
	for _, r := range reqs {
		fmt.Fprintf(&b, "\n  %s %s cred=%s status=%d refused=%v", r.Method, r.Path, r.Credential, r.Status, r.Refused)
	}
	return b.String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}
