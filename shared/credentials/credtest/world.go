package credtest

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
	"slices"
	"sort"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/wedsync/backup-replication/infra/emulator"
	"github.com/wedsync/backup-replication/shared/credentials"
	"github.com/wedsync/backup-replication/shared/secret"
	"github.com/wedsync/backup-replication/shared/storage"
)

// IAMMoto is a test binary's own moto server with IAM enforced (EnforceIAM).
// Enforcement is server-wide, so a shared server (MOTO_URL) is never used.
// The zero value is ready; declare one per test package, let World start it
// on first use (not in TestMain: fuzz workers run TestMain too and need no
// server), and Close it in TestMain after m.Run.
type IAMMoto struct {
	once  sync.Once
	moto  *emulator.Moto
	admin aws.Config
	err   error
}

// Start starts the server and enforcement once; later calls return the
// first call's error.
func (m *IAMMoto) Start() error {
	m.once.Do(func() {
		os.Unsetenv(emulator.MotoURLEnv)
		ctx := context.Background()
		if m.moto, m.err = emulator.StartMoto(ctx); m.err != nil {
			return
		}
		base, err := m.moto.AWSConfig(ctx)
		if err != nil {
			m.err = err
			return
		}
		m.admin, m.err = EnforceIAM(ctx, m.moto.URL, base)
	})
	return m.err
}

// URL is the server's base URL ("" before a successful Start).
func (m *IAMMoto) URL() string {
	if m.moto == nil {
		return ""
	}
	return m.moto.URL
}

// Admin is a configuration signed by an administrator (every action
// allowed): the stand-in for a function's own role.
func (m *IAMMoto) Admin() aws.Config { return m.admin }

// Close stops the server if it was started.
func (m *IAMMoto) Close() {
	if m.moto != nil {
		m.moto.Close()
	}
}

// World starts the server if needed (emulator.Require when it cannot) and
// returns t's view of it.
func (m *IAMMoto) World(t *testing.T) *World {
	t.Helper()
	emulator.Require(t, m.Start())
	return &World{T: t, SM: secretsmanager.NewFromConfig(m.admin), IAM: iam.NewFromConfig(m.admin),
		S3: awss3.NewFromConfig(m.admin, func(o *awss3.Options) { o.UsePathStyle = true }), admin: m.admin}
}

// World is one test's AWS side: Secrets Manager, IAM and S3 as the
// administrator. Its helpers fail the test on any error.
type World struct {
	T     *testing.T
	SM    *secretsmanager.Client
	IAM   *iam.Client
	S3    *awss3.Client
	admin aws.Config
}

// Secret creates a secret holding value and returns its ARN.
func (w *World) Secret(value secret.Secret) string {
	w.T.Helper()
	out, err := w.SM.CreateSecret(w.T.Context(), &secretsmanager.CreateSecretInput{
		Name: aws.String("credtest-" + RandomHex(6)), SecretString: aws.String(value.Reveal())})
	if err != nil {
		w.T.Fatal(err)
	}
	return aws.ToString(out.ARN)
}

// Stage puts value as a new version of arn with the given stages and
// returns its version id.
func (w *World) Stage(arn string, value secret.Secret, stages ...string) string {
	w.T.Helper()
	out, err := w.SM.PutSecretValue(w.T.Context(), &secretsmanager.PutSecretValueInput{SecretId: aws.String(arn),
		SecretString: aws.String(value.Reveal()), VersionStages: stages})
	if err != nil {
		w.T.Fatal(err)
	}
	return aws.ToString(out.VersionId)
}

// Promote moves AWSCURRENT to version, as finishSecret does.
func (w *World) Promote(arn, version string) {
	w.T.Helper()
	var from string
	for id, stages := range w.Stages(arn) {
		if slices.Contains(stages, credentials.StageCurrent) {
			from = id
		}
	}
	if _, err := w.SM.UpdateSecretVersionStage(w.T.Context(), &secretsmanager.UpdateSecretVersionStageInput{
		SecretId: aws.String(arn), VersionStage: aws.String(credentials.StageCurrent),
		MoveToVersionId: aws.String(version), RemoveFromVersionId: aws.String(from)}); err != nil {
		w.T.Fatal(err)
	}
}

