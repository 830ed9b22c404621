// Package storage defines the one streaming interface every replica provider
// implements (Supabase Storage, S3, GCS), the error kinds that breakers and
// retries key on, and the helpers the providers share: a verifying reader that
// hashes while bytes move, and a canary health probe.
//
// The shape follows Litestream's ReplicaClient and restic's backend: a small
// interface, ctx first, readers in and io.ReadCloser out. Optional abilities
// (server-side copy, resumable upload) are separate one-method interfaces,
// found through decorators with As.
package storage

import (
	"context"
	"io"
	"time"
)

// Provider is a place that holds copies of backups. Implementations must be
// safe for concurrent use.
type Provider interface {
	// Name is the provider's configured name ("supabase", "s3", "gcs", …).
	Name() string

	// Put stores size bytes read from r under key. opts.SHA256 is the hex
	// SHA-256 the caller expects: when the bytes read do not match it (or do
	// not number exactly size), Put returns an error of kind Integrity and the
	// object is not left visible. Put overwrites an existing object.
	Put(ctx context.Context, key string, r io.Reader, size int64, opts PutOptions) (ObjectInfo, error)

	// Get streams the object from offset; length < 0 means to the end.
	// A missing object gives an error of kind NotFound.
	Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error)

	// Stat returns what the provider knows about the object, including the
	// checksums it keeps and our SHA-256 from the object's metadata.
	Stat(ctx context.Context, key string) (ObjectInfo, error)

	// Delete removes the object. Deleting a missing object is not an error.
	Delete(ctx context.Context, key string) error

	// List calls fn for each object whose key starts with prefix, in no
	// promised order, stopping at the first error fn returns.
	List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error
}

// PutOptions describe an object being stored.
type PutOptions struct {
	// SHA256 is the lowercase hex SHA-256 the bytes must have. Required.
	SHA256 string
	// ContentType defaults to application/octet-stream.
	ContentType string
	// Metadata is stored with the object (small string pairs). The provider
	// adds MetaSHA256 itself.
	Metadata map[string]string
	// Progress, when set, is called as bytes are read from the source with
	// the running total. It must be cheap; callers throttle.
	Progress func(bytes int64)
}

// MetaSHA256 is the metadata key under which every provider keeps the
// verified SHA-256 of the object's bytes.
const MetaSHA256 = "sha256"

// ObjectInfo is what a provider reports about a stored object.
type ObjectInfo struct {
	Key         string
	Size        int64
	ContentType string
	ModTime     time.Time
	// SHA256 is our own hex SHA-256, read from the object's metadata.
	SHA256 string
	// Metadata holds the user metadata the provider returned.
	Metadata map[string]string
	// Checksums are the provider's own evidence about the bytes.
	Checksums Checksums
}

// Checksums are hashes the provider computed or keeps itself. Empty fields
// are unknown.
type Checksums struct {
	// SHA256 is a provider-verified SHA-256 in hex (S3 ChecksumSHA256).
	SHA256 string
	// MD5 is the hex MD5 of the content when the provider proves it (GCS
	// md5Hash, or an S3/Supabase ETag without a part suffix).
	MD5 string
	// CRC32C is the Castagnoli CRC the provider keeps (GCS), valid when
	// HasCRC32C is true.
	CRC32C    uint32
	HasCRC32C bool
	// ETag is the provider's entity tag, unquoted.
	ETag string
	// Proof, set only on what Put and PutResumable return, names how the
	// upload proved the stored object equal to the bytes it read when the
	// fields above cannot show it on their own, such as the ETag of a
	// multipart or resumable upload or a read-back ("etag-parts-md5",
	// "read-back"); a caller may rely on it instead of reading the copy back.
	Proof string
}

// Source is a landing object that a provider can read again from any
// offset: what server-side copies and resumable uploads need.
type Source interface {
	// Open streams the source from offset to its end.
	Open(ctx context.Context, offset int64) (io.ReadCloser, error)
	// Size is the source's length in bytes.
	Size() int64
}

// Copier is implemented by providers that can copy an object without its
// bytes passing through us (S3 CopyObject / UploadPartCopy). Copy returns an
// error wrapping ErrCannotCopy when src is not a source it can copy from, so
// the caller falls back to streaming.
type Copier interface {
	Copy(ctx context.Context, src Locator, key string, opts PutOptions) (ObjectInfo, error)
}

// Locator names an object on an S3-compatible store for server-side copy.
type Locator struct {
	Endpoint string // empty for AWS
	Bucket   string
	Key      string
	Size     int64
}

// Resumer is implemented by providers whose uploads can continue in a later
// invocation (GCS resumable session, Supabase TUS, S3 multipart). state
// carries the provider's session token; save is called whenever it changes
// so the caller can persist it. On resume, the provider asks for the
// remaining bytes and re-reads the prefix from src to hash it.
type Resumer interface {
	PutResumable(ctx context.Context, key string, src Source, opts PutOptions, state string, save func(state string) error) (ObjectInfo, error)
}

// Retainer is implemented by providers that can keep a stored object under
// object lock retention for longer than it was written with (S3 object
// lock, GCS object retention). RetainUntil keeps the object at key locked,
// in the provider's configured mode, until at least until (CeilSecond); it never
// shortens a retention already in force, and returns the retain-until date
// in force afterwards. A provider configured without a lock answers with
// an error of kind Permanent; a missing object with kind NotFound. Find it
// through decorators with As.
type Retainer interface {
	RetainUntil(ctx context.Context, key string, until time.Time) (time.Time, error)
}

// CeilSecond is t in UTC rounded up to a whole second: the retain-until a
// Retainer sets for t, since providers keep whole seconds and rounding
// down would lock for less than asked.
func CeilSecond(t time.Time) time.Time {
	t = t.UTC()
	if s := t.Truncate(time.Second); !s.Equal(t) {
		return s.Add(time.Second)
	}
	return t
}

// Unwrapper is implemented by decorators (retry, breaker, logging) so that
// optional interfaces can be found beneath them.
type Unwrapper interface {
	Unwrap() Provider
}

// As walks the decorator chain of p and returns the first layer that
// implements T.
func As[T any](p Provider) (T, bool) {
	for p != nil {
		if t, ok := p.(T); ok {
			return t, true
		}
		u, ok := p.(Unwrapper)
		if !ok {
			break
		}
		p = u.Unwrap()
	}
	var zero T
	return zero, false
}
