package api

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// Landing is the landing bucket as the API uses it: it hands out presigned
// requests so that bytes go from the client straight to S3, never through
// the API.
type Landing interface {
	// PresignPut returns a PUT of exactly size bytes whose SHA-256 must be
	// sha256Hex, with the given content type, valid for ttl.
	PresignPut(ctx context.Context, key string, size int64, sha256Hex, contentType string, ttl time.Duration) (Presigned, error)
	// CreateMultipart starts a multipart upload and returns its id.
	CreateMultipart(ctx context.Context, key, contentType string) (uploadID string, err error)
	// PresignPart returns a PUT of part number part, exactly size bytes.
	PresignPart(ctx context.Context, key, uploadID string, part int32, size int64, ttl time.Duration) (Presigned, error)
	// CompleteMultipart assembles the parts and returns the object's size.
	// An unknown upload id gives ErrUploadNotFound; parts S3 refuses
	// (missing, wrong ETag, too small) give ErrBadParts.
	CompleteMultipart(ctx context.Context, key, uploadID string, parts []CompletedPart) (size int64, err error)
}

// Presigned is a request the client sends as is: method, URL and the
// headers that were signed into it.
type Presigned struct {
	Method  string            `json:"method"`
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers,omitempty"`
}

// Errors of CompleteMultipart.
var (
	ErrUploadNotFound = errors.New("api: multipart upload not found")
	ErrBadParts       = errors.New("api: multipart parts refused")
)

// S3Landing is Landing on an S3 bucket (aws-sdk-go-v2).
type S3Landing struct {
	client  *s3.Client
	presign *s3.PresignClient
	bucket  string
}

var _ Landing = (*S3Landing)(nil)

// NewS3Landing returns the landing bucket bucket reached through client.
func NewS3Landing(client *s3.Client, bucket string) *S3Landing {
	return &S3Landing{client: client, presign: s3.NewPresignClient(client), bucket: bucket}
}

// PresignPut implements Landing. Content-Length, Content-Type and
// x-amz-checksum-sha256 are signed headers: S3 refuses a PUT whose length
// or type differ, and stores nothing whose SHA-256 differs.
func (l *S3Landing) PresignPut(ctx context.Context, key string, size int64, sha256Hex, contentType string, ttl time.Duration) (Presigned, error) {
	raw, err := hex.DecodeString(sha256Hex)
	if err != nil {
		return Presigned{}, fmt.Errorf("presign put: sha256: %w", err)
	}
	in := &s3.PutObjectInput{
		Bucket:            aws.String(l.bucket),
		Key:               aws.String(key),
		ContentLength:     aws.Int64(size),
		ContentType:       aws.String(contentType),
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
		ChecksumSHA256:    aws.String(base64.StdEncoding.EncodeToString(raw)),
	}
	req, err := l.presign.PresignPutObject(ctx, in, s3.WithPresignExpires(ttl))
	if err != nil {
		return Presigned{}, fmt.Errorf("presign put: %w", err)
	}
	return toPresigned(req.Method, req.URL, req.SignedHeader, size), nil
}

// CreateMultipart implements Landing.
func (l *S3Landing) CreateMultipart(ctx context.Context, key, contentType string) (string, error) {
	out, err := l.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket:      aws.String(l.bucket),
		Key:         aws.String(key),
		ContentType: aws.String(contentType),
	})
	if err != nil {
		return "", fmt.Errorf("create multipart upload: %w", err)
	}
	return aws.ToString(out.UploadId), nil
}

// PresignPart implements Landing; Content-Length is signed.
func (l *S3Landing) PresignPart(ctx context.Context, key, uploadID string, part int32, size int64, ttl time.Duration) (Presigned, error) {
	req, err := l.presign.PresignUploadPart(ctx, &s3.UploadPartInput{
		Bucket:        aws.String(l.bucket),
		Key:           aws.String(key),
		UploadId:      aws.String(uploadID),
		PartNumber:    aws.Int32(part),
		ContentLength: aws.Int64(size),
	}, s3.WithPresignExpires(ttl))
	if err != nil {
		return Presigned{}, fmt.Errorf("presign part %d: %w", part, err)
	}
	return toPresigned(req.Method, req.URL, req.SignedHeader, size), nil
}

// CompleteMultipart implements Landing.
func (l *S3Landing) CompleteMultipart(ctx context.Context, key, uploadID string, parts []CompletedPart) (int64, error) {
	// Ask for the upload first: S3 answers NoSuchUpload here as it would on
	// completion (moto, unlike S3, fails completion of an unknown id with 500).
	_, err := l.client.ListParts(ctx, &s3.ListPartsInput{Bucket: aws.String(l.bucket), Key: aws.String(key),
		UploadId: aws.String(uploadID), MaxParts: aws.Int32(1)})
	if err != nil {
		return 0, classifyMultipart(err)
	}
	cp := make([]types.CompletedPart, len(parts))
	for i, p := range parts {
		cp[i] = types.CompletedPart{PartNumber: aws.Int32(p.PartNumber), ETag: aws.String(p.ETag)}
	}
	_, err = l.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          aws.String(l.bucket),
		Key:             aws.String(key),
		UploadId:        aws.String(uploadID),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: cp},
	})
	if err != nil {
		return 0, classifyMultipart(err)
	}
	head, err := l.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(l.bucket), Key: aws.String(key)})
	if err != nil {
		return 0, fmt.Errorf("head completed object: %w", err)
	}
	return aws.ToInt64(head.ContentLength), nil
}

// classifyMultipart maps S3's multipart error codes to ErrUploadNotFound
// and ErrBadParts.
func classifyMultipart(err error) error {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NoSuchUpload":
			return fmt.Errorf("%w: %v", ErrUploadNotFound, err)
		case "InvalidPart", "InvalidPartOrder", "EntityTooSmall", "MalformedXML":
			return fmt.Errorf("%w: %v", ErrBadParts, err)
		}
	}
	return fmt.Errorf("complete multipart upload: %w", err)
}

// toPresigned keeps the signed headers the client must send (Host and
// Content-Length are set by every HTTP client itself, but Content-Length is
// listed so that clients know it is bound).
func toPresigned(method, url string, signed http.Header, size int64) Presigned {
	h := map[string]string{}
	for k, v := range signed {
		if http.CanonicalHeaderKey(k) == "Host" || len(v) == 0 {
			continue
		}
		h[http.CanonicalHeaderKey(k)] = v[0]
	}
	h["Content-Length"] = strconv.FormatInt(size, 10)
	return Presigned{Method: method, URL: url, Headers: h}
}
