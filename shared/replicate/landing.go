package replicate

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/wedsync/backup-replication/shared/storage"
)

// LandingName is the provider name used in errors about the landing bucket.
const LandingName = "landing"

// LandingAPI is the part of the S3 client that reads the landing bucket;
// *s3.Client implements it.
type LandingAPI interface {
	HeadObject(ctx context.Context, in *s3.HeadObjectInput, opts ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
}

// Landing reads objects from the landing bucket.
type Landing struct {
	api    LandingAPI
	bucket string
	// endpoint is the S3 endpoint for server-side copy locators; empty on AWS.
	endpoint string
}

// NewLanding returns a reader of bucket through api. endpoint is the S3
// endpoint the bucket lives on when it is not AWS's (the local stack); it
// is what a Copier compares to decide whether it can copy server-side.
func NewLanding(api LandingAPI, bucket, endpoint string) *Landing {
	return &Landing{api: api, bucket: bucket, endpoint: endpoint}
}

// LandingObject is what HEAD says about a landing object.
type LandingObject struct {
	Key          string
	Size         int64
	ETag         string
	LastModified time.Time
	// SHA256 is the hex full-object SHA-256 S3 verified at upload, when the
	// client sent one; empty otherwise.
	SHA256 string
}

// Head reads the landing object's size, ETag and checksum.
func (l *Landing) Head(ctx context.Context, key string) (LandingObject, error) {
	out, err := l.api.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(l.bucket), Key: aws.String(key),
		ChecksumMode: types.ChecksumModeEnabled})
	if err != nil {
		return LandingObject{}, classifyLanding("head", key, err)
	}
	obj := LandingObject{Key: key, Size: aws.ToInt64(out.ContentLength), ETag: trimETag(aws.ToString(out.ETag))}
	if out.LastModified != nil {
		obj.LastModified = out.LastModified.UTC()
	}
	if out.ChecksumSHA256 != nil && out.ChecksumType != types.ChecksumTypeComposite {
		if raw, err := base64.StdEncoding.DecodeString(*out.ChecksumSHA256); err == nil && len(raw) == 32 {
			obj.SHA256 = hex.EncodeToString(raw)
		}
	}
	return obj, nil
}

// Locator names obj for a server-side copy.
func (l *Landing) Locator(obj LandingObject) storage.Locator {
	return storage.Locator{Endpoint: l.endpoint, Bucket: l.bucket, Key: obj.Key, Size: obj.Size}
}

// Source returns obj as a storage.Source: ranged GETs pinned to obj's ETag,
// so a reopened stream fails rather than mixing two versions of the object.
func (l *Landing) Source(obj LandingObject) storage.Source {
	return &landingSource{l: l, obj: obj}
}

type landingSource struct {
	l   *Landing
	obj LandingObject
}

func (s *landingSource) Size() int64 { return s.obj.Size }

func (s *landingSource) Open(ctx context.Context, offset int64) (io.ReadCloser, error) {
	if offset < 0 || offset > s.obj.Size {
		return nil, storage.NewError("get", LandingName, s.obj.Key, storage.Permanent,
			fmt.Errorf("offset %d outside 0..%d", offset, s.obj.Size))
	}
	if offset == s.obj.Size {
		return io.NopCloser(eofReader{}), nil
	}
	in := &s3.GetObjectInput{Bucket: aws.String(s.l.bucket), Key: aws.String(s.obj.Key)}
	if s.obj.ETag != "" {
		in.IfMatch = aws.String(`"` + s.obj.ETag + `"`)
	}
	if offset > 0 {
		in.Range = aws.String(fmt.Sprintf("bytes=%d-", offset))
	}
	out, err := s.l.api.GetObject(ctx, in)
	if err != nil {
		return nil, classifyLanding("get", s.obj.Key, err)
	}
	return out.Body, nil
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

func trimETag(s string) string {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		return s[1 : len(s)-1]
	}
	return s
}

// classifyLanding maps an S3 error on the landing bucket to a storage kind,
// by SDK error type, code and HTTP status, never by message text.
func classifyLanding(op, key string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return storage.NewError(op, LandingName, key, storage.Transient, err)
	}
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	if errors.As(err, &nsk) || errors.As(err, &nf) {
		return storage.NewError(op, LandingName, key, storage.NotFound, err)
	}
	status := 0
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	code := ""
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	kind := storage.Transient
	switch {
	case status == http.StatusNotFound || code == "NoSuchKey" || code == "NotFound":
		kind = storage.NotFound
	case status == http.StatusForbidden || status == http.StatusUnauthorized || code == "AccessDenied" ||
		code == "InvalidAccessKeyId" || code == "SignatureDoesNotMatch" || code == "ExpiredToken":
		kind = storage.Unauthorized
	case status == http.StatusTooManyRequests || code == "SlowDown" || code == "Throttling" || code == "RequestLimitExceeded":
		kind = storage.Throttled
	case status == http.StatusPreconditionFailed:
		// The object changed since HEAD: a new attempt reads it afresh.
		kind = storage.Transient
	case status >= 400 && status < 500 && status != http.StatusRequestTimeout:
		kind = storage.Permanent
	}
	return storage.NewError(op, LandingName, key, kind, err)
}