// Value reads the version of arn carrying stage ("" when none).
func (w *World) Value(arn, stage string) secret.Secret {
	w.T.Helper()
	out, err := w.SM.GetSecretValue(w.T.Context(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn),
		VersionStage: aws.String(stage)})
	if err != nil {
		return ""
	}
	return secret.Secret(aws.ToString(out.SecretString))
}

// Stages maps each version of arn to its stages.
func (w *World) Stages(arn string) map[string][]string {
	w.T.Helper()
	d, err := w.SM.DescribeSecret(w.T.Context(), &secretsmanager.DescribeSecretInput{SecretId: aws.String(arn)})
	if err != nil {
		w.T.Fatal(err)
	}
	return d.VersionIdsToStages
}

// Bucket creates an S3 bucket and returns its name.
func (w *World) Bucket() string {
	w.T.Helper()
	name := "cred-" + RandomHex(5)
	if _, err := w.S3.CreateBucket(w.T.Context(), &awss3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		w.T.Fatal(err)
	}
	return name
}

// User creates an IAM user allowed everything on buckets, with one key.
func (w *World) User(buckets ...string) (string, credentials.S3Creds) {
	w.T.Helper()
	name := "repl-" + RandomHex(4)
	id, key, err := NewIAMUser(w.T.Context(), w.admin, name, BucketPolicy(buckets...))
	if err != nil {
		w.T.Fatal(err)
	}
	return name, credentials.S3Creds{AccessKeyID: id, SecretAccessKey: secret.Secret(key)}
}

// Role creates an IAM role anyone may assume, allowed everything on
// buckets (none: allowed nothing), and returns its ARN.
func (w *World) Role(buckets ...string) string {
	w.T.Helper()
	name := "replicator-" + RandomHex(3)
	trust := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}]}`
	out, err := w.IAM.CreateRole(w.T.Context(), &iam.CreateRoleInput{RoleName: aws.String(name), AssumeRolePolicyDocument: aws.String(trust)})
	if err != nil {
		w.T.Fatal(err)
	}
	if len(buckets) > 0 {
		if _, err := w.IAM.PutRolePolicy(w.T.Context(), &iam.PutRolePolicyInput{RoleName: aws.String(name), PolicyName: aws.String("buckets"),
			PolicyDocument: aws.String(BucketPolicy(buckets...))}); err != nil {
			w.T.Fatal(err)
		}
	}
	return aws.ToString(out.Role.Arn)
}

// NewKey adds an access key to user.
func (w *World) NewKey(user string) credentials.S3Creds {
	w.T.Helper()
	out, err := w.IAM.CreateAccessKey(w.T.Context(), &iam.CreateAccessKeyInput{UserName: aws.String(user)})
	if err != nil {
		w.T.Fatal(err)
	}
	return credentials.S3Creds{AccessKeyID: aws.ToString(out.AccessKey.AccessKeyId),
		SecretAccessKey: secret.Secret(aws.ToString(out.AccessKey.SecretAccessKey))}
}

// DeleteKey deletes an access key of user.
func (w *World) DeleteKey(user, id string) {
	w.T.Helper()
	if _, err := w.IAM.DeleteAccessKey(w.T.Context(), &iam.DeleteAccessKeyInput{UserName: aws.String(user),
		AccessKeyId: aws.String(id)}); err != nil {
		w.T.Fatal(err)
	}
}

// Keys lists user's access key ids, sorted.
func (w *World) Keys(user string) []string {
	w.T.Helper()
	out, err := w.IAM.ListAccessKeys(w.T.Context(), &iam.ListAccessKeysInput{UserName: aws.String(user)})
	if err != nil {
		w.T.Fatal(err)
	}
	var ids []string
	for _, k := range out.AccessKeyMetadata {
		ids = append(ids, aws.ToString(k.AccessKeyId))
	}
	sort.Strings(ids)
	return ids
}

// Logs is a JSON log destination safe for concurrent writers.
type Logs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (l *Logs) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.buf.Write(p) }

// String is everything written so far.
func (l *Logs) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.buf.String() }

// Logger logs JSON into l, debug level and up.
func (l *Logs) Logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// RoundTrip puts, stats, reads back and deletes one object through p,
// checking size and bytes.
func RoundTrip(ctx context.Context, p storage.Provider, key string, data []byte) error {
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

// RandomHex is n random bytes in hex (names that do not collide).
func RandomHex(n int) string { return hex.EncodeToString(RandomBytes(n)) }

// RandomBytes is n random bytes.
func RandomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}
