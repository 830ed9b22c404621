package breaker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/wedsync/backup-replication/shared/storage"
)

// ErrOpen matches every refusal by a breaker (errors.Is(err, ErrOpen)):
// the provider is down or being tested, so the work should wait (go back
// to its queue) and must not be counted as a failure of that work.
var ErrOpen = errors.New("breaker: provider unavailable")

// The two refusals of Allow, as in sony/gobreaker. Both match ErrOpen.
var (
	// ErrOpenState: the breaker is open and its Timeout has not passed.
	ErrOpenState error = &refusal{"circuit breaker is open"}
	// ErrTooManyRequests: the breaker is half-open and its MaxRequests
	// trials are already in flight.
	ErrTooManyRequests error = &refusal{"circuit breaker is half-open and its trial slots are taken"}
)

type refusal struct{ msg string }

// Error returns the refusal's message.
func (e *refusal) Error() string { return e.msg }

// Is makes every refusal match ErrOpen.
func (e *refusal) Is(target error) bool { return target == ErrOpen }

// Rejection is the error Allow returns when it refuses a request. It
// matches ErrOpen and its Err (ErrOpenState or ErrTooManyRequests).
type Rejection struct {
	Breaker string    // the breaker's name
	Err     error     // ErrOpenState or ErrTooManyRequests
	RetryAt time.Time // while open, when a trial may be allowed; otherwise zero
}

// Error says which breaker refused, why, and until when.
func (e *Rejection) Error() string {
	if !e.RetryAt.IsZero() {
		return fmt.Sprintf("breaker %s: %v until %s", e.Breaker, e.Err, e.RetryAt.UTC().Format(time.RFC3339Nano))
	}
	return fmt.Sprintf("breaker %s: %v", e.Breaker, e.Err)
}

// Unwrap returns ErrOpenState or ErrTooManyRequests.
func (e *Rejection) Unwrap() error { return e.Err }

// ErrConflict is what a Store returns when a conditional write lost: the
// record changed since it was read. The breaker reads it again and retries.
var ErrConflict = errors.New("breaker: record changed since it was read")

// Ignore marks err, reported to a done func, as saying nothing about the
// provider (the caller's source failed, or the caller's callback did), so
// that the breaker counts it as excluded whatever its IsExcluded says.
func Ignore(err error) error {
	if err == nil {
		return nil
	}
	return &ignored{err}
}

type ignored struct{ err error }

// Error is the marked error's message.
func (e *ignored) Error() string { return e.err.Error() }

// Unwrap returns the marked error.
func (e *ignored) Unwrap() error { return e.err }

// DefaultIsSuccessful counts as a failure only an error that says the
// provider is unwell: storage.CountsForBreaker (transient, throttled,
// unauthorized). Every other error — not found, permanent, integrity, and
// errors outside the storage kinds — is the provider answering as it should
// about a request or data it was given, so it counts as a success for the
// provider's health (and, while half-open, closes the breaker as a good
// trial would).
func DefaultIsSuccessful(err error) bool {
	return err == nil || !storage.CountsForBreaker(err)
}

// DefaultIsExcluded leaves uncounted what says nothing about the provider:
// the caller's cancellation (context.Canceled anywhere in the chain), the
// caller's own deadline when no provider error came with it (a bare
// context.DeadlineExceeded; a provider that stalls until the deadline
// returns a Transient *storage.Error, which counts), and refusals by a
// breaker (ErrOpen).
func DefaultIsExcluded(err error) bool {
	var se *storage.Error
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, ErrOpen):
		return true
	case errors.Is(err, context.DeadlineExceeded):
		return !errors.As(err, &se)
	}
	return false
}
