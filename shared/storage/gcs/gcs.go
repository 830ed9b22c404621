// Package gcs is the offsite storage.Provider: Google Cloud Storage through
// cloud.google.com/go/storage over its JSON API, with resumable uploads in
// configured chunks, the service checking CRC32C before it commits, and
// fake-gcs-server (or any STORAGE_EMULATOR_HOST-style endpoint) in tests.
package gcs

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	gcs "cloud.google.com/go/storage"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
	htransport "google.golang.org/api/transport/http"

	"github.com/wedsync/backup-replication/shared/storage"
)

// chunkRetryDeadline bounds the client's own retries of one resumable chunk.
const chunkRetryDeadline = 30 * time.Second

// cleanupTimeout bounds the deletion of an object found corrupt after its
// upload, which runs even when the caller's context has ended.
const cleanupTimeout = 30 * time.Second

// Provider stores objects in one GCS bucket. It is safe for concurrent use.
type Provider struct {
	name     string
	cfg      Config
	client   *gcs.Client
	bucket   *gcs.BucketHandle
	hc       *http.Client // authenticated, for the resumable protocol (session.go)
	endpoint string       // JSON API root, ending in "storage/v1/"
	log      *slog.Logger
}

// New validates cfg and builds the client. ctx is used only while building
// it. log may be nil (no logs).
//
// Retries: the client's own retryer is switched off (RetryNever), because
// the retry decorator above every provider owns retries (bounded by the
// Lambda's deadline, honouring Retry-After, seen by the breaker as one
// outcome). The chunks of a resumable upload are the exception, and the
// client retries them whatever the policy, for up to chunkRetryDeadline
// each: only the client holds a chunk's bytes, so only it can resend them.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Provider, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	endpoint := defaultEndpoint
	var opts []option.ClientOption
	if cfg.Endpoint != "" {
		endpoint = jsonEndpoint(cfg.Endpoint)
		opts = append(opts, option.WithEndpoint(endpoint))
	}
	switch {
	case cfg.CredentialsJSON != "":
		t, _ := cfg.credentialsType() // checked by Validate
		opts = append(opts, option.WithAuthCredentialsJSON(t, []byte(cfg.CredentialsJSON.Reveal())))
	case cfg.Endpoint != "":
		opts = append(opts, option.WithoutAuthentication())
	}
	// Token sources may keep the context they were built with: it must not
	// end with the caller's (an init timeout, say).
	bctx := context.WithoutCancel(ctx)
	// JSON API reads, like every other call: the XML API is a second
	// surface that emulators serve only under GCS's own host name.
	client, err := gcs.NewClient(bctx, append(opts, gcs.WithJSONReads())...)
	if err != nil {
		// The error may quote the credentials: say only where it failed.
		return nil, fmt.Errorf("gcs %q: building the client failed (%T)", cfg.name(), err)
	}
	client.SetRetry(gcs.WithPolicy(gcs.RetryNever))
	hc, _, err := htransport.NewClient(bctx, append(opts, option.WithScopes(gcs.ScopeFullControl))...)
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("gcs %q: building the HTTP client failed (%T)", cfg.name(), err)
	}
	return &Provider{name: cfg.name(), cfg: cfg, client: client, bucket: client.Bucket(cfg.Bucket),
		hc: hc, endpoint: endpoint, log: log.With("provider", cfg.name())}, nil
}

// defaultEndpoint is Google Cloud Storage's JSON API.
const defaultEndpoint = "https://storage.googleapis.com/storage/v1/"

// jsonEndpoint turns "http://host:port" into the JSON API root
// "http://host:port/storage/v1/", and ends a URL that has a path with one
// "/": the client joins "b/{bucket}/o/{name}" to the endpoint as a relative
// reference, so ".../storage/v1" (as a loader that trims slashes leaves it)
// would lose its last segment, and reads would miss while uploads, which
// take their own path, still worked.
func jsonEndpoint(e string) string {
	u, err := url.Parse(e)
	if err != nil {
		return e
	}
	switch {
	case strings.Trim(u.Path, "/") == "":
		u.Path = "/storage/v1/"
	case !strings.HasSuffix(u.Path, "/"):
		u.Path += "/"
	default:
		return e
	}
	u.RawPath = ""
	return u.String()
}

// Close releases the client's connections.
func (p *Provider) Close() error { return p.client.Close() }

// Name returns the configured provider name.
func (p *Provider) Name() string { return p.name }

