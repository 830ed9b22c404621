package supabase

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/wedsync/backup-replication/infra/emulator"
	"github.com/wedsync/backup-replication/infra/supaemu"
	"github.com/wedsync/backup-replication/shared/secret"
	"github.com/wedsync/backup-replication/shared/storage"
	"github.com/wedsync/backup-replication/shared/storage/storagetest"
)

const testBucket = "wedsync-primary"

// target is the Storage API the tests run against: a real project when
// SUPABASE_URL, SUPABASE_SERVICE_KEY and SUPABASE_BUCKET are set, else the
// emulator.
type target struct {
	url, key, bucket string
	emu              *emulator.Supabase // nil for a real project
}

func startTarget(t *testing.T) target {
	t.Helper()
	if u := os.Getenv("SUPABASE_URL"); u != "" {
		tg := target{url: u, key: os.Getenv("SUPABASE_SERVICE_KEY"), bucket: os.Getenv("SUPABASE_BUCKET")}
		if tg.key == "" || tg.bucket == "" {
			t.Fatal("SUPABASE_URL is set: SUPABASE_SERVICE_KEY and SUPABASE_BUCKET must be set too")
		}
		return tg
	}
	sb, err := emulator.StartSupabase(t.TempDir())
	emulator.Require(t, err)
	t.Cleanup(func() { sb.Close() })
	tg := target{url: sb.URL, key: sb.ServiceKey, bucket: testBucket, emu: sb}
	if err := tg.provider(t, Config{}).EnsureBucket(t.Context()); err != nil {
		t.Fatalf("EnsureBucket: %v", err)
	}
	return tg
}

// emulated skips t against a real project: the test needs the emulator's
// insides or a proxy in front of it.
func (tg target) emulated(t *testing.T) {
	t.Helper()
	if tg.emu == nil {
		t.Skip("needs the emulator; running against a real project")
	}
}

// prefix is where a test's keys go: apart on a shared real bucket.
func (tg target) prefix(t *testing.T) string {
	p := "supabase-test/" + strings.ReplaceAll(t.Name(), "/", "_") + "-" + time.Now().Format("150405.000000") + "/"
	if tg.emu == nil {
		p = "conformance/" + p
	}
	return p
}

// provider builds a provider on tg; cfg's URL, key and bucket default to
// tg's.
func (tg target) provider(t *testing.T, cfg Config) *Provider {
	t.Helper()
	if cfg.URL == "" {
		cfg.URL = tg.url
	}
	if cfg.ServiceKey == "" {
		cfg.ServiceKey = secret.Secret(tg.key)
	}
	if cfg.Bucket == "" {
		cfg.Bucket = tg.bucket
	}
	p, err := New(cfg, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p
}

// wrongSecretKey is a service_role JWT the project did not sign.
func wrongSecretKey() string {
	return supaemu.SignKey("not-the-project-secret-but-long-enough", supaemu.ServiceRole, time.Hour)
}

func TestConformance(t *testing.T) {
	tg := startTarget(t)
	opts := storagetest.Options{
		BadCredentials: func(t *testing.T) storage.Provider {
			return tg.provider(t, Config{ServiceKey: secret.Secret(wrongSecretKey())})
		},
	}
	if tg.emu == nil {
		opts.Prefix = "conformance/"
	} else {
		// The emulator streams to disk too, so the shared heap stays flat:
		// measured growth is about 8 MiB for 100 MiB (one 6 MiB chunk).
		opts.MaxHeapGrowth = 64 << 20
	}
	storagetest.Run(t, func(t *testing.T) storage.Provider { return tg.provider(t, Config{}) }, opts)
}

// TestConformanceAllTUS runs the suite with every object, even an empty
// one, sent by TUS.
func TestConformanceAllTUS(t *testing.T) {
	if testing.Short() {
		t.Skip("TUS-only pass skipped in -short")
	}
	tg := startTarget(t)
	opts := storagetest.Options{SkipLarge: true, BadCredentials: func(t *testing.T) storage.Provider {
		p := tg.provider(t, Config{Name: "supabase-tus", ServiceKey: secret.Secret(wrongSecretKey())})
		p.cfg.TUSThreshold = -1
		return p
	}}
	if tg.emu == nil {
		opts.Prefix = "conformance/"
	}
	storagetest.Run(t, func(t *testing.T) storage.Provider {
		p := tg.provider(t, Config{Name: "supabase-tus"})
		// Below every size; a Config cannot say it (0 means the default).
		p.cfg.TUSThreshold = -1
		return p
	}, opts)
}

func TestCredentialsRejected(t *testing.T) {
	tg := startTarget(t)
	good := tg.provider(t, Config{})
	key := tg.prefix(t) + "guarded"
	putBytes(t, good, key, []byte("guarded"))
	t.Cleanup(func() { good.Delete(t.Context(), key) })

	cases := []struct {
		name      string
		key       string
		emulOnly  bool
		wantWrite storage.Kind
		wantRead  storage.Kind
	}{
		{"signed with another secret", wrongSecretKey(), false, storage.Unauthorized, storage.Unauthorized},
		{"not a JWT", "garbage", false, storage.Unauthorized, storage.Unauthorized},
		{"expired", "", true, storage.Unauthorized, storage.Unauthorized},
		// Row-level security: the anon role writes nothing and sees nothing.
		{"anon role", "", true, storage.Unauthorized, storage.NotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			k := tc.key
			if k == "" {
				tg.emulated(t)
				k = supaemu.SignKey(tg.emu.JWTSecret, supaemu.ServiceRole, -time.Minute)
				if tc.name == "anon role" {
					k = tg.emu.AnonKey
				}
			}
			bad := tg.provider(t, Config{ServiceKey: secret.Secret(k)})
			data := []byte("intruder")
			_, err := bad.Put(t.Context(), key+"-intruder", bytes.NewReader(data), int64(len(data)), storage.PutOptions{SHA256: sha(data)})
			if storage.KindOf(err) != tc.wantWrite {
				t.Errorf("Put = %v (kind %s), want %s", err, storage.KindOf(err), tc.wantWrite)
			}
			if _, err := bad.Stat(t.Context(), key); storage.KindOf(err) != tc.wantRead {
				t.Errorf("Stat = %v (kind %s), want %s", err, storage.KindOf(err), tc.wantRead)
			}
			if err := bad.List(t.Context(), key, func(storage.ObjectInfo) error { return nil }); tc.wantRead == storage.Unauthorized && storage.KindOf(err) != storage.Unauthorized {
				t.Errorf("List = %v (kind %s), want unauthorized", err, storage.KindOf(err))
			}
		})
	}
}

