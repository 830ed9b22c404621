package breaker

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wedsync/backup-replication/shared/storage"
)

// clock is a settable clock: real time plus an offset, so tests move time
// forward without sleeping.
type clock struct{ offset atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// changeLog records OnStateChange calls.
type changeLog struct {
	mu  sync.Mutex
	got []string
}

func (l *changeLog) record(name string, from, to State) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got = append(l.got, fmt.Sprintf("%s:%s->%s", name, from, to))
}

func (l *changeLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.got)
}

func transient(op string) error {
	return storage.NewError(op, "gcs", "backups/org/b1", storage.Transient, errors.New("503 Service Unavailable"))
}

func newTestBreaker(t *testing.T, store Store, clk *clock, log *changeLog) *Breaker {
	t.Helper()
	b, err := New(store, Settings{Name: "gcs", Timeout: time.Minute, Now: clk.Now, OnStateChange: log.record, Logger: failOnWarn(t)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fail runs one allowed request that fails with err.
func fail(t *testing.T, b *Breaker, err error) {
	t.Helper()
	done, aerr := b.Allow(t.Context())
	if aerr != nil {
		t.Fatalf("Allow: %v", aerr)
	}
	done(err)
}

func mustState(t *testing.T, b *Breaker, want State) Snapshot {
	t.Helper()
	s, err := b.State(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if s.State != want {
		t.Fatalf("state = %v (counts %+v), want %v", s.State, s.Counts, want)
	}
	return s
}

// exerciseLifecycle is the breaker's whole story on any Store: it trips on
// provider failures only, refuses while open, lets exactly one trial through
// after the timeout, and closes when that trial succeeds.
func exerciseLifecycle(t *testing.T, store Store) {
	clk, log := &clock{}, &changeLog{}
	b := newTestBreaker(t, store, clk, log)

	// Errors about the request or data, and cancellations, never trip it.
	for _, err := range []error{
		storage.NewError("stat", "gcs", "k", storage.NotFound, fs.ErrNotExist),
		storage.NewError("put", "gcs", "k", storage.Integrity, errors.New("sha256 mismatch")),
		storage.NewError("put", "gcs", "k", storage.Permanent, errors.New("400")),
		context.Canceled,
		context.DeadlineExceeded,
		nil,
	} {
		for range DefaultTripAfter {
			fail(t, b, err)
		}
	}
	mustState(t, b, StateClosed)

	for i := range DefaultTripAfter {
		mustState(t, b, StateClosed)
		fail(t, b, transient(fmt.Sprintf("put%d", i)))
	}
	snap := mustState(t, b, StateOpen)
	if snap.RetryAt.IsZero() || snap.OpenedAt.IsZero() {
		t.Fatalf("open snapshot lacks times: %+v", snap)
	}

	_, err := b.Allow(t.Context())
	var rej *Rejection
	if !errors.Is(err, ErrOpen) || !errors.Is(err, ErrOpenState) || !errors.As(err, &rej) || !rej.RetryAt.Equal(snap.RetryAt) {
		t.Fatalf("Allow while open = %v, want a Rejection matching ErrOpen until %v", err, snap.RetryAt)
	}

	clk.Advance(time.Minute + time.Second)
	mustState(t, b, StateHalfOpen)
	trial, err := b.Allow(t.Context())
	if err != nil {
		t.Fatalf("first Allow after the timeout: %v", err)
	}
	if _, err := b.Allow(t.Context()); !errors.Is(err, ErrTooManyRequests) || !errors.Is(err, ErrOpen) {
		t.Fatalf("second Allow while the trial runs = %v, want ErrTooManyRequests", err)
	}
	if s := mustState(t, b, StateHalfOpen); s.TrialsInFlight != 1 {
		t.Fatalf("trials in flight = %d, want 1", s.TrialsInFlight)
	}
	trial(nil)
	mustState(t, b, StateClosed)
	if done, err := b.Allow(t.Context()); err != nil {
		t.Fatalf("Allow after closing: %v", err)
	} else {
		done(nil)
	}

	want := []string{"gcs:closed->open", "gcs:open->half-open", "gcs:half-open->closed"}
	if got := log.list(); !slices.Equal(got, want) {
		t.Fatalf("OnStateChange calls = %v, want %v", got, want)
	}
}

func TestLifecycleMemory(t *testing.T) { exerciseLifecycle(t, NewMemoryStore()) }

func TestMemoryStore(t *testing.T) { exerciseStore(t, NewMemoryStore()) }

// exerciseStore checks a Store's promises: conditional Save on the
// version, and Count only on a closed record of the given generation whose
// interval has not ended.
func exerciseStore(t *testing.T, store Store) {
	ctx := t.Context()
	empty, err := store.Load(ctx, "s3")
	if err != nil || empty.Version != 0 || empty.Name != "s3" || empty.State != StateClosed {
		t.Fatalf("Load of a missing breaker = %+v, %v", empty, err)
	}
	if _, err := store.Count(ctx, "s3", 0, time.Now(), Failure); !errors.Is(err, ErrConflict) {
		t.Fatalf("Count on a missing record = %v, want ErrConflict", err)
	}
	now := time.UnixMilli(time.Now().UnixMilli())
	rec := Record{Name: "s3", State: StateHalfOpen, Generation: 7, Counts: Counts{Requests: 2, TotalSuccesses: 1, ConsecutiveSuccesses: 1},
		OpenedAt: now.Add(-time.Minute), ChangedAt: now, Trials: map[string]time.Time{"t1": now.Add(time.Minute)}}
	if err := store.Save(ctx, rec, 0); err != nil {
		t.Fatal(err)
	}
	if err := store.Save(ctx, rec, 0); !errors.Is(err, ErrConflict) {
		t.Fatalf("second create = %v, want ErrConflict", err)
	}
	got, err := store.Load(ctx, "s3")
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 1 || got.State != StateHalfOpen || got.Generation != 7 || got.Counts != rec.Counts ||
		!got.OpenedAt.Equal(rec.OpenedAt) || !got.ChangedAt.Equal(now) || !got.Expiry.IsZero() ||
		len(got.Trials) != 1 || !got.Trials["t1"].Equal(now.Add(time.Minute)) {
		t.Fatalf("round trip: got %+v, saved %+v", got, rec)
	}
	if _, err := store.Count(ctx, "s3", 7, now, Success); !errors.Is(err, ErrConflict) {
		t.Fatalf("Count while half-open = %v, want ErrConflict", err)
	}

	got.State, got.Trials, got.Counts = StateClosed, nil, Counts{ConsecutiveFailures: 2, TotalFailures: 2, Requests: 2}
	got.Expiry = now.Add(time.Minute)
	if err := store.Save(ctx, got, got.Version); err != nil {
		t.Fatal(err)
	}
	if err := store.Save(ctx, got, got.Version); !errors.Is(err, ErrConflict) {
		t.Fatalf("write at a stale version = %v, want ErrConflict", err)
	}
	for _, c := range []struct {
		gen uint64
		now time.Time
	}{{6, now}, {8, now}, {7, now.Add(time.Minute)}} {
		if _, err := store.Count(ctx, "s3", c.gen, c.now, Failure); !errors.Is(err, ErrConflict) {
			t.Fatalf("Count in generation %d at %v = %v, want ErrConflict", c.gen, c.now.Sub(now), err)
		}
	}
	steps := []struct {
		o    Outcome
		want Counts
	}{
		{Failure, Counts{Requests: 3, TotalFailures: 3, ConsecutiveFailures: 3}},
		{Excluded, Counts{Requests: 4, TotalFailures: 3, TotalExclusions: 1, ConsecutiveFailures: 3}},
		{Success, Counts{Requests: 5, TotalFailures: 3, TotalExclusions: 1, TotalSuccesses: 1, ConsecutiveSuccesses: 1}},
	}
	for i, st := range steps {
		r, err := store.Count(ctx, "s3", 7, now, st.o)
		if err != nil {
			t.Fatal(err)
		}
		if r.Counts != st.want || r.Version != uint64(3+i) || r.Generation != 7 || r.State != StateClosed || !r.Expiry.Equal(now.Add(time.Minute)) {
			t.Fatalf("after Count(%v): %+v, want counts %+v at version %d", st.o, r, st.want, 3+i)
		}
	}
	if r, _ := store.Load(ctx, "s3"); r.Version != 5 || r.Counts != steps[2].want {
		t.Fatalf("Load after Count = %+v", r)
	}
}

// failOnWarn is a logger that fails the test on any warning: a breaker
// warns only when an outcome could not be recorded.
func failOnWarn(t *testing.T) *slog.Logger {
	return slog.New(warnFails{t})
}

type warnFails struct{ t *testing.T }

func (w warnFails) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (w warnFails) Handle(_ context.Context, r slog.Record) error {
	var attrs []string
	r.Attrs(func(a slog.Attr) bool { attrs = append(attrs, a.String()); return true })
	w.t.Errorf("breaker warned: %s %v", r.Message, attrs)
	return nil
}
func (w warnFails) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w warnFails) WithGroup(string) slog.Handler      { return w }

func TestTrialFailureReopens(t *testing.T) {
	clk, log := &clock{}, &changeLog{}
	b := newTestBreaker(t, NewMemoryStore(), clk, log)
	for range DefaultTripAfter {
		fail(t, b, transient("put"))
	}
	clk.Advance(2 * time.Minute)
	fail(t, b, storage.NewError("put", "gcs", "k", storage.Unauthorized, errors.New("403")))
	s := mustState(t, b, StateOpen)
	if !s.RetryAt.After(clk.Now()) {
		t.Fatalf("reopened breaker retries at %v, not after now", s.RetryAt)
	}
}

func TestSlowOutcomeOfOldGenerationIsIgnored(t *testing.T) {
	clk, log := &clock{}, &changeLog{}
	b := newTestBreaker(t, NewMemoryStore(), clk, log)
	slow, err := b.Allow(t.Context()) // a long transfer starts while closed
	if err != nil {
		t.Fatal(err)
	}
	slowFailure, err := b.Allow(t.Context()) // and another one
	if err != nil {
		t.Fatal(err)
	}
	for range DefaultTripAfter {
		fail(t, b, transient("put"))
	}
	mustState(t, b, StateOpen)
	slow(nil) // it finishes fine, but the breaker has moved on
	mustState(t, b, StateOpen)

	// A failure allowed before the breaker opened, reported after a trial
	// closed it again, does not count against the new generation.
	clk.Advance(2 * time.Minute)
	trial, err := b.Allow(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	trial(nil)
	mustState(t, b, StateClosed)
	for range DefaultTripAfter - 1 {
		fail(t, b, transient("put"))
	}
	slowFailure(transient("put")) // allowed two generations ago: no fifth failure
	mustState(t, b, StateClosed)
	slowFail, err := b.Allow(t.Context()) // same generation: this one counts
	if err != nil {
		t.Fatal(err)
	}
	slowFail(transient("put"))
	mustState(t, b, StateOpen)
}

func TestCrashedTrialLeaseExpires(t *testing.T) {
	clk, log := &clock{}, &changeLog{}
	b, err := New(NewMemoryStore(), Settings{Name: "gcs", Timeout: time.Minute, TrialLease: 5 * time.Minute, Now: clk.Now, OnStateChange: log.record, Logger: failOnWarn(t)})
	if err != nil {
		t.Fatal(err)
	}
	for range DefaultTripAfter {
		fail(t, b, transient("put"))
	}
	clk.Advance(2 * time.Minute)
	lost, err := b.Allow(t.Context()) // this Lambda crashes: done never comes
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Allow(t.Context()); !errors.Is(err, ErrTooManyRequests) {
		t.Fatalf("Allow during the lease = %v, want ErrTooManyRequests", err)
	}
	clk.Advance(5 * time.Minute)
	if s := mustState(t, b, StateHalfOpen); s.TrialsInFlight != 0 {
		t.Fatalf("expired trial still in flight: %+v", s)
	}
	next, err := b.Allow(t.Context())
	if err != nil {
		t.Fatalf("Allow after the lease expired: %v", err)
	}
	lost(transient("put")) // the lost trial's late report changes nothing
	mustState(t, b, StateHalfOpen)
	next(nil)
	mustState(t, b, StateClosed)
}

func TestTrialLeaseEndsWithTheCallersDeadline(t *testing.T) {
	clk, log := &clock{}, &changeLog{}
	b, err := New(NewMemoryStore(), Settings{Name: "gcs", Timeout: time.Minute, RecordTimeout: time.Second, Now: clk.Now, OnStateChange: log.record, Logger: failOnWarn(t)})
	if err != nil {
		t.Fatal(err)
	}
	for range DefaultTripAfter {
		fail(t, b, transient("put"))
	}
	clk.Advance(2 * time.Minute)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second) // the Lambda's remaining time
	defer cancel()
	if _, err := b.Allow(ctx); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute) // past the invocation's end, far below the 15-minute default lease
	if _, err := b.Allow(t.Context()); err != nil {
		t.Fatalf("Allow after the first trial's invocation ended: %v", err)
	}
}

func TestDoneCountsOnceAndIgnoreExcludes(t *testing.T) {
	clk, log := &clock{}, &changeLog{}
	b := newTestBreaker(t, NewMemoryStore(), clk, log)
	done, err := b.Allow(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		done(transient("put"))
	}
	for range 10 {
		fail(t, b, Ignore(transient("landing read")))
	}
	s := mustState(t, b, StateClosed)
	if s.Counts.TotalFailures != 1 || s.Counts.TotalExclusions != 10 {
		t.Fatalf("counts = %+v, want 1 failure and 10 exclusions", s.Counts)
	}
}

func TestSettingsValidate(t *testing.T) {
	err := Settings{Timeout: -1, MaxConflicts: -2}.Validate()
	for _, want := range []string{"Name is empty", "Timeout is negative", "MaxConflicts is negative"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("Validate() = %v, want it to mention %q", err, want)
		}
	}
	if _, err := New(nil, Settings{Name: "gcs"}); err == nil {
		t.Fatal("New accepted a nil store")
	}
}

func TestDefaultClassifiers(t *testing.T) {
	cases := []struct {
		err      error
		excluded bool
		success  bool
	}{
		{nil, false, true},
		{transient("get"), false, false},
		{storage.NewError("get", "gcs", "k", storage.Throttled, errors.New("429")), false, false},
		{storage.NewError("get", "gcs", "k", storage.Unauthorized, errors.New("401")), false, false},
		{storage.NewError("get", "gcs", "k", storage.NotFound, errors.New("404")), false, true},
		{storage.NewError("put", "gcs", "k", storage.Integrity, errors.New("hash")), false, true},
		{context.Canceled, true, true},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), true, true},
		{storage.NewError("put", "gcs", "k", storage.Transient, context.DeadlineExceeded), false, false},
		{&Rejection{Breaker: "gcs", Err: ErrOpenState}, true, true},
	}
	for _, c := range cases {
		if got := DefaultIsExcluded(c.err); got != c.excluded {
			t.Errorf("DefaultIsExcluded(%v) = %v", c.err, got)
		}
		if !c.excluded {
			if got := DefaultIsSuccessful(c.err); got != c.success {
				t.Errorf("DefaultIsSuccessful(%v) = %v", c.err, got)
			}
		}
	}
}
