package gcs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wedsync/backup-replication/shared/storage"
)

// TestBadArgumentsStoreNothing: a malformed expected SHA-256, a negative
// size or a negative offset is refused as permanent before anything is
// sent, and no object appears.
func TestBadArgumentsStoreNothing(t *testing.T) {
	g := startGCS(t)
	ctx := t.Context()
	data, sum := payload(100)
	src := &memSource{data: data}
	for _, chunk := range []int{0, DefaultChunkSize} {
		p := newTestProvider(t, Config{Endpoint: g.URL, ChunkSize: chunk})
		cases := []struct {
			name string
			call func() error
		}{
			{"uppercase sha256", func() error {
				_, err := p.Put(ctx, "bad/args", bytes.NewReader(data), int64(len(data)), storage.PutOptions{SHA256: strings.ToUpper(sum)})
				return err
			}},
			{"short sha256", func() error {
				_, err := p.Put(ctx, "bad/args", bytes.NewReader(data), int64(len(data)), storage.PutOptions{SHA256: sum[:10]})
				return err
			}},
			{"negative size", func() error {
				_, err := p.Put(ctx, "bad/args", bytes.NewReader(data), -1, storage.PutOptions{SHA256: sum})
				return err
			}},
			{"resumable without sha256", func() error {
				_, err := p.PutResumable(ctx, "bad/args", src, storage.PutOptions{}, "", func(string) error {
					t.Error("a refused upload saved a session")
					return nil
				})
				return err
			}},
			{"negative offset", func() error {
				_, err := p.Get(ctx, "bad/args", -5, -1)
				return err
			}},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				if err := c.call(); storage.KindOf(err) != storage.Permanent {
					t.Fatalf("%v (kind %s), want permanent", err, storage.KindOf(err))
				}
			})
		}
		if _, err := p.Stat(ctx, "bad/args"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("after refused puts Stat = %v, want not found", err)
		}
	}
}

// TestResumeAFinishedUpload: a resumable upload that finished but whose
// caller died before clearing its state is resumed without sending the
// bytes again, and answers the committed object; when the source no longer
// has the declared SHA-256, the call reports Integrity and clears the state
// instead.
func TestResumeAFinishedUpload(t *testing.T) {
	sink := newSink(t)
	p := newTestProvider(t, Config{Endpoint: sink.URL})
	src, sum := newMemSource(700 << 10)
	first := &saved{}
	if _, err := p.PutResumable(t.Context(), "resume/done", src, storage.PutOptions{SHA256: sum}, "", first.save); err != nil {
		t.Fatal(err)
	}
	session := first.states[0]
	sink.lastStart.Store(-1)

	again := &saved{}
	info, err := p.PutResumable(t.Context(), "resume/done", src, storage.PutOptions{SHA256: sum}, session, again.save)
	if err != nil {
		t.Fatalf("resuming a finished upload: %v", err)
	}
	if info.Size != src.Size() || info.SHA256 != sum {
		t.Errorf("resumed finished upload reports %d bytes %q, want %d %q", info.Size, info.SHA256, src.Size(), sum)
	}
	if got := sink.lastStart.Load(); got != -1 {
		t.Errorf("bytes were sent again from offset %d", got)
	}
	if len(again.states) != 1 || again.states[0] != "" {
		t.Errorf("saved states %q, want only the clearing \"\"", again.states)
	}

	wrong := sha256.Sum256([]byte("not these bytes"))
	cleared := &saved{}
	_, err = p.PutResumable(t.Context(), "resume/done", src, storage.PutOptions{SHA256: hex.EncodeToString(wrong[:])}, session, cleared.save)
	if storage.KindOf(err) != storage.Integrity {
		t.Fatalf("finished upload with a wrong declared SHA-256 = %v (kind %s), want integrity", err, storage.KindOf(err))
	}
	if cleared.last() != "" || len(cleared.states) == 0 {
		t.Errorf("state after an integrity failure: %q, want cleared", cleared.states)
	}
}