// Put streams size bytes from r to key, hashing SHA-256, MD5 and CRC32C as
// the bytes pass, in a resumable upload of Config.ChunkSize chunks, or in one
// request when ChunkSize is 0. The object is committed only when the source
// ended with exactly size bytes of the expected SHA-256; then the CRC32C (and
// MD5) GCS reports must equal ours, or the new object is deleted and Put
// returns Integrity.
func (p *Provider) Put(ctx context.Context, key string, r io.Reader, size int64, opts storage.PutOptions) (storage.ObjectInfo, error) {
	if !storage.ValidSHA256(opts.SHA256) {
		return storage.ObjectInfo{}, &storage.Error{Op: "put", Provider: p.name, Key: key, Kind: storage.Permanent,
			Err: fmt.Errorf("expected SHA-256 %q is not 64 lowercase hex digits", opts.SHA256)}
	}
	if size < 0 {
		return storage.ObjectInfo{}, &storage.Error{Op: "put", Provider: p.name, Key: key, Kind: storage.Permanent,
			Err: fmt.Errorf("negative size %d", size)}
	}
	v := storage.NewVerifyingReader(r, size, opts.SHA256, opts.Progress)
	var attrs *gcs.ObjectAttrs
	var err error
	if p.cfg.ChunkSize == 0 {
		attrs, err = p.putOneRequest(ctx, key, v, size, opts)
	} else {
		attrs, err = p.putChunked(ctx, key, v, opts)
	}
	if err != nil {
		return storage.ObjectInfo{}, p.fail("put", key, err)
	}
	if err := compare(attrs, v); err != nil {
		p.removeCorrupt(ctx, key, attrs.Generation, err)
		return storage.ObjectInfo{}, p.integrity("put", key, err)
	}
	return info(attrs), nil
}

// putChunked uploads through the client's Writer, which buffers one chunk
// and retries it on transient errors.
//
// A write is abandoned by cancelling the writer's context, never by Close:
// Close would commit whatever had been sent as a truncated object (the
// Litestream GCS trap).
func (p *Provider) putChunked(ctx context.Context, key string, v *storage.VerifyingReader, opts storage.PutOptions) (*gcs.ObjectAttrs, error) {
	wctx, abandon := context.WithCancel(ctx)
	defer abandon() // after a successful Close this changes nothing
	w := p.bucket.Object(key).NewWriter(wctx)
	w.ChunkSize = p.cfg.ChunkSize
	w.ChunkRetryDeadline = chunkRetryDeadline
	w.ContentType = contentType(opts.ContentType)
	w.Metadata = metadata(opts)
	if p.cfg.Retention > 0 {
		w.Retention = &gcs.ObjectRetention{Mode: p.retentionMode(), RetainUntil: time.Now().Add(p.cfg.Retention)}
	}
	// Checksums. We cannot set w.CRC32C with SendCRC32C: the CRC is known
	// only once the last byte has passed, and the client sends that field
	// with the object's metadata before the first byte (setting it also
	// switches the automatic checksum off). The automatic checksum does what
	// we want instead: the client computes CRC32C as the bytes pass and
	// sends it with the final chunk, which GCS checks before it commits.
	// Put then compares GCS's CRC32C and MD5 with ours all the same.
	if _, err := io.Copy(w, v); err != nil {
		abandon()
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		// The source may ignore ctx and finish anyway: still abandon.
		abandon()
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return w.Attrs(), nil
}

// putOneRequest sends the object in a single PUT to a resumable session,
// streaming with no buffer, its last byte held back until the SHA-256 is
// proved (session.go says why the client's own one-request mode is not
// used). Nothing is retried: the bytes are gone once sent.
func (p *Provider) putOneRequest(ctx context.Context, key string, v *storage.VerifyingReader, size int64, opts storage.PutOptions) (*gcs.ObjectAttrs, error) {
	session, err := p.startSession(ctx, key, size, opts)
	if err != nil {
		return nil, err
	}
	attrs, err := p.sendRest(ctx, session, v, 0, size)
	if err != nil {
		p.cancelSession(ctx, session)
		return nil, err
	}
	return attrs, nil
}

func (p *Provider) retentionMode() string {
	if p.cfg.RetentionMode == "" {
		return "Unlocked"
	}
	return p.cfg.RetentionMode
}

// compare checks what GCS says it stored against what we read.
func compare(a *gcs.ObjectAttrs, v *storage.VerifyingReader) error {
	if a.Size != v.N() {
		return fmt.Errorf("%w: GCS stored %d bytes, we sent %d", storage.ErrIntegrity, a.Size, v.N())
	}
	if a.CRC32C != v.CRC32C() {
		return fmt.Errorf("%w: GCS crc32c %08x, we sent %08x", storage.ErrIntegrity, a.CRC32C, v.CRC32C())
	}
	if len(a.MD5) > 0 && hex.EncodeToString(a.MD5) != v.MD5() {
		return fmt.Errorf("%w: GCS md5 %x, we sent %s", storage.ErrIntegrity, a.MD5, v.MD5())
	}
	return nil
}

// removeCorrupt deletes the generation just written, and only it (a newer
// overwrite stays), so that no bad copy is left visible.
func (p *Provider) removeCorrupt(ctx context.Context, key string, gen int64, why error) {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	err := p.bucket.Object(key).If(gcs.Conditions{GenerationMatch: gen}).Delete(dctx)
	if err != nil && !errors.Is(err, gcs.ErrObjectNotExist) {
		p.log.ErrorContext(ctx, "corrupt upload could not be deleted", "op", "put", "key", key,
			"generation", gen, "reason", why.Error(), "error", p.fail("delete", key, err).Error())
		return
	}
	p.log.WarnContext(ctx, "corrupt upload deleted", "op", "put", "key", key, "generation", gen, "reason", why.Error())
}

// Get streams the object from offset; length < 0 reads to the end. A read
// of the whole object is CRC32C-checked by the client against the checksum
// GCS sends; a mismatch surfaces as an Integrity error from Read.
func (p *Provider) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if offset < 0 {
		return nil, &storage.Error{Op: "get", Provider: p.name, Key: key, Kind: storage.Permanent,
			Err: fmt.Errorf("negative offset %d", offset)}
	}
	if length < 0 {
		length = -1
	}
	r, err := p.bucket.Object(key).NewRangeReader(ctx, offset, length)
	if err != nil {
		return nil, p.fail("get", key, err)
	}
	return newReader(p, key, r, offset == 0 && length < 0), nil
}

