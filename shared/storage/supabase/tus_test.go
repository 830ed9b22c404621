package supabase

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/wedsync/backup-replication/infra/supaemu"
	"github.com/wedsync/backup-replication/shared/secret"
	"github.com/wedsync/backup-replication/shared/storage"
)

// source is a storage.Source over bytes. When stopAt > 0, a reader opened
// by it cancels stop once stopAt bytes have been read and then fails, as a
// landing-bucket stream does when the invocation runs out of time.
type source struct {
	data   []byte
	stopAt int64
	stop   context.CancelFunc
	opened []int64 // offsets Open was called with
}

func (s *source) Size() int64 { return int64(len(s.data)) }

func (s *source) Open(ctx context.Context, offset int64) (io.ReadCloser, error) {
	s.opened = append(s.opened, offset)
	return io.NopCloser(&stopReader{r: bytes.NewReader(s.data[offset:]), n: offset, s: s, ctx: ctx}), nil
}

type stopReader struct {
	r   io.Reader
	n   int64
	s   *source
	ctx context.Context
}

func (r *stopReader) Read(p []byte) (int, error) {
	if r.s.stopAt > 0 {
		if r.n >= r.s.stopAt {
			r.s.stop()
			return 0, r.ctx.Err()
		}
		p = p[:min(int64(len(p)), r.s.stopAt-r.n)]
	}
	n, err := r.r.Read(p)
	r.n += int64(n)
	return n, err
}

func randomBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(seed)}).Read(b)
	return b
}