// TestResumableStateThatCannotBeSaved: when the caller cannot persist the
// session, nothing is uploaded and the new session is cancelled, so no
// orphan session holds bytes.
func TestResumableStateThatCannotBeSaved(t *testing.T) {
	sink := newSink(t)
	p := newTestProvider(t, Config{Endpoint: sink.URL})
	src, sum := newMemSource(300 << 10)
	_, err := p.PutResumable(t.Context(), "resume/nosave", src, storage.PutOptions{SHA256: sum}, "", func(st string) error {
		if st != "" {
			return errors.New("the state table is unavailable")
		}
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "saving the session") {
		t.Fatalf("PutResumable with a failing save = %v, want an error about saving the session", err)
	}
	if src.opens != 0 {
		t.Errorf("the source was opened %d times, want never", src.opens)
	}
	sink.mu.Lock()
	left := len(sink.sessions)
	sink.mu.Unlock()
	if left != 0 {
		t.Errorf("%d sessions left open, want the new one cancelled", left)
	}
}

// failingSource cannot be opened (the landing object went away).
type failingSource struct{ size int64 }

func (f failingSource) Open(context.Context, int64) (io.ReadCloser, error) {
	return nil, errors.New("landing object unavailable")
}
func (f failingSource) Size() int64 { return f.size }

// TestResumableKeepsTheSessionOnFailures: a status query answered 503 at
// the network edge, or a source that cannot be opened, fails the call but
// keeps the saved session, so the next call continues instead of starting
// over.
func TestResumableKeepsTheSessionOnFailures(t *testing.T) {
	sink := newSink(t)
	var mu sync.Mutex
	failStatus := false
	px := edgeProxy(t, sink.URL, func(w http.ResponseWriter, r *http.Request) bool {
		mu.Lock()
		defer mu.Unlock()
		if failStatus && r.Method == http.MethodPut && strings.HasPrefix(r.Header.Get("Content-Range"), "bytes */") {
			w.Header().Set("Retry-After", "3")
			gcsError(w, http.StatusServiceUnavailable, "backendError", "try later")
			return true
		}
		return false
	}, nil)
	p := newTestProvider(t, Config{Endpoint: px.URL})
	src, sum := newMemSource(300 << 10)

	st := &saved{}
	_, err := p.PutResumable(t.Context(), "resume/keep", failingSource{size: src.Size()}, storage.PutOptions{SHA256: sum}, "", st.save)
	if err == nil || !strings.Contains(err.Error(), "opening the source") {
		t.Fatalf("PutResumable with a source that cannot open = %v", err)
	}
	session := st.last()
	if session == "" {
		t.Fatal("no session kept after the source failed to open")
	}
	// The sink names itself in the session URI; send the status query
	// through the edge instead.
	session = strings.Replace(session, sink.URL, px.URL, 1)

	mu.Lock()
	failStatus = true
	mu.Unlock()
	st2 := &saved{}
	_, err = p.PutResumable(t.Context(), "resume/keep", src, storage.PutOptions{SHA256: sum}, session, st2.save)
	if storage.KindOf(err) != storage.Transient || storage.RetryAfterOf(err) != 3*time.Second {
		t.Fatalf("status query answered 503 = %v (kind %s, retry after %s), want transient after 3s",
			err, storage.KindOf(err), storage.RetryAfterOf(err))
	}
	if len(st2.states) != 0 {
		t.Errorf("the state was changed to %q; the session should be kept", st2.states)
	}

	mu.Lock()
	failStatus = false
	mu.Unlock()
	if _, err := p.PutResumable(t.Context(), "resume/keep", src, storage.PutOptions{SHA256: sum}, session, st2.save); err != nil {
		t.Fatalf("the next call with the kept session: %v", err)
	}
	if st2.last() != "" || len(st2.states) != 1 {
		t.Errorf("states %q, want the kept session finished then cleared (no new session)", st2.states)
	}
}

// TestUploadNotFinalized: when GCS answers the one-request upload without
// committing it (308, bytes missing), Put fails and nothing is stored.
func TestUploadNotFinalized(t *testing.T) {
	g := startGCS(t)
	px := edgeProxy(t, g.URL, func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPut && strings.Contains(r.URL.RawQuery, "upload_id") {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Range", "bytes=0-9")
			w.WriteHeader(http.StatusPermanentRedirect)
			return true
		}
		return false
	}, nil)
	p := newTestProvider(t, Config{Endpoint: px.URL, ChunkSize: 0})
	data, sum := payload(4096)
	if _, err := p.Put(t.Context(), "unfinalized", bytes.NewReader(data), int64(len(data)), storage.PutOptions{SHA256: sum}); err == nil {
		t.Fatal("Put succeeded although GCS did not finalize the upload")
	}
	direct := newTestProvider(t, Config{Endpoint: g.URL})
	if _, err := direct.Stat(t.Context(), "unfinalized"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Stat after an unfinalized upload = %v, want not found", err)
	}
}

