package s3

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/wedsync/backup-replication/shared/secret"
)

// Limits S3 sets on multipart uploads and copies.
const (
	MinPartSize  = 5 << 20  // every part but the last is at least 5 MiB
	MaxPartSize  = 5 << 30  // and at most 5 GiB
	MaxParts     = 10_000   // parts per upload
	MaxCopySize  = 5 << 30  // CopyObject copies up to 5 GiB; larger copies go by parts
	copyPartSize = 1 << 30  // part size for UploadPartCopy (no bytes pass through us)
	defaultName  = "s3"     // provider name when Config.Name is empty
	defaultPart  = 16 << 20 // default Config.PartSize: two in flight stay within 64 MiB of memory
	defaultConc  = 2        // default Config.Concurrency
)

// Config describes one S3 bucket (AWS or an S3-compatible store). The
// loader fills it from the environment; this package never reads it.
type Config struct {
	// Name is the provider's name in logs, breakers and the catalog
	// ("s3", "s3-standby"). Default "s3".
	Name string
	// Bucket holds the copies. Required.
	Bucket string
	// Region is the bucket's region. Required.
	Region string
	// Endpoint is the base URL of an S3-compatible store or emulator
	// ("http://127.0.0.1:5000"); empty means AWS. Server-side copies are
	// made only from sources on the same endpoint.
	Endpoint string
	// UsePathStyle addresses buckets as endpoint/bucket/key (emulators,
	// most S3-compatible stores) instead of bucket.endpoint/key.
	UsePathStyle bool
	// AccessKeyID and SecretAccessKey are static credentials. When both are
	// empty, New uses the SDK's default chain (the Lambda role).
	AccessKeyID     string
	SecretAccessKey secret.Secret
	// SessionToken goes with temporary static credentials.
	SessionToken secret.Secret
	// PartSize is the multipart part size: 5 MiB to 5 GiB, default 16 MiB.
	// Put buffers up to Concurrency parts, so memory is PartSize×Concurrency.
	// Put raises it for objects that would need more than 10,000 parts.
	PartSize int64
	// MultipartThreshold is the size from which Put uses a multipart upload;
	// smaller objects stream in one PutObject without buffering. At least
	// 5 MiB and at most 5 GiB; default PartSize.
	MultipartThreshold int64
	// Concurrency is how many parts are in flight at once. Default 2.
	Concurrency int
	// ObjectLockMode, when set ("GOVERNANCE" or "COMPLIANCE"), writes every
	// object under retention for ObjectLockRetention. The bucket must have
	// object lock enabled.
	ObjectLockMode      string
	ObjectLockRetention time.Duration
}

// withDefaults returns c with empty fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.Name == "" {
		c.Name = defaultName
	}
	if c.PartSize == 0 {
		c.PartSize = defaultPart
	}
	if c.MultipartThreshold == 0 {
		c.MultipartThreshold = c.PartSize
	}
	if c.Concurrency == 0 {
		c.Concurrency = defaultConc
	}
	c.Endpoint = normalizeEndpoint(c.Endpoint)
	return c
}

// Validate reports every problem with the configuration at once, after
// applying defaults. Field names are those of Config.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("s3 config: "+format, args...)) }
	if c.Bucket == "" {
		bad("Bucket is required")
	}
	if c.Region == "" {
		bad("Region is required")
	}
	if c.Endpoint != "" {
		if u, err := url.Parse(c.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("Endpoint %q is not an http(s) URL", c.Endpoint)
		}
	}
	if (c.AccessKeyID == "") != c.SecretAccessKey.IsZero() {
		bad("AccessKeyID and SecretAccessKey must be set together")
	}
	if c.PartSize < MinPartSize || c.PartSize > MaxPartSize {
		bad("PartSize %d is outside %d..%d", c.PartSize, MinPartSize, MaxPartSize)
	}
	if c.MultipartThreshold < MinPartSize || c.MultipartThreshold > MaxPartSize {
		bad("MultipartThreshold %d is outside %d..%d", c.MultipartThreshold, MinPartSize, MaxPartSize)
	}
	if c.Concurrency < 1 || c.Concurrency > 64 {
		bad("Concurrency %d is outside 1..64", c.Concurrency)
	}
	switch c.ObjectLockMode {
	case "":
	case "GOVERNANCE", "COMPLIANCE":
		if c.ObjectLockRetention <= 0 {
			bad("ObjectLockRetention must be positive with ObjectLockMode %s", c.ObjectLockMode)
		}
	default:
		bad("ObjectLockMode %q is not GOVERNANCE or COMPLIANCE", c.ObjectLockMode)
	}
	return errors.Join(errs...)
}

// normalizeEndpoint makes endpoints comparable: lower-case scheme and host,
// no trailing slash.
func normalizeEndpoint(e string) string {
	e = strings.TrimRight(strings.TrimSpace(e), "/")
	if u, err := url.Parse(e); err == nil && u.Host != "" {
		u.Scheme, u.Host = strings.ToLower(u.Scheme), strings.ToLower(u.Host)
		return u.String()
	}
	return e
}
