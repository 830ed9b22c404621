package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wedsync/backup-replication/infra/emulator"
	"github.com/wedsync/backup-replication/shared/api"
	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/erase"
	"github.com/wedsync/backup-replication/shared/erase/erasetest"
	"github.com/wedsync/backup-replication/shared/policy"
	"github.com/wedsync/backup-replication/shared/storage"
)

func TestMain(m *testing.M) { os.Exit(emulator.RunSharingMoto(m)) }

const (
	issuer   = "https://example.supabase.co/auth/v1"
	audience = "authenticated"
)

var jwtSecret = []byte("restore-test-secret-at-least-32-bytes!!")

// world is a fleet on the emulators with the real API in front of it.
type world struct {
	f   *erasetest.Fleet
	api *httptest.Server
}

func newWorld(t *testing.T) *world {
	t.Helper()
	f := erasetest.New(t, emulator.SharedMoto(t), erasetest.Options{})
	auth, err := api.NewJWTAuthenticator(api.JWTConfig{Secret: jwtSecret, Issuer: issuer, Audience: audience})
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.DiscardHandler)
	er, err := erase.New(erase.Deps{Catalog: f.Catalog, Keys: f.Keys, Providers: f.Providers, Landing: f.Landing, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	h, err := api.New(api.Config{}, api.Deps{Store: f.Catalog, Landing: noLanding{}, Auth: auth, Providers: f.Providers, Logger: quiet,
		Signers: map[string]api.Signer{"s3": api.S3Signer(f.S3, f.S3Bucket), "gcs": api.GCSSigner(f.GCS.URL, "", f.GCSBucket)},
		Policy:  policy.DefaultTable(), Keys: f.Keys, Eraser: er})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &world{f: f, api: srv}
}

// noLanding is an api.Landing for a test that never uploads.
type noLanding struct{ api.Landing }

func token(t *testing.T, org string) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": issuer, "aud": audience, "sub": "user-" + org,
		"exp": time.Now().Add(time.Hour).Unix(), "app_metadata": map[string]any{"org_id": org}}).SignedString(jwtSecret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// restore runs the command and returns its exit status and stderr.
func restore(t *testing.T, env map[string]string, args ...string) (int, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), args, func(k string) string { return env[k] }, &stdout, &stderr)
	return code, stderr.String()
}

// data is n deterministic pseudo-random bytes, read lazily.
func data(n int64, seed uint64) io.Reader {
	return io.LimitReader(rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)}), n)
}

func fileSHA256(t *testing.T, path string) (string, int64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil)), n
}

// noLeftovers fails when dir holds anything but want.
func noLeftovers(t *testing.T, dir string, want ...string) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, ",") != strings.Join(want, ",") {
		t.Errorf("%s holds %v, want %v", dir, names, want)
	}
}

// Segment sizes of the sealed format: the first holds 40 bytes of Tink
// header, every segment a 16-byte tag, in 1 MiB of ciphertext.
const (
	firstPlain = 1<<20 - 16 - 40
	plainSeg   = 1<<20 - 16
)

func TestRestoreRoundTrip(t *testing.T) {
	w := newWorld(t)
	sizes := []int64{0, 1, firstPlain - 1, firstPlain, firstPlain + 1, firstPlain + plainSeg, firstPlain + plainSeg + 1}
	for i, n := range sizes {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			st := w.f.PutStream(t, "org1", data(n, uint64(i)), n, "")
			dir := t.TempDir()
			out := filepath.Join(dir, "restored.zip")
			code, stderr := restore(t, nil, "-api", w.api.URL, "-token", token(t, "org1"), "-backup", st.Backup.ID, "-o", out)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if sum, size := fileSHA256(t, out); sum != st.Backup.SHA256 || size != n {
				t.Fatalf("restored %d bytes %s, want %d %s", size, sum, n, st.Backup.SHA256)
			}
			if !strings.Contains(stderr, "restore: from supabase") || !strings.Contains(stderr, "matches") {
				t.Errorf("no progress line on stderr: %s", stderr)
			}
			noLeftovers(t, dir, "restored.zip")
		})
	}
}