// TestRetentionIsRequested: with Config.Retention every upload (chunked and
// one-request) asks GCS for an object retention in the configured mode
// ("Unlocked" by default), until a time in the future.
func TestRetentionIsRequested(t *testing.T) {
	g := startGCS(t)
	type seen struct{ mode, until string }
	var mu sync.Mutex
	var got []seen
	px := edgeProxy(t, g.URL, func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodPost || !strings.HasPrefix(r.URL.Path, "/upload/") {
			return false
		}
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		// The object resource is the body, or the first part of a
		// multipart body: find its JSON.
		if i := bytes.Index(body, []byte(`{`)); i >= 0 {
			var o struct {
				Retention struct {
					Mode            string `json:"mode"`
					RetainUntilTime string `json:"retainUntilTime"`
				} `json:"retention"`
			}
			json.NewDecoder(bytes.NewReader(body[i:])).Decode(&o)
			mu.Lock()
			got = append(got, seen{o.Retention.Mode, o.Retention.RetainUntilTime})
			mu.Unlock()
		}
		return false
	}, nil)
	data, sum := payload(2048)
	cases := []struct {
		name  string
		chunk int
		mode  string
		want  string
	}{
		{"chunked, default mode", DefaultChunkSize, "", "Unlocked"},
		{"chunked, locked", 256 << 10, "Locked", "Locked"},
		{"one request, default mode", 0, "", "Unlocked"},
		{"one request, locked", 0, "Locked", "Locked"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mu.Lock()
			got = nil
			mu.Unlock()
			p := newTestProvider(t, Config{Endpoint: px.URL, ChunkSize: c.chunk, Retention: 30 * 24 * time.Hour, RetentionMode: c.mode})
			// fake-gcs-server may or may not keep the retention; what
			// matters here is that it was asked for.
			p.Put(t.Context(), "retained/"+c.name, bytes.NewReader(data), int64(len(data)), storage.PutOptions{SHA256: sum})
			mu.Lock()
			defer mu.Unlock()
			if len(got) == 0 {
				t.Fatal("no upload request seen")
			}
			until, err := time.Parse(time.RFC3339, got[0].until)
			if got[0].mode != c.want || err != nil || !until.After(time.Now().Add(29*24*time.Hour)) {
				t.Fatalf("retention asked: mode %q until %q, want %s about 30 days ahead", got[0].mode, got[0].until, c.want)
			}
		})
	}
}

// TestRetryAfterSpellings: a 429 whose Retry-After is an HTTP date in the
// future gives a hint up to that date; a date in the past, zero or garbage
// gives none; the kind is Throttled throughout.
func TestRetryAfterSpellings(t *testing.T) {
	g := startGCS(t)
	future := time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)
	past := time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)
	cases := []struct {
		name, header string
		min, max     time.Duration
	}{
		{"http date ahead", future, 50 * time.Minute, time.Hour},
		{"http date past", past, 0, 0},
		{"zero seconds", "0", 0, 0},
		{"garbage", "soon", 0, 0},
		{"absent", "", 0, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			px := edgeProxy(t, g.URL, func(w http.ResponseWriter, r *http.Request) bool {
				if c.header != "" {
					w.Header().Set("Retry-After", c.header)
				}
				gcsError(w, http.StatusTooManyRequests, "rateLimitExceeded", "slow down")
				return true
			}, nil)
			p := newTestProvider(t, Config{Endpoint: px.URL})
			_, err := p.Stat(t.Context(), "k")
			after := storage.RetryAfterOf(err)
			if storage.KindOf(err) != storage.Throttled || after < c.min || after > c.max {
				t.Fatalf("Stat = %v: kind %s, retry after %s; want throttled, hint in [%s, %s]", err, storage.KindOf(err), after, c.min, c.max)
			}
		})
	}
}

// TestCanceledCallerIsNotATransientFault: a caller that gives up gets a
// permanent error (its own decision, nothing a retry layer should repeat).
func TestCanceledCallerIsNotATransientFault(t *testing.T) {
	g := startGCS(t)
	p := newTestProvider(t, Config{Endpoint: g.URL})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := p.Stat(ctx, "k")
	if err == nil || storage.KindOf(err) != storage.Permanent {
		t.Fatalf("Stat with a cancelled context = %v (kind %s), want permanent", err, storage.KindOf(err))
	}
}