// TestResume stops a TUS upload after two chunks, as an invocation that
// runs out of time would, and resumes it from the saved upload URL.
func TestResume(t *testing.T) {
	tg := startTarget(t)
	p := tg.provider(t, Config{})
	prefix := tg.prefix(t)
	key := prefix + "resumed.bin"
	t.Cleanup(func() { p.Delete(context.Background(), key) })
	data := randomBytes(1, 3*ChunkSize+12345)
	opts := storage.PutOptions{SHA256: sha(data), ContentType: "application/x-tar", Metadata: map[string]string{"backup-id": "b-1"}}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	src := &source{data: data, stopAt: 2 * ChunkSize, stop: cancel}
	var saved []string
	save := func(s string) error { saved = append(saved, s); return nil }
	if _, err := p.PutResumable(ctx, key, src, opts, "", save); err == nil || storage.KindOf(err) == storage.Integrity {
		t.Fatalf("interrupted PutResumable = %v, want a non-integrity error", err)
	}
	if len(saved) != 1 || !strings.Contains(saved[0], "/storage/v1/upload/resumable/") {
		t.Fatalf("saved states %q, want one upload URL", saved)
	}
	// Nothing is visible before the last byte.
	if _, err := p.Stat(t.Context(), key); storage.KindOf(err) != storage.NotFound {
		t.Errorf("Stat before completion = %v, want not_found", err)
	}
	p.List(t.Context(), prefix, func(o storage.ObjectInfo) error {
		t.Errorf("List before completion shows %q", o.Key)
		return nil
	})
	if off, _, err := p.uploadOffset(t.Context(), saved[0]); err != nil || off != 2*ChunkSize {
		t.Errorf("server holds %d bytes (%v), want the two chunks sent", off, err)
	}

	src2 := &source{data: data}
	info, err := p.PutResumable(t.Context(), key, src2, opts, saved[0], save)
	if err != nil {
		t.Fatalf("resumed PutResumable: %v", err)
	}
	if len(saved) != 1 {
		t.Errorf("the resumed upload saved a new state %q: it started over", saved[1:])
	}
	if info.Size != int64(len(data)) || info.SHA256 != opts.SHA256 || info.Metadata["backup-id"] != "b-1" || info.ContentType != "application/x-tar" {
		t.Errorf("resumed PutResumable returned %+v", info)
	}
	rc, err := p.Get(t.Context(), key, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("Get after resume: %d bytes (%v), want the %d uploaded", len(got), err, len(data))
	}

	t.Run("completed state, object present", func(t *testing.T) {
		// A retry after a lost answer: nothing is sent again, the object is verified.
		var again []string
		if _, err := p.PutResumable(t.Context(), key, &source{data: data}, opts, saved[0], func(s string) error { again = append(again, s); return nil }); err != nil || len(again) != 0 {
			t.Errorf("PutResumable on a completed upload = %v, saved %q: want success without a new upload", err, again)
		}
	})
	t.Run("completed state, object deleted", func(t *testing.T) {
		key4 := prefix + "deleted-after.bin"
		var st []string
		saveSt := func(s string) error { st = append(st, s); return nil }
		if _, err := p.PutResumable(t.Context(), key4, &source{data: data}, opts, "", saveSt); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Delete(context.Background(), key4) })
		if err := p.Delete(t.Context(), key4); err != nil {
			t.Fatal(err)
		}
		if _, err := p.PutResumable(t.Context(), key4, &source{data: data}, opts, st[0], saveSt); err != nil || len(st) != 2 {
			t.Errorf("PutResumable after the object was deleted = %v, saved %q: want a new upload", err, st)
		}
		if _, err := p.Stat(t.Context(), key4); err != nil {
			t.Errorf("Stat after re-upload: %v", err)
		}
	})
	t.Run("stale state starts over", func(t *testing.T) {
		// The completed upload's URL names an upload of another length.
		other := randomBytes(2, ChunkSize+1)
		key2 := prefix + "other.bin"
		t.Cleanup(func() { p.Delete(context.Background(), key2) })
		var saved2 []string
		_, err := p.PutResumable(t.Context(), key2, &source{data: other}, storage.PutOptions{SHA256: sha(other)}, saved[0],
			func(s string) error { saved2 = append(saved2, s); return nil })
		if err != nil || len(saved2) != 1 || saved2[0] == saved[0] {
			t.Errorf("PutResumable with another object's state = %v, saved %q: want a new upload", err, saved2)
		}
	})
	t.Run("foreign state is refused", func(t *testing.T) {
		_, err := p.PutResumable(t.Context(), key, &source{data: data}, opts, "https://elsewhere.example/storage/v1/upload/resumable/x",
			func(string) error { t.Error("save called"); return nil })
		if storage.KindOf(err) != storage.Permanent {
			t.Errorf("PutResumable with a foreign URL = %v, want a permanent error", err)
		}
	})
	t.Run("mismatched source abandons the upload", func(t *testing.T) {
		key3 := prefix + "bad.bin"
		var st string
		bad := storage.PutOptions{SHA256: sha([]byte("something else"))}
		_, err := p.PutResumable(t.Context(), key3, &source{data: data}, bad, "", func(s string) error { st = s; return nil })
		if storage.KindOf(err) != storage.Integrity {
			t.Fatalf("PutResumable of a mismatched source = %v, want integrity", err)
		}
		if _, err := p.Stat(t.Context(), key3); storage.KindOf(err) != storage.NotFound {
			t.Errorf("Stat after a mismatched resumable upload = %v, want not_found", err)
		}
		if _, _, err := p.uploadOffset(t.Context(), st); storage.KindOf(p.fail("head", key3, err)) != storage.NotFound {
			t.Errorf("the abandoned upload still answers HEAD: %v", err)
		}
	})
}

// logRecorder collects the "evidence" of "put verified" log lines.
type logRecorder struct {
	mu       sync.Mutex
	evidence []string
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecorder) WithGroup(string) slog.Handler            { return l }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "evidence" {
			l.mu.Lock()
			l.evidence = append(l.evidence, a.Value.String())
			l.mu.Unlock()
		}
		return true
	})
	return nil
}

// TestEvidence checks which proof each upload is verified by: the server's
// ETag when it is an MD5 or an MD5 of 6 MiB parts, else a read-back.
func TestEvidence(t *testing.T) {
	cases := []struct {
		name     string
		partSize int64 // of the emulator's TUS ETags
		size     int
		want     string
	}{
		{"one request", 0, 1000, "etag-md5"},
		{"TUS, 6 MiB parts", 0, 2*ChunkSize + 1, "etag-parts-md5"},
		{"TUS, other parts", 5 << 20, 2*ChunkSize + 1, "read-back"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u, key := newEmulator(t, supaemu.Config{PartSize: tc.partSize})
			rec := &logRecorder{}
			p, err := New(Config{URL: u, ServiceKey: secret.Secret(key), Bucket: testBucket}, slog.New(rec))
			if err != nil {
				t.Fatal(err)
			}
			info := putBytes(t, p, "obj", randomBytes(3, tc.size))
			if len(rec.evidence) != 1 || rec.evidence[0] != tc.want {
				t.Errorf("verified by %q, want %q", rec.evidence, tc.want)
			}
			// The caller learns it too, so it need not read the copy back.
			if info.Checksums.Proof != tc.want {
				t.Errorf("Put returned proof %q, want %q", info.Checksums.Proof, tc.want)
			}
		})
	}
}