func TestSignedURL(t *testing.T) {
	tg := startTarget(t)
	p := tg.provider(t, Config{})
	for _, name := range []string{"plain.bin", "what?x=1 & #tag", "café/日本 file"} {
		t.Run(name, func(t *testing.T) {
			key := tg.prefix(t) + name
			data := []byte("signed content of " + name)
			putBytes(t, p, key, data)
			t.Cleanup(func() { p.Delete(t.Context(), key) })
			u, err := p.SignedURL(t.Context(), key, time.Minute)
			if err != nil {
				t.Fatalf("SignedURL: %v", err)
			}
			resp, err := http.Get(u)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !bytes.Equal(got, data) {
				t.Errorf("GET signed URL: %d %q, want 200 %q", resp.StatusCode, got, data)
			}
		})
	}
	if _, err := p.SignedURL(t.Context(), tg.prefix(t)+"missing", time.Minute); storage.KindOf(err) != storage.NotFound {
		t.Errorf("SignedURL(missing) = %v, want not_found", err)
	}
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		want []string // substrings of the error; none means valid
	}{
		{"valid", Config{URL: "https://abc.supabase.co", ServiceKey: "k", Bucket: "b"}, nil},
		{"valid with storage path", Config{URL: "http://127.0.0.1:5000/storage/v1/", ServiceKey: "k", Bucket: "b"}, nil},
		{"empty", Config{}, []string{"URL", "ServiceKey", "Bucket"}},
		{"bad values", Config{URL: "ftp://x", ServiceKey: "k", Bucket: "a/b", TUSThreshold: -1, HTTPTimeout: -time.Second},
			[]string{"URL", "Bucket", "TUSThreshold", "HTTPTimeout"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if (err == nil) != (tc.want == nil) {
				t.Fatalf("Validate() = %v, want error containing %q", err, tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %v, want it to name %s", err, w)
				}
			}
		})
	}
	c := Config{URL: "https://abc.supabase.co", ServiceKey: "super-secret-key", Bucket: "b"}
	if got := c.storageURL(); got != "https://abc.supabase.co/storage/v1" {
		t.Errorf("storageURL = %q", got)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("config", "supabase", c)
	if strings.Contains(buf.String(), "super-secret-key") || !strings.Contains(buf.String(), "abc.supabase.co") {
		t.Errorf("logged config %s: want the URL and not the key", buf.String())
	}
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func putBytes(t *testing.T, p *Provider, key string, data []byte) storage.ObjectInfo {
	t.Helper()
	info, err := p.Put(t.Context(), key, bytes.NewReader(data), int64(len(data)), storage.PutOptions{SHA256: sha(data)})
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	return info
}

// newEmulator starts a supaemu.Server with cfg behind httptest, for tests
// that need settings StartSupabase does not offer; it returns the URL and a
// service key.
func newEmulator(t testing.TB, cfg supaemu.Config) (url, key string) {
	t.Helper()
	cfg.Dir, cfg.JWTSecret = t.TempDir(), "emulator-secret-for-this-test-only"
	s, err := supaemu.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	key = supaemu.SignKey(cfg.JWTSecret, supaemu.ServiceRole, time.Hour)
	p, err := New(Config{URL: ts.URL, ServiceKey: secret.Secret(key), Bucket: testBucket}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.EnsureBucket(t.Context()); err != nil {
		t.Fatal(err)
	}
	return ts.URL, key
}
