package s3

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/wedsync/backup-replication/shared/storage"
)

// fixtureSource serves a fixture from any offset; with flip set, byte 100
// of the stream is changed (a landing object that changed under us).
type fixtureSource struct {
	f    fixture
	flip bool
	// cancelAt, when positive, cancels cancel once that many bytes of one
	// Open have been read, and fails the read: an invocation running out.
	cancelAt int64
	cancel   context.CancelFunc
}

func (s *fixtureSource) Size() int64 { return s.f.size }

func (s *fixtureSource) Open(ctx context.Context, offset int64) (io.ReadCloser, error) {
	r := s.f.reader()
	if s.flip {
		r = &flipReader{r: r, at: 100}
	}
	if _, err := io.CopyN(io.Discard, r, offset); err != nil {
		return nil, err
	}
	if s.cancelAt > 0 {
		r = &stopReader{r: r, left: s.cancelAt, cancel: s.cancel, ctx: ctx}
	}
	return io.NopCloser(r), nil
}

type flipReader struct {
	r  io.Reader
	at int64
	n  int64
}

func (f *flipReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if f.at >= f.n && f.at < f.n+int64(n) {
		p[f.at-f.n] ^= 0xff
	}
	f.n += int64(n)
	return n, err
}

type stopReader struct {
	r      io.Reader
	left   int64
	cancel context.CancelFunc
	ctx    context.Context
}

func (s *stopReader) Read(p []byte) (int, error) {
	if s.left <= 0 {
		s.cancel()
		return 0, s.ctx.Err()
	}
	if int64(len(p)) > s.left {
		p = p[:s.left]
	}
	n, err := s.r.Read(p)
	s.left -= int64(n)
	return n, err
}

// partCounter is a proxy in front of moto that counts UploadPart requests.
func partCounter(t *testing.T) (string, *atomic.Int32) {
	u, _ := url.Parse(moto.URL)
	proxy := httputil.NewSingleHostReverseProxy(u)
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && r.URL.Query().Has("partNumber") {
			n.Add(1)
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, &n
}

func TestPutResumable(t *testing.T) {
	cfg := testConfig(t)
	cfg.PartSize, cfg.MultipartThreshold, cfg.Concurrency = 5<<20, 5<<20, 1
	counted := cfg
	var parts *atomic.Int32
	counted.Endpoint, parts = partCounter(t)
	p, viaCounter := newProvider(t, cfg), newProvider(t, counted)
	f := newFixture("resumable", 17<<20+5) // four parts
	opts := storage.PutOptions{SHA256: f.sum, Metadata: map[string]string{"backup-id": "b-9"}}

	// interrupt starts an upload that stops after two parts, as an
	// invocation that runs out of time, and returns the state it saved.
	interrupt := func(t *testing.T, key string) string {
		var state string
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		src := &fixtureSource{f: f, cancelAt: 11 << 20, cancel: cancel}
		_, err := p.PutResumable(ctx, key, src, opts, "", func(s string) error { state = s; return nil })
		if err == nil || state == "" {
			t.Fatalf("interrupted upload: err %v, state %q; want an error and a saved state", err, state)
		}
		have, err := p.listParts(t.Context(), key, mustState(t, state).UploadID)
		if err != nil || len(have) != 2 {
			t.Fatalf("after the interruption S3 holds %d parts (%v), want 2", len(have), err)
		}
		return state
	}

	t.Run("resume-uploads-only-missing-parts", func(t *testing.T) {
		key := "resumable/ok"
		state := interrupt(t, key)
		parts.Store(0)
		info, err := viaCounter.PutResumable(t.Context(), key, &fixtureSource{f: f}, opts, state, func(s string) error { state = s; return nil })
		if err != nil {
			t.Fatalf("resume: %v", err)
		}
		if got := parts.Load(); got != 2 {
			t.Errorf("resume uploaded %d parts, want the 2 missing ones", got)
		}
		if state != "" {
			t.Errorf("state after completion = %q, want cleared", state)
		}
		if info.Size != f.size || info.SHA256 != f.sum || info.Metadata["backup-id"] != "b-9" {
			t.Errorf("resumed object info %+v", info)
		}
		if n, sum := readSHA256(t, p, key); n != f.size || sum != f.sum {
			t.Errorf("resumed object reads back %d bytes %s, want %d %s", n, sum, f.size, f.sum)
		}
	})

	t.Run("changed-source-is-refused", func(t *testing.T) {
		key := "resumable/changed"
		state := interrupt(t, key)
		_, err := p.PutResumable(t.Context(), key, &fixtureSource{f: f, flip: true}, opts, state, func(s string) error { state = s; return nil })
		if storage.KindOf(err) != storage.Integrity {
			t.Fatalf("resume over a changed source = %v, want kind integrity", err)
		}
		if state != "" {
			t.Errorf("state after an integrity failure = %q, want cleared", state)
		}
		if _, err := p.Stat(t.Context(), key); storage.KindOf(err) != storage.NotFound {
			t.Errorf("Stat after a refused resume = %v, want not found", err)
		}
		ups, err := p.client.ListMultipartUploads(t.Context(), &s3.ListMultipartUploadsInput{Bucket: aws.String(cfg.Bucket), Prefix: aws.String(key)})
		if err != nil || len(ups.Uploads) != 0 {
			t.Errorf("multipart uploads left for %q: %d (%v), want none", key, len(ups.Uploads), err)
		}
	})

	t.Run("stale-state-starts-again", func(t *testing.T) {
		key := "resumable/stale"
		stale, _ := json.Marshal(resumeState{Version: 1, UploadID: "no-such-upload", Key: key, Size: f.size, SHA256: f.sum, PartSize: 5 << 20})
		var state string
		if _, err := p.PutResumable(t.Context(), key, &fixtureSource{f: f}, opts, string(stale), func(s string) error { state = s; return nil }); err != nil {
			t.Fatalf("PutResumable with a stale state: %v", err)
		}
		if n, sum := readSHA256(t, p, key); n != f.size || sum != f.sum || state != "" {
			t.Errorf("got %d bytes %s, state %q; want %d %s and no state", n, sum, state, f.size, f.sum)
		}
	})
}

func mustState(t *testing.T, s string) resumeState {
	t.Helper()
	var st resumeState
	if err := json.Unmarshal([]byte(s), &st); err != nil {
		t.Fatalf("state %q: %v", s, err)
	}
	return st
}