// TestRestoreLarge restores 200 MiB from one provider: memory stays flat
// (the bytes stream from the URL through decryption into the file).
func TestRestoreLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("200 MiB round trip: not in -short")
	}
	w := newWorld(t)
	const n = 200 << 20
	st := w.f.PutStream(t, "org1", data(n, 99), n, "", "s3")
	out := filepath.Join(t.TempDir(), "big.tar")
	start := time.Now()
	code, stderr := restore(t, nil, "-api", w.api.URL, "-token", token(t, "org1"), "-backup", st.Backup.ID, "-o", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if sum, size := fileSHA256(t, out); sum != st.Backup.SHA256 || size != n {
		t.Fatalf("restored %d bytes %s, want %s", size, sum, st.Backup.SHA256)
	}
	t.Logf("200 MiB restored in %s: %s", time.Since(start).Round(time.Millisecond), strings.TrimSpace(stderr))
}

// corrupt replaces provider's copy of b with its sealed bytes altered by
// alter.
func corrupt(t *testing.T, p storage.Provider, b catalog.Backup, sealed []byte, alter func([]byte) []byte) {
	t.Helper()
	bad := alter(bytes.Clone(sealed))
	s := sha256.Sum256(bad)
	if _, err := p.Put(t.Context(), b.LandingKey, bytes.NewReader(bad), int64(len(bad)),
		storage.PutOptions{SHA256: hex.EncodeToString(s[:])}); err != nil {
		t.Fatal(err)
	}
}

func flip(at int) func([]byte) []byte {
	return func(b []byte) []byte { b[at] ^= 0x01; return b }
}

func TestRestoreFallsOverToAGoodCopy(t *testing.T) {
	w := newWorld(t)
	plain := bytes.Repeat([]byte("first dance: 'At Last' "), 100000) // 2.2 MiB: three segments
	st := w.f.Put(t, "org1", plain, time.Time{}, "")
	// The first copy has one flipped byte in its second segment, the
	// second is cut short; the third is intact.
	corrupt(t, w.f.Providers["supabase"], st.Backup, st.Sealed, flip(len(st.Sealed)/2))
	corrupt(t, w.f.Providers["s3"], st.Backup, st.Sealed, func(b []byte) []byte { return b[:len(b)-(1<<20)] })
	dir := t.TempDir()
	out := filepath.Join(dir, "restored.zip")
	code, stderr := restore(t, nil, "-api", w.api.URL, "-token", token(t, "org1"), "-backup", st.Backup.ID, "-o", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	got, _ := os.ReadFile(out)
	if !bytes.Equal(got, plain) {
		t.Fatal("restored bytes differ")
	}
	for _, want := range []string{"the copy on supabase failed", "the copy on s3 failed", "from gcs", "matches"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, "X-Amz-Signature") || strings.Contains(stderr, "token=") {
		t.Errorf("stderr shows a presigned URL:\n%s", stderr)
	}
	noLeftovers(t, dir, "restored.zip")

	// With the last good copy damaged too, nothing is written.
	corrupt(t, w.f.Providers["gcs"], st.Backup, st.Sealed, flip(100))
	out2 := filepath.Join(dir, "again.zip")
	if code, stderr := restore(t, nil, "-api", w.api.URL, "-token", token(t, "org1"), "-backup", st.Backup.ID, "-o", out2); code == 0 ||
		!strings.Contains(stderr, "no copy could be restored") {
		t.Errorf("every copy damaged: exit %d, %s", code, stderr)
	}
	noLeftovers(t, dir, "restored.zip")
}

func TestRestoreRefused(t *testing.T) {
	w := newWorld(t)
	st := w.f.Put(t, "org1", []byte("speech notes"), time.Time{}, "")
	dir := t.TempDir()
	out := filepath.Join(dir, "x")
	cases := map[string][]string{
		"other organization": {"-api", w.api.URL, "-token", token(t, "org2"), "-backup", st.Backup.ID, "-o", out},
		"bad token":          {"-api", w.api.URL, "-token", "not-a-jwt", "-backup", st.Backup.ID, "-o", out},
		"no output":          {"-api", w.api.URL, "-token", token(t, "org1"), "-backup", st.Backup.ID},
		"both modes":         {"-api", w.api.URL, "-from", "s3://b/k", "-keys-table", "k", "-o", out},
		"bad -from":          {"-from", "ftp://b/k", "-keys-table", "k", "-o", out},
	}
	for name, args := range cases {
		if code, stderr := restore(t, nil, args...); code == 0 || !strings.HasPrefix(stderr, "restore:") {
			t.Errorf("%s: exit %d, %q", name, code, stderr)
		}
	}
	// An erased backup: the API says so, and nothing is written.
	r, _ := http.NewRequest("DELETE", w.api.URL+"/backups/"+st.Backup.ID, nil)
	r.Header.Set("Authorization", "Bearer "+token(t, "org1"))
	resp, err := http.DefaultClient.Do(r)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("DELETE: %v %v", err, resp)
	}
	resp.Body.Close()
	if code, stderr := restore(t, nil, "-api", w.api.URL, "-token", token(t, "org1"), "-backup", st.Backup.ID, "-o", out); code == 0 ||
		!strings.Contains(stderr, "410 erased") {
		t.Errorf("erased: exit %d, %s", code, stderr)
	}
	noLeftovers(t, dir)
}

