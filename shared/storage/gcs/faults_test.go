package gcs

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wedsync/backup-replication/shared/storage"
)

// edgeProxy is a reverse proxy in front of target; fault, when it returns
// true, has answered the request itself.
func edgeProxy(t testing.TB, target string, fault func(w http.ResponseWriter, r *http.Request) bool, modify func(*http.Response) error) *httptest.Server {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = modify
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fault != nil && fault(w, r) {
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// flipAt inverts the byte at offset off of the stream, once.
type flipAt struct {
	r   io.ReadCloser
	off int64
	n   int64
}

func (f *flipAt) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if f.off >= f.n && f.off < f.n+int64(n) {
		p[f.off-f.n] ^= 0xff
	}
	f.n += int64(n)
	return n, err
}

func (f *flipAt) Close() error { return f.r.Close() }

func payload(n int) ([]byte, string) {
	b := bytes.Repeat([]byte("wedding-guest-list;"), n/19+1)[:n]
	sum := sha256.Sum256(b)
	return b, hex.EncodeToString(sum[:])
}

// TestBitFlipOnUpload flips one byte of the object on its way to GCS, after
// we hashed it. Either GCS refuses it (an object that fits one chunk goes as
// one multipart request declaring the client's CRC32C, which the emulator
// checks: 400, permanent), or it commits bad bytes (the emulator ignores the
// CRC32C sent with a final chunk; our one-request mode declares none) and
// Put must notice from GCS's own checksums, delete the object and report
// Integrity. Either way no object is left.
func TestBitFlipOnUpload(t *testing.T) {
	g := startGCS(t)
	direct := newTestProvider(t, Config{Endpoint: g.URL, ChunkSize: DefaultChunkSize})
	data, sum := payload(1 << 20)
	for _, tc := range []struct {
		name  string
		chunk int
		want  storage.Kind
	}{
		{"four-chunks", 256 << 10, storage.Integrity},
		{"one-chunk", DefaultChunkSize, storage.Permanent},
		{"one-request", 0, storage.Integrity},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var flipped atomic.Bool
			px := edgeProxy(t, g.URL, func(w http.ResponseWriter, r *http.Request) bool {
				big := r.ContentLength > 200_000 || r.ContentLength < 0
				if strings.HasPrefix(r.URL.Path, "/upload/") && big && flipped.CompareAndSwap(false, true) {
					r.Body = &flipAt{r: r.Body, off: 200_000}
				}
				return false
			}, nil)
			p := newTestProvider(t, Config{Endpoint: px.URL, ChunkSize: tc.chunk})
			key := "flip/" + tc.name
			_, err := p.Put(t.Context(), key, bytes.NewReader(data), int64(len(data)), storage.PutOptions{SHA256: sum})
			if err == nil || storage.KindOf(err) != tc.want {
				t.Fatalf("Put through a bit-flipping proxy = %v (kind %s), want kind %s", err, storage.KindOf(err), tc.want)
			}
			if !flipped.Load() {
				t.Fatal("the proxy saw no upload to corrupt")
			}
			if info, err := direct.Stat(t.Context(), key); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("after a corrupt upload Stat = %+v, %v; want not found", info, err)
			}
		})
	}
}

