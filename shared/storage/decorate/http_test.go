package decorate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wedsync/backup-replication/shared/breaker"
	"github.com/wedsync/backup-replication/shared/storage"
)

// httpGetter is the smallest provider over HTTP: Get only, with its own
// classification of status codes, as a real provider's errors.go does.
type httpGetter struct{ base string }

func (h httpGetter) Name() string { return "http" }

func (h httpGetter) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.base+"/"+key, nil)
	if err != nil {
		return nil, storage.NewError("get", "http", key, storage.Permanent, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, storage.NewError("get", "http", key, storage.Transient, err)
	}
	if resp.StatusCode == http.StatusOK {
		return resp.Body, nil
	}
	resp.Body.Close()
	se := &storage.Error{Op: "get", Provider: "http", Key: key, Kind: storage.Permanent, Err: fmt.Errorf("HTTP %d", resp.StatusCode)}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		se.Kind = storage.NotFound
	case resp.StatusCode == http.StatusTooManyRequests:
		se.Kind = storage.Throttled
	case resp.StatusCode >= 500:
		se.Kind = storage.Transient
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
		se.RetryAfter = time.Duration(s) * time.Second
	}
	return nil, se
}

var errUnsupported = errors.New("not supported by this test provider")

func (h httpGetter) Put(context.Context, string, io.Reader, int64, storage.PutOptions) (storage.ObjectInfo, error) {
	return storage.ObjectInfo{}, errUnsupported
}
func (h httpGetter) Stat(context.Context, string) (storage.ObjectInfo, error) {
	return storage.ObjectInfo{}, errUnsupported
}
func (h httpGetter) Delete(context.Context, string) error { return errUnsupported }
func (h httpGetter) List(context.Context, string, func(storage.ObjectInfo) error) error {
	return errUnsupported
}

// Over a real socket: the server answers 503 with Retry-After, then 200.
// The chain waits as told, succeeds, and the breaker counts one success.
func TestChainOverHTTP503Then200(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) == 1 {
			w.Header().Set("Retry-After", "2")
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "timeline: ceremony 14:00, dinner 18:30")
	}))
	defer srv.Close()

	var waits []time.Duration
	pol := quickPolicy()
	pol.Sleep = func(ctx context.Context, d time.Duration) error { waits = append(waits, d); return ctx.Err() }
	b := newBreaker(t, 1)
	logs := &logBuffer{}
	p := Chain(httpGetter{srv.URL}, Logging(logs.logger(), nil), Breaker(b), Retry(pol))

	rc, err := p.Get(t.Context(), "backups/org/b1", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(rc)
	rc.Close()
	if string(body) != "timeline: ceremony 14:00, dinner 18:30" || hits.Load() != 2 {
		t.Fatalf("Get = %q after %d requests, want the timeline after 2", body, hits.Load())
	}
	if !slices.Equal(waits, []time.Duration{2 * time.Second}) {
		t.Fatalf("waited %v, want the server's Retry-After of 2s", waits)
	}
	s, err := b.State(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if s.State != breaker.StateClosed || s.Counts.TotalSuccesses != 1 || s.Counts.TotalFailures != 0 {
		t.Fatalf("breaker %v %+v, want closed with one success", s.State, s.Counts)
	}
	ls := lines(t, logs)
	if len(ls) != 2 || ls[0]["msg"] != "provider retry" || ls[1]["op"] != "get" || ls[1]["bytes"] != float64(len(body)) {
		t.Fatalf("log lines = %v, want one retry line then the get", ls)
	}
}