// operatorEnv is the AWS environment an operator would have: moto's
// endpoint and credentials.
func operatorEnv(t *testing.T, w *world) map[string]string {
	t.Helper()
	for k, v := range map[string]string{"AWS_ENDPOINT_URL": w.f.MotoURL, "AWS_ACCESS_KEY_ID": emulator.MotoAccessKeyID,
		"AWS_SECRET_ACCESS_KEY": emulator.MotoSecretAccessKey, "AWS_REGION": emulator.MotoRegion,
		"AWS_CONFIG_FILE": os.DevNull, "AWS_SHARED_CREDENTIALS_FILE": os.DevNull} {
		t.Setenv(k, v) // the AWS SDK reads its own environment
	}
	return map[string]string{"SUPABASE_SERVICE_KEY": w.f.Supabase.ServiceKey}
}

func TestOperatorRestoreFromEachProvider(t *testing.T) {
	w := newWorld(t)
	env := operatorEnv(t, w)
	plain := bytes.Repeat([]byte("invoice #7: flowers "), 70000)
	st := w.f.Put(t, "org1", plain, time.Time{}, "")
	key := st.Backup.LandingKey
	from := map[string][]string{
		"s3":       {"-from", "s3://" + w.f.S3Bucket + "/" + key},
		"gcs":      {"-from", "gs://" + w.f.GCSBucket + "/" + key, "-gcs-endpoint", w.f.GCS.URL},
		"supabase": {"-from", "supabase://backups/" + key, "-supabase-url", w.f.SupabaseURL},
	}
	for name, args := range from {
		t.Run(name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "restored")
			args := append(args, "-keys-table", w.f.KeysConfig.Table, "-backups-table", w.f.CatalogTables.BackupsTable, "-o", out)
			code, stderr := restore(t, env, args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if got, _ := os.ReadFile(out); !bytes.Equal(got, plain) {
				t.Fatal("restored bytes differ")
			}
			if !strings.Contains(stderr, "holds backup "+st.Backup.ID+" of organization org1") || !strings.Contains(stderr, "matches") {
				t.Errorf("stderr: %s", stderr)
			}
		})
	}
	// A wrong -sha256 is refused; without one the bytes are still authenticated.
	out := filepath.Join(t.TempDir(), "x")
	s3args := []string{"-from", "s3://" + w.f.S3Bucket + "/" + key, "-keys-table", w.f.KeysConfig.Table, "-o", out}
	if code, stderr := restore(t, env, append(s3args, "-sha256", strings.Repeat("0", 64))...); code == 0 || !strings.Contains(stderr, "declared") {
		t.Errorf("wrong -sha256: exit %d %s", code, stderr)
	}
	if code, stderr := restore(t, env, s3args...); code != 0 || !strings.Contains(stderr, "authenticated") {
		t.Errorf("no declared SHA-256: exit %d %s", code, stderr)
	}
	// After erasure the key is gone: the operator path refuses too.
	er, err := erase.New(erase.Deps{Catalog: w.f.Catalog, Keys: w.f.Keys, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := er.Erase(t.Context(), erase.Request{OrganizationID: "org1", BackupID: st.Backup.ID, By: "test"}); err != nil {
		t.Fatal(err)
	}
	out = filepath.Join(t.TempDir(), "y")
	code, stderr := restore(t, env, "-from", "gs://"+w.f.GCSBucket+"/"+key, "-gcs-endpoint", w.f.GCS.URL, "-keys-table", w.f.KeysConfig.Table, "-o", out)
	if code == 0 || !strings.Contains(stderr, "was erased") {
		t.Errorf("after erasure: exit %d %s", code, stderr)
	}
}