// TestBitFlipOnDownload flips one byte of a download: reading the whole
// object must end in an Integrity error, not in wrong bytes and io.EOF.
func TestBitFlipOnDownload(t *testing.T) {
	g := startGCS(t)
	direct := newTestProvider(t, Config{Endpoint: g.URL, ChunkSize: DefaultChunkSize})
	data, sum := payload(1 << 20)
	if _, err := direct.Put(t.Context(), "flip/download", bytes.NewReader(data), int64(len(data)), storage.PutOptions{SHA256: sum}); err != nil {
		t.Fatal(err)
	}
	px := edgeProxy(t, g.URL, nil, func(res *http.Response) error {
		if res.Request.Method == http.MethodGet && res.Request.URL.Query().Get("alt") == "media" {
			res.Body = &flipAt{r: res.Body, off: 500_000}
		}
		return nil
	})
	p := newTestProvider(t, Config{Endpoint: px.URL})
	rc, err := p.Get(t.Context(), "flip/download", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	_, err = io.Copy(io.Discard, rc)
	if storage.KindOf(err) != storage.Integrity {
		t.Fatalf("reading a corrupted download = %v (kind %s), want integrity", err, storage.KindOf(err))
	}
}

// TestClassification answers every request (or every token request) with
// an error status at the network edge and checks the kind each operation
// reports, and the Retry-After hint.
func TestClassification(t *testing.T) {
	g := startGCS(t)
	cases := []struct {
		name       string
		status     int
		retryAfter string
		token      bool // fail the token endpoint instead of the API
		want       storage.Kind
		wantAfter  time.Duration
	}{
		{"429", http.StatusTooManyRequests, "7", false, storage.Throttled, 7 * time.Second},
		{"503", http.StatusServiceUnavailable, "", false, storage.Transient, 0},
		{"500", http.StatusInternalServerError, "", false, storage.Transient, 0},
		{"408", http.StatusRequestTimeout, "", false, storage.Transient, 0},
		{"403", http.StatusForbidden, "", false, storage.Unauthorized, 0},
		{"401", http.StatusUnauthorized, "", false, storage.Unauthorized, 0},
		{"412", http.StatusPreconditionFailed, "", false, storage.Permanent, 0},
		{"token-400-invalid-grant", http.StatusBadRequest, "", true, storage.Unauthorized, 0},
		{"token-503", http.StatusServiceUnavailable, "", true, storage.Transient, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var px *httptest.Server
			px = edgeProxy(t, g.URL, func(w http.ResponseWriter, r *http.Request) bool {
				if tc.retryAfter != "" {
					w.Header().Set("Retry-After", tc.retryAfter)
				}
				switch {
				case r.URL.Path == "/token" && tc.token:
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(tc.status)
					io.WriteString(w, `{"error":"invalid_grant","error_description":"Invalid JWT Signature."}`)
				case r.URL.Path == "/token":
					w.Header().Set("Content-Type", "application/json")
					io.WriteString(w, `{"access_token":"ok","token_type":"Bearer","expires_in":3600}`)
				case tc.token:
					return false
				default:
					gcsError(w, tc.status, "testFault", "injected at the network edge")
				}
				return true
			}, nil)
			cfg := Config{Endpoint: px.URL, ChunkSize: DefaultChunkSize}
			if tc.token {
				cfg.CredentialsJSON = serviceAccountJSON(t, px.URL+"/token")
			}
			p := newTestProvider(t, cfg)
			data, sum := payload(1000)
			check := func(op string, err error) {
				t.Helper()
				if got := storage.KindOf(err); got != tc.want {
					t.Errorf("%s = %v: kind %s, want %s", op, err, got, tc.want)
				}
				if got := storage.RetryAfterOf(err); got != tc.wantAfter {
					t.Errorf("%s: Retry-After %s, want %s", op, got, tc.wantAfter)
				}
			}
			_, err := p.Stat(t.Context(), "k")
			check("Stat", err)
			_, err = p.Get(t.Context(), "k", 0, -1)
			check("Get", err)
			check("List", p.List(t.Context(), "", func(storage.ObjectInfo) error { return nil }))
			check("Delete", p.Delete(t.Context(), "k"))
			_, err = p.Put(t.Context(), "k", bytes.NewReader(data), int64(len(data)), storage.PutOptions{SHA256: sum})
			check("Put", err)
			one := newTestProvider(t, Config{Name: "gcs-one-request", Endpoint: px.URL, CredentialsJSON: cfg.CredentialsJSON})
			_, err = one.Put(t.Context(), "k", bytes.NewReader(data), int64(len(data)), storage.PutOptions{SHA256: sum})
			check("Put (one request)", err)
		})
	}
}

func TestConnectionReset(t *testing.T) {
	g := startGCS(t)
	px := edgeProxy(t, g.URL, func(w http.ResponseWriter, r *http.Request) bool {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
		return true
	}, nil)
	p := newTestProvider(t, Config{Endpoint: px.URL})
	_, err := p.Stat(t.Context(), "k")
	if storage.KindOf(err) != storage.Transient {
		t.Errorf("Stat through a dropped connection = %v (kind %s), want transient", err, storage.KindOf(err))
	}
}
