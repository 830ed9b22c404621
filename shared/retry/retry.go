// Package retry is the one place where a failed provider request is tried
// again within an invocation: exponential backoff with full jitter, only
// for errors that may succeed when repeated (storage.Retryable), honouring
// the provider's Retry-After, and never sleeping past the context's
// deadline (the Lambda's remaining time) less a margin. Across invocations
// the queue retries instead; VisibilityTimeout spaces those out.
package retry

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/wedsync/backup-replication/shared/storage"
)

// Defaults of Policy.
const (
	DefaultBase        = 200 * time.Millisecond
	DefaultCap         = 10 * time.Second
	DefaultMaxAttempts = 5
	DefaultMargin      = 3 * time.Second
)

// MaxVisibilityTimeout is SQS's upper bound on a message's visibility
// timeout (12 hours).
const MaxVisibilityTimeout = 12 * time.Hour

// Policy says how Do retries. The zero Policy uses the defaults.
type Policy struct {
	// Base is the backoff ceiling before the first retry; it doubles for
	// each retry after. 0 means DefaultBase.
	Base time.Duration
	// Cap bounds every backoff ceiling, and is the longest Retry-After hint
	// Do will wait for: a longer hint ends the retries (the work should go
	// back to its queue). 0 means DefaultCap.
	Cap time.Duration
	// MaxAttempts counts every call of fn, the first included. 0 means
	// DefaultMaxAttempts; 1 means never retry.
	MaxAttempts int
	// Margin is time kept free before the context's deadline: Do does not
	// start a wait that would end within Margin of the deadline, so the
	// caller has time left to record the failure. 0 means DefaultMargin.
	Margin time.Duration
	// Retryable says which errors to retry. nil means storage.Retryable
	// (kinds Transient and Throttled).
	Retryable func(error) bool
	// OnRetry, when set, is called before each wait with the attempt that
	// just failed (1 for the first call), its error and the wait.
	OnRetry func(ctx context.Context, attempt int, err error, wait time.Duration)

	// Rand returns a number in [0, 1) for the jitter; nil uses math/rand/v2.
	Rand func() float64
	// Sleep waits d or until ctx ends; nil waits on a timer in a select on
	// ctx.Done(). Tests inject theirs.
	Sleep func(ctx context.Context, d time.Duration) error
	// Now is the clock the deadline is compared with; nil means time.Now.
	Now func() time.Time
}

// Validate reports every negative setting at once.
func (p Policy) Validate() error {
	var errs []error
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"Base", p.Base}, {"Cap", p.Cap}, {"Margin", p.Margin}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("retry: %s is negative (%s)", d.name, d.v))
		}
	}
	if p.MaxAttempts < 0 {
		errs = append(errs, fmt.Errorf("retry: MaxAttempts is negative (%d)", p.MaxAttempts))
	}
	return errors.Join(errs...)
}

// withDefaults fills in every zero field.
func (p Policy) withDefaults() Policy {
	if p.Base <= 0 {
		p.Base = DefaultBase
	}
	if p.Cap <= 0 {
		p.Cap = DefaultCap
	}
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = DefaultMaxAttempts
	}
	if p.Margin <= 0 {
		p.Margin = DefaultMargin
	}
	if p.Retryable == nil {
		p.Retryable = storage.Retryable
	}
	if p.Rand == nil {
		p.Rand = rand.Float64
	}
	if p.Sleep == nil {
		p.Sleep = sleep
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	return p
}

// Ceiling is the backoff ceiling after the given failed attempt (1-based):
// Base·2^(attempt-1), at most Cap. The wait is a uniform random duration
// in [0, Ceiling) ("full jitter").
func (p Policy) Ceiling(attempt int) time.Duration {
	p = p.withDefaults()
	return doubled(p.Base, attempt-1, p.Cap)
}

// doubled is base·2^n, at most limit, without overflowing.
func doubled(base time.Duration, n int, limit time.Duration) time.Duration {
	d := base
	for range max(n, 0) {
		if d >= limit/2 {
			return limit
		}
		d *= 2
	}
	return min(d, limit)
}

// Do calls fn until it succeeds, returns an error p does not retry, or
// MaxAttempts calls have been made; it returns fn's last error unchanged
// (so its kind and Retry-After still show), or nil. Between calls it waits
// a jittered backoff, or the error's Retry-After when that is longer. It
// stops early, returning the last error, when that wait would end within
// Margin of ctx's deadline or when Retry-After exceeds Cap; and when ctx
// ends during a wait it returns the last error wrapped together with
// ctx.Err().
func Do(ctx context.Context, p Policy, fn func(ctx context.Context) error) error {
	p = p.withDefaults()
	for attempt := 1; ; attempt++ {
		err := fn(ctx)
		if err == nil || attempt >= p.MaxAttempts || !p.Retryable(err) || ctx.Err() != nil {
			return err
		}
		wait := time.Duration(p.Rand() * float64(doubled(p.Base, attempt-1, p.Cap)))
		if ra := storage.RetryAfterOf(err); ra > 0 {
			if ra > p.Cap {
				return err
			}
			wait = max(wait, ra)
		}
		if dl, ok := ctx.Deadline(); ok && p.Now().Add(wait).After(dl.Add(-p.Margin)) {
			return err
		}
		if p.OnRetry != nil {
			p.OnRetry(ctx, attempt, err, wait)
		}
		if serr := p.Sleep(ctx, wait); serr != nil {
			return fmt.Errorf("%w (retry stopped: %w)", err, serr)
		}
	}
}

// sleep waits d or until ctx ends, whichever comes first.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// VisibilityTimeout is how long a queue message that failed should stay
// hidden before its next delivery (across invocations; the replicate
// handler passes it, in whole seconds, to ChangeMessageVisibility): base on
// the first receive, doubling with each receive after, at most limit (0:
// MaxVisibilityTimeout) and never beyond SQS's limit of 12 hours. It has no jitter: messages that
// failed together already spread out by their receive counts and by the
// queue's own delivery order. A base ≤ 0 gives 0 (visible at once).
func VisibilityTimeout(receiveCount int, base, limit time.Duration) time.Duration {
	if base <= 0 {
		return 0
	}
	if limit <= 0 || limit > MaxVisibilityTimeout {
		limit = MaxVisibilityTimeout
	}
	return doubled(base, receiveCount-1, limit)
}
