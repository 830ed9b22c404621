package api_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/wedsync/backup-replication/infra/emulator"
	"github.com/wedsync/backup-replication/infra/supaemu"
	"github.com/wedsync/backup-replication/shared/api"
	"github.com/wedsync/backup-replication/shared/config"
	"github.com/wedsync/backup-replication/shared/credentials"
	"github.com/wedsync/backup-replication/shared/credentials/credtest"
	"github.com/wedsync/backup-replication/shared/secret"
	"github.com/wedsync/backup-replication/shared/storage"
	"github.com/wedsync/backup-replication/shared/storage/supabase"
)

// signerSide is Secrets Manager on moto with a loader whose TTL runs on a
// clock the test moves.
type signerSide struct {
	t      *testing.T
	awsCfg aws.Config
	sm     *secretsmanager.Client
	clock  *testClock
	loader *credentials.Loader
}

func newSignerSide(t *testing.T) *signerSide {
	t.Helper()
	m := startMoto(t)
	awsCfg, err := m.AWSConfig(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	s := &signerSide{t: t, awsCfg: awsCfg, sm: secretsmanager.NewFromConfig(awsCfg),
		clock: &testClock{t: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)}}
	s.loader = credentials.NewLoader(s.sm, credentials.LoaderConfig{TTL: 5 * time.Minute, MinRefresh: time.Nanosecond, Now: s.clock.Now})
	return s
}

// secret creates a secret and returns its ARN; rotate makes value its new
// AWSCURRENT version, as finishSecret leaves it.
func (s *signerSide) secret(value secret.Secret) string {
	s.t.Helper()
	out, err := s.sm.CreateSecret(s.t.Context(), &secretsmanager.CreateSecretInput{Name: aws.String("signer-" + credtest.RandomHex(5)),
		SecretString: aws.String(value.Reveal())})
	if err != nil {
		s.t.Fatal(err)
	}
	return aws.ToString(out.ARN)
}

func (s *signerSide) rotate(arn string, value secret.Secret) {
	s.t.Helper()
	if _, err := s.sm.PutSecretValue(s.t.Context(), &secretsmanager.PutSecretValueInput{SecretId: aws.String(arn),
		SecretString: aws.String(value.Reveal())}); err != nil {
		s.t.Fatal(err)
	}
}

func (s *signerSide) sign(signers map[string]api.Signer, name, key string) string {
	s.t.Helper()
	sg, ok := signers[name]
	if !ok {
		s.t.Fatalf("no signer for %s", name)
	}
	u, err := sg.SignedURL(s.t.Context(), key, 5*time.Minute)
	if err != nil {
		s.t.Fatalf("sign %s: %v", name, err)
	}
	return u
}

// download GETs u and returns the body, failing on anything but 200.
func download(t *testing.T, u string) []byte {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET signed URL: HTTP %d %.200s", resp.StatusCode, b)
	}
	return b
}

// credentialOf is the identity a presigned URL is signed by
// (X-Amz-Credential or X-Goog-Credential, up to the first "/").
func credentialOf(t *testing.T, u string) string {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	c := p.Query().Get("X-Amz-Credential") + p.Query().Get("X-Goog-Credential")
	id, _, _ := strings.Cut(c, "/")
	return id
}

// TestS3SignerFollowsRotation: the S3 download link is signed with the
// secret's current key; after a rotation, once the credentials cache has
// expired, with the new key, and the link still downloads the object.
func TestS3SignerFollowsRotation(t *testing.T) {
	s := newSignerSide(t)
	bucket := "signers-" + credtest.RandomHex(4)
	c := s3.NewFromConfig(s.awsCfg, func(o *s3.Options) { o.UsePathStyle = true })
	if _, err := c.CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	data := []byte("Okafor & Lindqvist — seating plan v7")
	key := "backups/org1/01SIGNED"
	if _, err := c.PutObject(t.Context(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(data)}); err != nil {
		t.Fatal(err)
	}
	key1 := credentials.S3Creds{AccessKeyID: "AKIAFIRSTKEY0000001", SecretAccessKey: "first-secret"}
	key2 := credentials.S3Creds{AccessKeyID: "AKIASECONDKEY000002", SecretAccessKey: "second-secret"}
	arn := s.secret(key1.Secret())
	p := config.Providers{S3: config.S3{Name: config.NameS3, Bucket: bucket, Region: emulator.MotoRegion,
		Endpoint: aws.ToString(s.awsCfg.BaseEndpoint), UsePathStyle: true, SecretARN: arn}}
	if p.S3.Endpoint == "" {
		t.Fatal("moto's configuration has no endpoint")
	}
	signers, err := api.CredentialSigners(t.Context(), p, s.awsCfg, s.loader)
	if err != nil {
		t.Fatal(err)
	}
	u := s.sign(signers, config.NameS3, key)
	if got := credentialOf(t, u); got != key1.AccessKeyID {
		t.Fatalf("signed by %q, want the current key %s", got, key1.AccessKeyID)
	}
	if got := download(t, u); !bytes.Equal(got, data) {
		t.Fatalf("downloaded %q", got)
	}
	s.rotate(arn, key2.Secret())
	s.clock.Advance(6 * time.Minute)
	u = s.sign(signers, config.NameS3, key)
	if got := credentialOf(t, u); got != key2.AccessKeyID {
		t.Fatalf("after the rotation, signed by %q, want the new key %s", got, key2.AccessKeyID)
	}
	if got := download(t, u); !bytes.Equal(got, data) {
		t.Fatalf("downloaded %q after the rotation", got)
	}
}

