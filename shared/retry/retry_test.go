package retry

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wedsync/backup-replication/shared/storage"
)

func kindErr(k storage.Kind, retryAfter time.Duration) error {
	return &storage.Error{Op: "put", Provider: "gcs", Key: "backups/o/b", Kind: k, RetryAfter: retryAfter, Err: errors.New(k.String())}
}

// fakeTime is a clock that moves only when the policy sleeps.
type fakeTime struct {
	now   time.Time
	waits []time.Duration
}

func (f *fakeTime) policy(p Policy) Policy {
	p.Rand = func() float64 { return 0.5 }
	p.Now = func() time.Time { return f.now }
	p.Sleep = func(ctx context.Context, d time.Duration) error {
		f.waits = append(f.waits, d)
		f.now = f.now.Add(d)
		return ctx.Err()
	}
	return p
}

// script returns fn that answers with errs in turn, then nil, counting calls.
func script(errs ...error) (func(context.Context) error, *int) {
	calls := 0
	return func(context.Context) error {
		calls++
		if calls <= len(errs) {
			return errs[calls-1]
		}
		return nil
	}, &calls
}

func TestDo(t *testing.T) {
	transient := kindErr(storage.Transient, 0)
	ms := time.Millisecond
	cases := []struct {
		name      string
		errs      []error
		maxTries  int
		wantCalls int
		wantWaits []time.Duration
		wantErr   error
	}{
		{name: "success first time", wantCalls: 1},
		{name: "transient twice then success", errs: []error{transient, transient}, wantCalls: 3,
			wantWaits: []time.Duration{50 * ms, 100 * ms}},
		{name: "throttled is retried", errs: []error{kindErr(storage.Throttled, 0)}, wantCalls: 2, wantWaits: []time.Duration{50 * ms}},
		{name: "Retry-After longer than the backoff wins", errs: []error{kindErr(storage.Throttled, 3*time.Second)}, wantCalls: 2,
			wantWaits: []time.Duration{3 * time.Second}},
		{name: "Retry-After beyond Cap goes back to the queue", errs: []error{kindErr(storage.Throttled, time.Minute)}, wantCalls: 1,
			wantErr: storage.ErrThrottled},
		{name: "not found is not retried", errs: []error{kindErr(storage.NotFound, 0)}, wantCalls: 1, wantErr: storage.ErrNotFound},
		{name: "unauthorized is not retried", errs: []error{kindErr(storage.Unauthorized, 0)}, wantCalls: 1, wantErr: storage.ErrUnauthorized},
		{name: "integrity is not retried", errs: []error{kindErr(storage.Integrity, 0)}, wantCalls: 1, wantErr: storage.ErrIntegrity},
		{name: "permanent is not retried", errs: []error{errors.New("bug")}, wantCalls: 1},
		{name: "gives up after MaxAttempts with the last error",
			errs: []error{transient, transient, transient, transient, kindErr(storage.Throttled, 0), transient}, wantCalls: 5,
			wantWaits: []time.Duration{50 * ms, 100 * ms, 200 * ms, 400 * ms}, wantErr: storage.ErrThrottled},
		{name: "MaxAttempts 1 never retries", errs: []error{transient}, maxTries: 1, wantCalls: 1, wantErr: storage.ErrTransient},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ft := &fakeTime{now: time.Now()}
			p := ft.policy(Policy{Base: 100 * ms, Cap: 10 * time.Second, MaxAttempts: c.maxTries})
			fn, calls := script(c.errs...)
			err := Do(t.Context(), p, fn)
			if *calls != c.wantCalls {
				t.Fatalf("calls = %d, want %d", *calls, c.wantCalls)
			}
			if !slices.Equal(ft.waits, c.wantWaits) {
				t.Fatalf("waits = %v, want %v", ft.waits, c.wantWaits)
			}
			switch {
			case c.wantErr == nil && *calls > len(c.errs) && err != nil:
				t.Fatalf("err = %v, want nil", err)
			case c.wantErr != nil && !errors.Is(err, c.wantErr):
				t.Fatalf("err = %v, want %v", err, c.wantErr)
			}
			if *calls <= len(c.errs) && err != c.errs[*calls-1] {
				t.Fatalf("err = %v, want the last error unchanged (%v)", err, c.errs[*calls-1])
			}
		})
	}
}