// Stat returns the object's attributes, its CRC32C and MD5 as GCS keeps
// them, and our SHA-256 from its metadata.
func (p *Provider) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	a, err := p.bucket.Object(key).Attrs(ctx)
	if err != nil {
		return storage.ObjectInfo{}, p.fail("stat", key, err)
	}
	return info(a), nil
}

// Delete removes the object; a missing object is not an error.
func (p *Provider) Delete(ctx context.Context, key string) error {
	err := p.bucket.Object(key).Delete(ctx)
	if err == nil || errors.Is(err, gcs.ErrObjectNotExist) {
		return nil
	}
	return p.fail("delete", key, err)
}

// List calls fn for every object whose key starts with prefix, page by page,
// and returns the first error fn returns, unchanged.
func (p *Provider) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	q := &gcs.Query{Prefix: prefix}
	if err := q.SetAttrSelection([]string{"Name", "Size", "ContentType", "Updated", "Metadata", "CRC32C", "MD5", "Etag"}); err != nil {
		return p.fail("list", prefix, err)
	}
	it := p.bucket.Objects(ctx, q)
	for {
		a, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return nil
		}
		if err != nil {
			return p.fail("list", prefix, err)
		}
		if err := fn(info(a)); err != nil {
			return err
		}
	}
}

// info converts GCS attributes. GCS keeps a CRC32C for every object,
// composite ones included, so HasCRC32C is always true; MD5 is absent for
// composite objects.
func info(a *gcs.ObjectAttrs) storage.ObjectInfo {
	oi := storage.ObjectInfo{
		Key:         a.Name,
		Size:        a.Size,
		ContentType: a.ContentType,
		ModTime:     a.Updated,
		SHA256:      a.Metadata[storage.MetaSHA256],
		Metadata:    a.Metadata,
		Checksums: storage.Checksums{
			CRC32C:    a.CRC32C,
			HasCRC32C: true,
			ETag:      strings.Trim(a.Etag, `"`),
		},
	}
	if len(a.MD5) > 0 {
		oi.Checksums.MD5 = hex.EncodeToString(a.MD5)
	}
	return oi
}

func contentType(ct string) string {
	if ct == "" {
		return "application/octet-stream"
	}
	return ct
}

// metadata copies the caller's metadata and adds our SHA-256.
func metadata(opts storage.PutOptions) map[string]string {
	m := make(map[string]string, len(opts.Metadata)+1)
	for k, v := range opts.Metadata {
		m[k] = v
	}
	m[storage.MetaSHA256] = opts.SHA256
	return m
}

// What this provider can do: the Provider interface, uploads that resume in
// a later invocation (resumable.go), and Close. It is no storage.Copier: GCS
// cannot copy from S3 server-side, so the caller streams.
var (
	_ storage.Provider = (*Provider)(nil)
	_ storage.Resumer  = (*Provider)(nil)
	_ io.Closer        = (*Provider)(nil)
)
