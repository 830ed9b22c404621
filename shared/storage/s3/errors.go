package s3

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/wedsync/backup-replication/shared/storage"
)

// fail wraps err as a *storage.Error for op on key, classified once here.
func (p *Provider) fail(op, key string, err error) error {
	var se *storage.Error
	if errors.As(err, &se) {
		return err
	}
	kind, after := classify(err)
	return &storage.Error{Op: op, Provider: p.name, Key: key, Kind: kind, RetryAfter: after, Err: err}
}

// Error codes S3 and S3-compatible stores answer with, by kind.
var codeKinds = map[string]storage.Kind{
	"NoSuchKey":    storage.NotFound,
	"NotFound":     storage.NotFound, // HEAD has no body; the SDK names the 404
	"NoSuchBucket": storage.NotFound,
	"NoSuchUpload": storage.NotFound,

	"AccessDenied":          storage.Unauthorized,
	"Forbidden":             storage.Unauthorized, // HEAD 403
	"InvalidAccessKeyId":    storage.Unauthorized,
	"SignatureDoesNotMatch": storage.Unauthorized,
	"ExpiredToken":          storage.Unauthorized,
	"InvalidToken":          storage.Unauthorized,
	"TokenRefreshRequired":  storage.Unauthorized,
	"AllAccessDisabled":     storage.Unauthorized,
	"AccountProblem":        storage.Unauthorized,
	"InvalidSecurity":       storage.Unauthorized,

	"SlowDown":                      storage.Throttled,
	"Throttling":                    storage.Throttled,
	"ThrottlingException":           storage.Throttled,
	"RequestLimitExceeded":          storage.Throttled,
	"TooManyRequestsException":      storage.Throttled,
	"RequestThrottled":              storage.Throttled,
	"ProvisionedThroughputExceeded": storage.Throttled,

	"InternalError":        storage.Transient,
	"ServiceUnavailable":   storage.Transient,
	"RequestTimeout":       storage.Transient,
	"RequestTimeTooSkewed": storage.Transient,
	"IncompleteBody":       storage.Transient,
	"OperationAborted":     storage.Transient,

	"BadDigest":                 storage.Integrity,
	"InvalidDigest":             storage.Integrity,
	"XAmzContentSHA256Mismatch": storage.Integrity,
	"InvalidChecksum":           storage.Integrity,
}

// classify maps an SDK, network or our own error to a storage kind, with the
// server's Retry-After hint when it gave one. It reads error types, S3
// error codes and HTTP status codes, never message text.
func classify(err error) (storage.Kind, time.Duration) {
	if err == nil {
		return storage.Permanent, 0
	}
	// Our own verdicts first: a verifying reader that failed the body.
	var se *storage.Error
	if errors.As(err, &se) {
		return se.Kind, se.RetryAfter
	}
	if errors.Is(err, storage.ErrIntegrity) {
		return storage.Integrity, 0
	}
	status, after := 0, time.Duration(0)
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.Response != nil {
		status = re.HTTPStatusCode()
		after = retryAfter(re.Response.Header.Get("Retry-After"))
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		if k, ok := codeKinds[api.ErrorCode()]; ok {
			return k, after
		}
	}
	switch {
	case status == http.StatusNotFound:
		return storage.NotFound, 0
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return storage.Unauthorized, 0
	case status == http.StatusTooManyRequests:
		return storage.Throttled, after
	case status >= 500:
		return storage.Transient, after
	case status == http.StatusRequestTimeout:
		return storage.Transient, after
	case status != 0:
		return storage.Permanent, 0
	}
	// No response: the request did not complete.
	switch {
	case errors.Is(err, context.Canceled):
		return storage.Permanent, 0 // the caller gave up; says nothing about the provider
	case errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, io.EOF),
		errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.EPIPE):
		return storage.Transient, 0
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return storage.Transient, 0
	}
	var send *smithyhttp.RequestSendError
	if errors.As(err, &send) {
		return storage.Transient, 0
	}
	return storage.Permanent, 0
}

// retryAfter parses a Retry-After header: seconds or an HTTP date.
func retryAfter(h string) time.Duration {
	if h == "" {
		return 0
	}
	if s, err := strconv.Atoi(h); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}