// TestSupabaseSignerFollowsRotation: right after a rotation that retired
// the old service key at once (cache not expired yet), a download link is
// still issued, with the new key, and it downloads the object.
func TestSupabaseSignerFollowsRotation(t *testing.T) {
	s := newSignerSide(t)
	emu, err := emulator.StartSupabase(t.TempDir())
	emulator.Require(t, err)
	t.Cleanup(func() { emu.Close() })
	keys := credtest.NewKeySet(emu.ServiceKey)
	gate, err := credtest.SupabaseGate(emu.URL, keys)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gate.Close)
	prov, err := supabase.New(supabase.Config{Name: "supabase", URL: gate.URL, Bucket: "primary", ServiceKey: secret.Secret(emu.ServiceKey)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := prov.EnsureBucket(t.Context()); err != nil {
		t.Fatal(err)
	}
	data := []byte("Nakamura–Reyes wedding: vendor contracts")
	sum := sha256.Sum256(data)
	key := "backups/org1/01SUPABASE"
	if _, err := prov.Put(t.Context(), key, bytes.NewReader(data), int64(len(data)), storage.PutOptions{SHA256: hex.EncodeToString(sum[:])}); err != nil {
		t.Fatal(err)
	}
	arn := s.secret(credentials.SupabaseCreds{URL: gate.URL, ServiceKey: secret.Secret(emu.ServiceKey)}.Secret())
	p := config.Providers{Supabase: config.Supabase{Bucket: "primary", SecretARN: arn}}
	signers, err := api.CredentialSigners(t.Context(), p, s.awsCfg, s.loader)
	if err != nil {
		t.Fatal(err)
	}
	if got := download(t, s.sign(signers, config.NameSupabase, key)); !bytes.Equal(got, data) {
		t.Fatalf("downloaded %q", got)
	}
	key2 := supaemu.SignKey(emu.JWTSecret, supaemu.ServiceRole, time.Hour)
	keys.Add(key2)
	s.rotate(arn, credentials.SupabaseCreds{URL: gate.URL, ServiceKey: secret.Secret(key2)}.Secret())
	keys.Remove(emu.ServiceKey)
	s.clock.Advance(time.Second) // well within the cache's 5 minutes
	if got := download(t, s.sign(signers, config.NameSupabase, key)); !bytes.Equal(got, data) {
		t.Fatalf("downloaded %q after the rotation", got)
	}
}

// serviceAccountKey is a service-account key file with a fresh RSA key.
func serviceAccountKey(t *testing.T, email string) secret.Secret {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	b, _ := json.Marshal(map[string]string{"type": "service_account", "project_id": "wedsync-test", "private_key_id": credtest.RandomHex(8),
		"private_key": string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), "client_email": email,
		"token_uri": "https://oauth2.googleapis.com/token"})
	return secret.Secret(b)
}

// TestGCSSignerFollowsRotation: GCS download links are signed with the
// secret's current service-account key, the new one once the cache has
// expired after a rotation. A malformed secret fails at start, unquoted.
func TestGCSSignerFollowsRotation(t *testing.T) {
	s := newSignerSide(t)
	first, second := "replicator@wedsync-test.iam.gserviceaccount.com", "replicator-2@wedsync-test.iam.gserviceaccount.com"
	arn := s.secret(serviceAccountKey(t, first))
	p := config.Providers{GCS: config.GCS{Bucket: "offsite", SecretARN: arn}}
	signers, err := api.CredentialSigners(t.Context(), p, s.awsCfg, s.loader)
	if err != nil {
		t.Fatal(err)
	}
	if got := credentialOf(t, s.sign(signers, config.NameGCS, "backups/org1/01GCS")); got != first {
		t.Fatalf("signed by %q, want %s", got, first)
	}
	s.rotate(arn, serviceAccountKey(t, second))
	s.clock.Advance(6 * time.Minute)
	if got := credentialOf(t, s.sign(signers, config.NameGCS, "backups/org1/01GCS")); got != second {
		t.Fatalf("after the rotation, signed by %q, want %s", got, second)
	}

	const leak = "not-json-but-a-private-value"
	bad := s.secret(leak)
	_, err = api.CredentialSigners(t.Context(), config.Providers{GCS: config.GCS{Bucket: "offsite", SecretARN: bad}}, s.awsCfg, s.loader)
	if err == nil || !strings.Contains(err.Error(), "gcs") || strings.Contains(err.Error(), leak) {
		t.Fatalf("malformed secret: %v, want an error naming gcs without the value", err)
	}
}
