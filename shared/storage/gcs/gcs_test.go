package gcs

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"

	"github.com/wedsync/backup-replication/infra/emulator"
	"github.com/wedsync/backup-replication/shared/storage"
	"github.com/wedsync/backup-replication/shared/storage/storagetest"
)

const testBucket = "wedsync-offsite"

// startGCS starts an in-process fake-gcs-server with testBucket, stopped
// when t ends.
func startGCS(t testing.TB) *emulator.GCS {
	t.Helper()
	g, err := emulator.StartGCS()
	emulator.Require(t, err)
	t.Cleanup(func() { g.Close() })
	if err := g.CreateBucket(testBucket); err != nil {
		t.Fatal(err)
	}
	return g
}

// newTestProvider builds a provider on endpoint, closed when t ends.
func newTestProvider(t testing.TB, cfg Config) *Provider {
	t.Helper()
	if cfg.Bucket == "" {
		cfg.Bucket = testBucket
	}
	p, err := New(t.Context(), cfg, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func TestConformance(t *testing.T) {
	g := startGCS(t)
	storagetest.Run(t, func(t *testing.T) storage.Provider {
		// fake-gcs-server rehashes the whole object on every chunk: 16 MiB
		// chunks keep the 100 MiB case quick while still making several.
		return newTestProvider(t, Config{Endpoint: g.URL, ChunkSize: DefaultChunkSize})
	}, storagetest.Options{
		BadCredentials: func(t *testing.T) storage.Provider {
			px := revokingProxy(t, g.URL)
			return newTestProvider(t, Config{Endpoint: px.URL, CredentialsJSON: serviceAccountJSON(t, px.URL+"/token")})
		},
	})
}

func TestConformanceOneRequest(t *testing.T) {
	if testing.Short() {
		t.Skip("one-request mode: skipped in -short")
	}
	g := startGCS(t)
	storagetest.Run(t, func(t *testing.T) storage.Provider {
		return newTestProvider(t, Config{Name: "gcs-one-request", Endpoint: g.URL, ChunkSize: 0})
	}, storagetest.Options{SkipLarge: true})
}

// revokedToken is the access token the revoking proxy hands out and then
// refuses, as GCS does with a token whose service account key was revoked.
const revokedToken = "ya29.revoked-for-tests"

// revokingProxy stands at the network edge in front of the emulator, which
// ignores authentication. It serves a token endpoint that issues
// revokedToken, answers every request carrying that token with GCS's 401
// JSON error, and passes everything else through.
func revokingProxy(t testing.TB, target string) *httptest.Server {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/token":
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(map[string]any{"access_token": revokedToken, "token_type": "Bearer", "expires_in": 3600})
		case r.Header.Get("Authorization") == "Bearer "+revokedToken:
			gcsError(w, http.StatusUnauthorized, "authError", "Invalid Credentials")
		default:
			rp.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// gcsError writes an error the way the GCS JSON API does.
func gcsError(w http.ResponseWriter, code int, reason, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
		"code": code, "message": msg,
		"errors": []map[string]string{{"domain": "global", "reason": reason, "message": msg}},
	}})
}

// serviceAccountJSON makes a service-account credentials file with a fresh
// key whose token endpoint is tokenURL.
func serviceAccountJSON(t testing.TB, tokenURL string) Secret {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]string{
		"type":           "service_account",
		"project_id":     "wedsync-test",
		"private_key_id": "test-key",
		"private_key":    string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":   "replicator@wedsync-test.iam.gserviceaccount.com",
		"client_id":      "1",
		"token_uri":      tokenURL,
	})
	return Secret(b)
}

// TestEndpointForms stores, stats, reads, lists and deletes through every
// spelling of the emulator endpoint an operator may configure, including
// ".../storage/v1" without its slash (what a loader that trims trailing
// slashes hands over), with which reads once answered 404 while uploads
// still worked.
func TestEndpointForms(t *testing.T) {
	g := startGCS(t)
	for i, suffix := range []string{"", "/", "/storage/v1", "/storage/v1/"} {
		t.Run("base"+strings.ReplaceAll(suffix, "/", "_"), func(t *testing.T) {
			p := newTestProvider(t, Config{Endpoint: g.URL + suffix, ChunkSize: DefaultChunkSize})
			key := fmt.Sprintf("endpoint-forms/%d/contract #1.pdf", i)
			body := "signed wedding contract"
			sum := sha256.Sum256([]byte(body))
			if _, err := p.Put(t.Context(), key, strings.NewReader(body), int64(len(body)), storage.PutOptions{SHA256: hex.EncodeToString(sum[:])}); err != nil {
				t.Fatalf("Put: %v", err)
			}
			if info, err := p.Stat(t.Context(), key); err != nil || info.Size != int64(len(body)) {
				t.Fatalf("Stat = %+v, %v; want size %d", info, err, len(body))
			}
			rc, err := p.Get(t.Context(), key, 0, -1)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || string(got) != body {
				t.Fatalf("Get read %q, %v; want %q", got, err, body)
			}
			if err := p.Delete(t.Context(), key); err != nil {
				t.Fatalf("Delete: %v", err)
			}
			if _, err := p.Stat(t.Context(), key); !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("Stat after Delete = %v, want not found", err)
			}
		})
	}
}