// flipProxy forwards to target and flips one bit of every upload body (a
// one-request POST, or a TUS PATCH) at byte at, as a faulty network would.
func flipProxy(t *testing.T, target string, at int64) string {
	t.Helper()
	u, _ := url.Parse(target)
	rp := httputil.NewSingleHostReverseProxy(u)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPatch || r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/storage/v1/object/"+testBucket+"/") {
			r.Body = &flipBody{ReadCloser: r.Body, at: at}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	return ts.URL
}

type flipBody struct {
	io.ReadCloser
	at, n int64
}

func (f *flipBody) Read(p []byte) (int, error) {
	n, err := f.ReadCloser.Read(p)
	if f.at >= f.n && f.at < f.n+int64(n) {
		p[f.at-f.n] ^= 0x10
	}
	f.n += int64(n)
	return n, err
}

// TestCorruptionInTransit flips a bit on the way to the server: the server
// stores what it got, and the provider must notice, delete it, and report
// an integrity error.
func TestCorruptionInTransit(t *testing.T) {
	for _, tc := range []struct {
		name     string
		partSize int64
		size     int
	}{
		{"one request, ETag", 0, 4096},
		{"TUS, parts ETag", 0, ChunkSize + 100},
		{"TUS, read-back", 1 << 20, ChunkSize + 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, key := newEmulator(t, supaemu.Config{PartSize: tc.partSize})
			bad, err := New(Config{URL: flipProxy(t, u, 10), ServiceKey: secret.Secret(key), Bucket: testBucket}, nil)
			if err != nil {
				t.Fatal(err)
			}
			data := randomBytes(4, tc.size)
			_, err = bad.Put(t.Context(), "flipped", bytes.NewReader(data), int64(len(data)), storage.PutOptions{SHA256: sha(data)})
			if storage.KindOf(err) != storage.Integrity {
				t.Fatalf("Put through a bit-flipping network = %v, want integrity", err)
			}
			direct, _ := New(Config{URL: u, ServiceKey: secret.Secret(key), Bucket: testBucket}, nil)
			if _, err := direct.Stat(t.Context(), "flipped"); storage.KindOf(err) != storage.NotFound {
				t.Errorf("the corrupted object is still there: Stat = %v", err)
			}
		})
	}
}

// TestPlainETagOnTUSUploadIsReadBack: a TUS upload spanning several chunks
// is hashed without the whole object's MD5 (its ETag is an MD5 of part
// MD5s). Should a server answer with a plain-MD5-looking ETag all the
// same (here a proxy strips the part suffix), the copy is proved by
// reading it back, not failed for an MD5 that was never computed.
func TestPlainETagOnTUSUploadIsReadBack(t *testing.T) {
	u, key := newEmulator(t, supaemu.Config{})
	target, _ := url.Parse(u)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ModifyResponse = func(resp *http.Response) error {
		if !strings.Contains(resp.Request.URL.Path, "/object/info/") || resp.StatusCode != http.StatusOK {
			return nil
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		body = regexp.MustCompile(`("etag":\s*"\\?"?[0-9a-f]{32})-[0-9]+`).ReplaceAll(body, []byte("$1"))
		resp.Body, resp.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
		resp.Header.Del("Content-Length")
		return nil
	}
	ts := httptest.NewServer(rp)
	t.Cleanup(ts.Close)
	rec := &logRecorder{}
	p, err := New(Config{URL: ts.URL, ServiceKey: secret.Secret(key), Bucket: testBucket}, slog.New(rec))
	if err != nil {
		t.Fatal(err)
	}
	data := randomBytes(5, 2*ChunkSize+7)
	info := putBytes(t, p, "plain-etag", data)
	if info.Checksums.Proof != "read-back" || len(rec.evidence) != 1 || rec.evidence[0] != "read-back" {
		t.Errorf("proof %q, logged %q; want the copy read back", info.Checksums.Proof, rec.evidence)
	}
	if st, err := p.Stat(t.Context(), "plain-etag"); err != nil || strings.Contains(st.Checksums.ETag, "-") {
		t.Fatalf("the proxy did not strip the ETag's part suffix: %+v, %v", st.Checksums, err)
	}
}
