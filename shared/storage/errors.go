package storage

import (
	"errors"
	"fmt"
	"io/fs"
	"time"
)

// Kind classifies a provider error by what a caller should do about it.
type Kind int

// The error kinds. Breakers count Transient, Throttled and Unauthorized;
// retries repeat Transient and Throttled only.
const (
	Permanent    Kind = iota // the request can never succeed as made
	NotFound                 // the object or bucket does not exist
	Unauthorized             // credentials missing, wrong, expired or lacking permission
	Throttled                // the provider asked us to slow down (429, SlowDown)
	Transient                // network, timeout, 5xx: the same request may succeed later
	Integrity                // bytes do not match the expected size or hash
)

var kindNames = [...]string{"permanent", "not_found", "unauthorized", "throttled", "transient", "integrity"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Sentinels, one per kind, to match with errors.Is.
var (
	ErrPermanent    = &kindError{Permanent}
	ErrNotFound     = &kindError{NotFound}
	ErrUnauthorized = &kindError{Unauthorized}
	ErrThrottled    = &kindError{Throttled}
	ErrTransient    = &kindError{Transient}
	ErrIntegrity    = &kindError{Integrity}

	// ErrCannotCopy says a Copier cannot copy from the given source; the
	// caller streams instead.
	ErrCannotCopy = errors.New("storage: server-side copy not possible")
)

type kindError struct{ k Kind }

func (e *kindError) Error() string { return e.k.String() }

// Is makes ErrNotFound match fs.ErrNotExist as well, the one spelling of
// not-found in the standard library.
func (e *kindError) Is(target error) bool {
	return e.k == NotFound && target == fs.ErrNotExist
}

func sentinel(k Kind) error {
	switch k {
	case NotFound:
		return ErrNotFound
	case Unauthorized:
		return ErrUnauthorized
	case Throttled:
		return ErrThrottled
	case Transient:
		return ErrTransient
	case Integrity:
		return ErrIntegrity
	}
	return ErrPermanent
}

// Error is the one error type providers return: what was done, where, and
// what kind of failure it was.
type Error struct {
	Op         string        // "put", "get", "stat", "delete", "list", "copy", "probe"
	Provider   string        // provider name
	Key        string        // object key, if any
	Kind       Kind          // classification
	RetryAfter time.Duration // the provider's hint, when it gave one
	Err        error         // the underlying error
}

func (e *Error) Error() string {
	s := e.Provider + " " + e.Op
	if e.Key != "" {
		s += " " + fmt.Sprintf("%q", e.Key)
	}
	s += ": " + e.Kind.String()
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Is matches the kind sentinels (and fs.ErrNotExist for NotFound).
func (e *Error) Is(target error) bool {
	if target == fs.ErrNotExist {
		return e.Kind == NotFound
	}
	_, ok := target.(*kindError)
	return ok && sentinel(e.Kind) == target
}

// NewError builds an *Error. When err is already an *Error of any kind it is
// returned as is, so classification happens once, nearest the SDK.
func NewError(op, provider, key string, kind Kind, err error) error {
	var se *Error
	if errors.As(err, &se) {
		return err
	}
	return &Error{Op: op, Provider: provider, Key: key, Kind: kind, Err: err}
}

// KindOf returns the kind of err: the Kind of the first *Error in its chain,
// Transient for context deadline errors from the network, Permanent otherwise.
func KindOf(err error) Kind {
	var se *Error
	if errors.As(err, &se) {
		return se.Kind
	}
	var ke *kindError
	if errors.As(err, &ke) {
		return ke.k
	}
	return Permanent
}

// RetryAfterOf returns the provider's Retry-After hint in err, or 0.
func RetryAfterOf(err error) time.Duration {
	var se *Error
	if errors.As(err, &se) {
		return se.RetryAfter
	}
	return 0
}

// Retryable reports whether the same request may succeed if repeated.
func Retryable(err error) bool {
	k := KindOf(err)
	return k == Transient || k == Throttled
}

// CountsForBreaker reports whether err says something about the provider's
// health (as opposed to the request or the data).
func CountsForBreaker(err error) bool {
	k := KindOf(err)
	return k == Transient || k == Throttled || k == Unauthorized
}
