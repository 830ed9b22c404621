package gcs

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"

	"cloud.google.com/go/auth"
	gcs "cloud.google.com/go/storage"
	"golang.org/x/oauth2"
	"google.golang.org/api/googleapi"

	"github.com/wedsync/backup-replication/shared/storage"
)

// fail wraps err as the *storage.Error for op on key, classified once.
// An err that already is a *storage.Error is returned as is.
func (p *Provider) fail(op, key string, err error) error {
	var se *storage.Error
	if errors.As(err, &se) {
		return err
	}
	kind, after := classify(err)
	return &storage.Error{Op: op, Provider: p.name, Key: key, Kind: kind, RetryAfter: after, Err: err}
}

// integrity builds the Integrity error for op on key.
func (p *Provider) integrity(op, key string, err error) error {
	return &storage.Error{Op: op, Provider: p.name, Key: key, Kind: storage.Integrity, Err: err}
}

// classify maps an error from the GCS client, its auth layer or the network
// to an error kind, from types and status codes only (never messages), and
// returns the Retry-After hint the service gave, if any.
func classify(err error) (storage.Kind, time.Duration) {
	if err == nil {
		return storage.Permanent, 0
	}
	// Our own verdicts (the verifying reader) first.
	if errors.Is(err, storage.ErrIntegrity) {
		return storage.Integrity, 0
	}
	if errors.Is(err, gcs.ErrObjectNotExist) || errors.Is(err, gcs.ErrBucketNotExist) {
		return storage.NotFound, 0
	}
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		return classifyStatus(ge.Code, ge.Header, false)
	}
	// The token endpoint refused or failed (cloud.google.com/go/auth, and
	// x/oauth2 for older credential paths): a 4xx there means the
	// credentials themselves are bad.
	var ae *auth.Error
	if errors.As(err, &ae) && ae.Response != nil {
		return classifyStatus(ae.Response.StatusCode, ae.Response.Header, true)
	}
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil {
		return classifyStatus(re.Response.StatusCode, re.Response.Header, true)
	}
	switch {
	case errors.Is(err, context.Canceled):
		// The caller gave up: that says nothing about GCS's health, and
		// repeating is the caller's decision, not a retry layer's.
		return storage.Permanent, 0
	case errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.EPIPE):
		return storage.Transient, 0
	}
	var ne net.Error
	if errors.As(err, &ne) {
		// Timeouts, refused or reset connections, DNS failures: the same
		// request may succeed later.
		return storage.Transient, 0
	}
	return storage.Permanent, 0
}

// classifyStatus maps an HTTP status. fromToken says it came from the token
// endpoint, where any other 4xx means rejected credentials.
func classifyStatus(code int, h http.Header, fromToken bool) (storage.Kind, time.Duration) {
	switch {
	case code == http.StatusNotFound && !fromToken:
		return storage.NotFound, 0
	case code == http.StatusUnauthorized, code == http.StatusForbidden:
		return storage.Unauthorized, 0
	case code == http.StatusTooManyRequests:
		return storage.Throttled, retryAfter(h)
	case code == http.StatusRequestTimeout, code >= 500:
		return storage.Transient, retryAfter(h)
	case fromToken && code >= 400:
		return storage.Unauthorized, 0
	}
	// 412 (a precondition failed), 416 (a range past the end), other 4xx.
	return storage.Permanent, 0
}

// retryAfter reads a Retry-After header in seconds or as an HTTP date.
func retryAfter(h http.Header) time.Duration {
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}
