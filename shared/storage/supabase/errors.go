package supabase

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/wedsync/backup-replication/shared/storage"
)

// apiError is an error answer from the Storage API. REST routes send
// {"statusCode":"404","error":…,"message":…,"code":"NoSuchKey"}, mostly
// with HTTP 400; TUS routes send the real status and the message as text;
// the API gateway of a hosted project sends 401 {"message":…}.
type apiError struct {
	HTTPStatus int    `json:"-"`
	StatusCode string `json:"statusCode"`
	ErrorName  string `json:"error"`
	Message    string `json:"message"`
	Code       string `json:"code"`
	// noAuth is set when the request carried no Authorization header.
	noAuth     bool
	retryAfter time.Duration
}

func (e *apiError) Error() string {
	s := fmt.Sprintf("HTTP %d", e.HTTPStatus)
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.StatusCode != "" && e.StatusCode != strconv.Itoa(e.HTTPStatus) {
		s += " (statusCode " + e.StatusCode + ")"
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// readError turns a non-success response into an *apiError, reading at
// most 4 KiB of its body, and closes the body.
func readError(resp *http.Response) error {
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	e := &apiError{HTTPStatus: resp.StatusCode, retryAfter: retryAfter(resp.Header)}
	if json.Unmarshal(body, e) != nil {
		e.Message = strings.TrimSpace(string(body))
	}
	if resp.Request != nil {
		e.noAuth = resp.Request.Header.Get("Authorization") == ""
	}
	return e
}

// retryAfter reads a Retry-After header in seconds.
func retryAfter(h http.Header) time.Duration {
	if s, err := strconv.Atoi(h.Get("Retry-After")); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	return 0
}

// codeKinds maps the body's code (and, for errors without one, its error
// name) to a kind: the server's own vocabulary, src/internal/errors/codes.ts.
var codeKinds = map[string]storage.Kind{
	"NoSuchKey":           storage.NotFound,
	"NoSuchBucket":        storage.NotFound,
	"NoSuchUpload":        storage.NotFound,
	"not_found":           storage.NotFound,
	"AccessDenied":        storage.Unauthorized,
	"InvalidJWT":          storage.Unauthorized,
	"ExpiredToken":        storage.Unauthorized,
	"InvalidSignature":    storage.Unauthorized,
	"SlowDown":            storage.Throttled,
	"DatabaseTimeout":     storage.Transient,
	"LockTimeout":         storage.Transient,
	"InternalError":       storage.Transient,
	"KeyAlreadyExists":    storage.Permanent,
	"EntityTooLarge":      storage.Permanent,
	"InvalidRange":        storage.Permanent,
	"InvalidKey":          storage.Permanent,
	"InvalidMimeType":     storage.Permanent,
	"ResourceNotEmpty":    storage.Permanent,
	"BucketAlreadyExists": storage.Permanent,
}

// kindOfStatus maps an HTTP status (or the body's statusCode) to a kind;
// ok is false for statuses that say nothing by themselves (400).
func kindOfStatus(code int) (k storage.Kind, ok bool) {
	switch {
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return storage.Unauthorized, true
	case code == http.StatusNotFound || code == http.StatusGone:
		return storage.NotFound, true
	case code == http.StatusTooManyRequests:
		return storage.Throttled, true
	case code == http.StatusRequestTimeout || code >= 500:
		return storage.Transient, true
	case code == http.StatusConflict || code == http.StatusRequestEntityTooLarge ||
		code == http.StatusRequestedRangeNotSatisfiable || code == http.StatusPreconditionFailed:
		return storage.Permanent, true
	}
	return storage.Permanent, false
}

// classify reads the kind of err: API error codes first, then the status
// in the body, then the HTTP status; network failures and timeouts are
// transient. It never reads messages.
func classify(err error) storage.Kind {
	var ae *apiError
	if errors.As(err, &ae) {
		if k, ok := codeKinds[ae.Code]; ok {
			return k
		}
		if ae.Code == "InvalidRequest" && ae.noAuth {
			// "headers must have required property 'authorization'"
			return storage.Unauthorized
		}
		if n, err := strconv.Atoi(ae.StatusCode); err == nil {
			if k, ok := kindOfStatus(n); ok {
				return k
			}
		}
		k, _ := kindOfStatus(ae.HTTPStatus)
		return k
	}
	var se *storage.Error
	if errors.As(err, &se) {
		return se.Kind
	}
	if errors.Is(err, storage.ErrIntegrity) {
		return storage.Integrity
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.As(err, &ne) {
		return storage.Transient
	}
	return storage.Permanent
}

// fail wraps err as the provider's *storage.Error for op on key.
func (p *Provider) fail(op, key string, err error) error {
	var se *storage.Error
	if errors.As(err, &se) {
		return err
	}
	e := &storage.Error{Op: op, Provider: p.name, Key: key, Kind: classify(err), Err: err}
	var ae *apiError
	if errors.As(err, &ae) {
		e.RetryAfter = ae.retryAfter
	}
	return e
}

// integrity is an Integrity error for op on key.
func (p *Provider) integrity(op, key string, err error) error {
	return &storage.Error{Op: op, Provider: p.name, Key: key, Kind: storage.Integrity, Err: err}
}