func TestDoStopsBeforeTheDeadline(t *testing.T) {
	start := time.Now()
	ft := &fakeTime{now: start}
	p := ft.policy(Policy{Base: 10 * time.Minute, Cap: time.Hour, MaxAttempts: 100, Margin: 30 * time.Minute})
	p.Rand = func() float64 { return 0.99 }
	ctx, cancel := context.WithDeadline(t.Context(), start.Add(time.Hour))
	defer cancel()
	var retried []int
	p.OnRetry = func(_ context.Context, attempt int, err error, wait time.Duration) {
		retried = append(retried, attempt)
	}
	last := kindErr(storage.Transient, 0)
	calls := 0
	err := Do(ctx, p, func(context.Context) error { calls++; return last })
	// Waits of 9.9 and 19.8 minutes fit before deadline-margin (30 min);
	// the third, 39.6 minutes, would not.
	if calls != 3 || err != last || !slices.Equal(retried, []int{1, 2}) {
		t.Fatalf("calls = %d, retried after %v, err = %v; want 3 calls, retries after 1 and 2, the last error", calls, retried, err)
	}
	if got := ft.now.Sub(start); got > 30*time.Minute {
		t.Fatalf("slept %v, past the deadline less its margin", got)
	}
}

func TestDoCancelledWhileWaiting(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	p := Policy{Base: time.Hour, Cap: time.Hour, Rand: func() float64 { return 0.5 }}
	calls := 0
	err := Do(ctx, p, func(context.Context) error {
		calls++
		cancel() // the invocation is abandoned while the first call fails
		return kindErr(storage.Transient, 0)
	})
	if calls != 1 || !errors.Is(err, storage.ErrTransient) {
		t.Fatalf("calls = %d, err = %v; want 1 call and the transient error", calls, err)
	}

	// Cancelled during the (real) wait: both the provider error and the
	// cancellation show.
	ctx, cancel = context.WithCancel(t.Context())
	p.OnRetry = func(context.Context, int, error, time.Duration) { cancel() }
	err = Do(ctx, p, func(context.Context) error { return kindErr(storage.Transient, 0) })
	if !errors.Is(err, storage.ErrTransient) || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want the transient error and context.Canceled", err)
	}
}

func TestCeiling(t *testing.T) {
	p := Policy{Base: time.Second, Cap: 20 * time.Second}
	for attempt, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 5: 16 * time.Second, 6: 20 * time.Second, 1000: 20 * time.Second} {
		if got := p.Ceiling(attempt); got != want {
			t.Errorf("Ceiling(%d) = %v, want %v", attempt, got, want)
		}
	}
	if got := (Policy{}).Ceiling(1); got != DefaultBase {
		t.Errorf("zero policy Ceiling(1) = %v, want %v", got, DefaultBase)
	}
}

func TestVisibilityTimeout(t *testing.T) {
	cases := []struct {
		receives    int
		base, limit time.Duration
		want        time.Duration
	}{
		{1, 30 * time.Second, time.Hour, 30 * time.Second},
		{0, 30 * time.Second, time.Hour, 30 * time.Second},
		{2, 30 * time.Second, time.Hour, time.Minute},
		{4, 30 * time.Second, time.Hour, 4 * time.Minute},
		{8, 30 * time.Second, time.Hour, time.Hour},
		{1 << 20, 30 * time.Second, 0, MaxVisibilityTimeout},
		{3, time.Minute, 48 * time.Hour, 4 * time.Minute},
		{40, time.Minute, 48 * time.Hour, MaxVisibilityTimeout},
		{5, 0, time.Hour, 0},
	}
	for _, c := range cases {
		if got := VisibilityTimeout(c.receives, c.base, c.limit); got != c.want {
			t.Errorf("VisibilityTimeout(%d, %v, %v) = %v, want %v", c.receives, c.base, c.limit, got, c.want)
		}
	}
}

func TestValidate(t *testing.T) {
	err := Policy{Base: -1, MaxAttempts: -1}.Validate()
	for _, want := range []string{"Base is negative", "MaxAttempts is negative"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("Validate() = %v, want it to mention %q", err, want)
		}
	}
	if err := (Policy{}).Validate(); err != nil {
		t.Fatalf("zero Policy: %v", err)
	}
}
