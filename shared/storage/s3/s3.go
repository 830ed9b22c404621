// Package s3 is the storage.Provider for Amazon S3 and S3-compatible
// stores (moto, versitygw, MinIO) through aws-sdk-go-v2.
//
// Put streams objects below the multipart threshold in one PutObject with
// the expected SHA-256 as both the signed payload hash and the
// x-amz-checksum-sha256 header, so the server refuses bytes that do not
// match, and holds back the last byte until our own hash has matched, so a
// bad stream can never complete a request. Larger objects go by multipart
// with a SHA-256 checksum per part, one buffered part per worker. Copy is a
// server-side CopyObject or UploadPartCopy within the same store, and
// PutResumable continues a multipart upload in a later invocation.
package s3

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/wedsync/backup-replication/shared/storage"
)

var (
	_ storage.Provider = (*Provider)(nil)
	_ storage.Copier   = (*Provider)(nil)
)

// Provider stores objects in one S3 bucket. It is safe for concurrent use.
type Provider struct {
	name     string
	cfg      Config
	client   *s3.Client
	log      *slog.Logger
	endpoint string

	// copyThreshold is the size above which Copy goes by UploadPartCopy,
	// and copyPart the size of those parts (tests lower them).
	copyThreshold int64
	copyPart      int64
	// listPage is ListObjectsV2's MaxKeys; 0 leaves the server's 1,000.
	listPage int32
}

// New validates cfg and builds a client for it. With static credentials in
// cfg it reads nothing from the environment; without, the SDK's default
// credential chain applies (the Lambda execution role). SDK retries are
// off: retrying is the job of the retry decorator above every provider.
func New(ctx context.Context, cfg Config, logger *slog.Logger) (*Provider, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	var awsCfg aws.Config
	if cfg.AccessKeyID != "" {
		awsCfg = aws.Config{
			Region: cfg.Region,
			Credentials: credentials.NewStaticCredentialsProvider(cfg.AccessKeyID,
				cfg.SecretAccessKey.Reveal(), cfg.SessionToken.Reveal()),
		}
	} else {
		var err error
		if awsCfg, err = config.LoadDefaultConfig(ctx, config.WithRegion(cfg.Region)); err != nil {
			return nil, fmt.Errorf("s3 %s: load AWS configuration: %w", cfg.Name, err)
		}
	}
	client := s3.NewFromConfig(awsCfg, ClientOptions(cfg))
	return NewWithClient(cfg, client, logger)
}

// ClientOptions are the s3.Client options the provider relies on: the
// endpoint and addressing style of cfg, no SDK retries, and checksums only
// where the provider sets them itself. Use them when building a client to
// pass to NewWithClient.
func ClientOptions(cfg Config) func(*s3.Options) {
	return func(o *s3.Options) {
		if e := normalizeEndpoint(cfg.Endpoint); e != "" {
			o.BaseEndpoint = aws.String(e)
		}
		o.UsePathStyle = cfg.UsePathStyle
		o.Region = cfg.Region
		o.RetryMaxAttempts = 1
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
	}
}

// NewWithClient builds a provider on an existing client, which should have
// been built with ClientOptions(cfg). cfg.Endpoint must name the same store
// as the client: Copy compares it with its sources' endpoints.
func NewWithClient(cfg Config, client *s3.Client, logger *slog.Logger) (*Provider, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if client == nil {
		return nil, errors.New("s3: NewWithClient needs a client")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	return &Provider{
		name:          cfg.Name,
		cfg:           cfg,
		client:        client,
		log:           logger.With("provider", cfg.Name),
		endpoint:      cfg.Endpoint,
		copyThreshold: MaxCopySize,
		copyPart:      copyPartSize,
	}, nil
}

// Name is the configured provider name.
func (p *Provider) Name() string { return p.name }

// Put stores size bytes from r under key, refusing bytes that do not match
// opts.SHA256 (kind Integrity, nothing left visible). Objects below
// MultipartThreshold stream in one request; larger ones go by multipart.
func (p *Provider) Put(ctx context.Context, key string, r io.Reader, size int64, opts storage.PutOptions) (storage.ObjectInfo, error) {
	if !storage.ValidSHA256(opts.SHA256) {
		return storage.ObjectInfo{}, storage.NewError("put", p.name, key, storage.Permanent,
			fmt.Errorf("expected SHA-256 %q is not lowercase hex", opts.SHA256))
	}
	if size < 0 {
		return storage.ObjectInfo{}, storage.NewError("put", p.name, key, storage.Permanent, fmt.Errorf("negative size %d", size))
	}
	v := storage.NewVerifyingReader(r, size, opts.SHA256, opts.Progress)
	if size >= p.cfg.MultipartThreshold {
		return p.putMultipart(ctx, key, v, size, opts)
	}
	return p.putSingle(ctx, key, v, size, opts)
}

// putSingle streams the object in one PutObject. The body is gated: its
// last byte is released only after the whole stream matched, so a
// mismatching source fails the request before the server can commit it.
func (p *Provider) putSingle(ctx context.Context, key string, v *storage.VerifyingReader, size int64, opts storage.PutOptions) (storage.ObjectInfo, error) {
	gate := &tailGate{v: v, size: size}
	var body io.Reader = gate
	if size == 0 {
		if err := v.Verify(); err != nil {
			return storage.ObjectInfo{}, p.fail("put", key, err)
		}
		body = strings.NewReader("")
	}
	in := &s3.PutObjectInput{
		Bucket:            aws.String(p.cfg.Bucket),
		Key:               aws.String(key),
		Body:              body,
		ContentLength:     aws.Int64(size),
		ContentType:       aws.String(contentType(opts)),
		Metadata:          metadata(opts),
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
		ChecksumSHA256:    aws.String(hexToBase64(opts.SHA256)),
	}
	if mode, until := p.lock(); mode != "" {
		in.ObjectLockMode, in.ObjectLockRetainUntilDate = mode, until
	}
	out, err := p.client.PutObject(ctx, in, withPayloadHash(opts.SHA256))
	if err != nil {
		if gate.err != nil {
			// The body failed first: the source (or our verdict on it) is
			// the cause, whatever the SDK made of the aborted request.
			err = fmt.Errorf("read source: %w", gate.err)
		}
		return storage.ObjectInfo{}, p.fail("put", key, err)
	}
	if size > 0 && !v.Done() {
		// The server took the request without our having seen the whole
		// stream match: never expected, but never keep such an object.
		verr := v.Verify()
		if verr == nil {
			verr = fmt.Errorf("%w: upload finished before the source was verified", storage.ErrIntegrity)
		}
		p.discard(ctx, "put", key, verr)
		return storage.ObjectInfo{}, p.fail("put", key, verr)
	}
	info := p.putInfo(key, size, opts, aws.ToString(out.ETag))
	if got := aws.ToString(out.ChecksumSHA256); got != "" && base64ToHex(got) == opts.SHA256 {
		info.Checksums.SHA256 = opts.SHA256
	}
	return info, nil
}

// Get streams the object from offset; length < 0 reads to the end.
func (p *Provider) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if offset < 0 {
		return nil, storage.NewError("get", p.name, key, storage.Permanent, fmt.Errorf("negative offset %d", offset))
	}
	if length == 0 {
		// No Range header can ask for nothing; check the object exists.
		if _, err := p.Stat(ctx, key); err != nil {
			return nil, err
		}
		return io.NopCloser(strings.NewReader("")), nil
	}
	in := &s3.GetObjectInput{Bucket: aws.String(p.cfg.Bucket), Key: aws.String(key)}
	switch {
	case length > 0:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-%d", offset, offset+length-1))
	case offset > 0:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-", offset))
	}
	out, err := p.client.GetObject(ctx, in)
	if err != nil {
		return nil, p.fail("get", key, err)
	}
	return &body{rc: out.Body, p: p, key: key}, nil
}

// Stat reports the object's size, type, metadata (with our SHA-256) and the
// checksums S3 keeps: a full-object SHA-256, and the MD5 when the ETag is
// one (no part suffix, no KMS encryption).
func (p *Provider) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	out, err := p.client.HeadObject(ctx, &s3.HeadObjectInput{
		Bucket:       aws.String(p.cfg.Bucket),
		Key:          aws.String(key),
		ChecksumMode: types.ChecksumModeEnabled,
	})
	if err != nil {
		return storage.ObjectInfo{}, p.fail("stat", key, err)
	}
	return headInfo(key, out), nil
}

// Delete removes the object; a missing object is not an error.
func (p *Provider) Delete(ctx context.Context, key string) error {
	_, err := p.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(p.cfg.Bucket), Key: aws.String(key)})
	if err != nil {
		err = p.fail("delete", key, err)
		if storage.KindOf(err) == storage.NotFound {
			return nil
		}
	}
	return err
}

// List calls fn for every object whose key starts with prefix, page by
// page, stopping at fn's first error.
func (p *Provider) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	in := &s3.ListObjectsV2Input{Bucket: aws.String(p.cfg.Bucket), Prefix: aws.String(prefix)}
	if p.listPage > 0 {
		in.MaxKeys = aws.Int32(p.listPage)
	}
	pages := s3.NewListObjectsV2Paginator(p.client, in)
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return p.fail("list", prefix, err)
		}
		for _, o := range page.Contents {
			info := storage.ObjectInfo{
				Key:     aws.ToString(o.Key),
				Size:    aws.ToInt64(o.Size),
				ModTime: aws.ToTime(o.LastModified),
			}
			info.Checksums.ETag = strings.Trim(aws.ToString(o.ETag), `"`)
			if err := fn(info); err != nil {
				return err
			}
		}
	}
	return nil
}

// headInfo turns a HeadObject answer into ObjectInfo.
func headInfo(key string, out *s3.HeadObjectOutput) storage.ObjectInfo {
	info := storage.ObjectInfo{
		Key:         key,
		Size:        aws.ToInt64(out.ContentLength),
		ContentType: aws.ToString(out.ContentType),
		ModTime:     aws.ToTime(out.LastModified),
		Metadata:    out.Metadata,
	}
	info.SHA256 = out.Metadata[storage.MetaSHA256]
	etag := strings.Trim(aws.ToString(out.ETag), `"`)
	info.Checksums.ETag = etag
	// A multipart object's SHA-256 is composite (a hash of the parts'
	// hashes): AWS marks it with ChecksumType and a "-N" suffix, moto with
	// neither, so the ETag's part suffix decides when the type is absent.
	sum := aws.ToString(out.ChecksumSHA256)
	full := out.ChecksumType == types.ChecksumTypeFullObject ||
		(out.ChecksumType == "" && !strings.Contains(sum, "-") && !strings.Contains(etag, "-"))
	if sum != "" && full {
		info.Checksums.SHA256 = base64ToHex(sum)
	}
	kms := out.ServerSideEncryption == types.ServerSideEncryptionAwsKms || out.ServerSideEncryption == types.ServerSideEncryptionAwsKmsDsse
	if len(etag) == 32 && !kms && !strings.Contains(etag, "-") {
		info.Checksums.MD5 = etag
	}
	return info
}

// putInfo is what Put reports for an object it just stored.
func (p *Provider) putInfo(key string, size int64, opts storage.PutOptions, etag string) storage.ObjectInfo {
	return storage.ObjectInfo{
		Key:         key,
		Size:        size,
		ContentType: contentType(opts),
		ModTime:     time.Now().UTC(),
		SHA256:      opts.SHA256,
		Metadata:    metadata(opts),
		Checksums:   storage.Checksums{ETag: strings.Trim(etag, `"`)},
	}
}

// discard deletes an object that must not stay visible, with its own
// deadline (ctx may be the reason we are here), and logs a failure to.
func (p *Provider) discard(ctx context.Context, op, key string, why error) {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := p.Delete(dctx, key); err != nil {
		p.log.Error("could not delete an object that failed verification", "op", op, "key", key, "why", why, "error", err)
	}
}

// ensureLock makes sure key carries the configured retention after a
// multipart upload or a copy: some S3-compatible stores (moto among them)
// ignore lock headers there, and an object we promise immutable must be.
func (p *Provider) ensureLock(ctx context.Context, key string) error {
	mode, until := p.lock()
	if mode == "" {
		return nil
	}
	head, err := p.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(p.cfg.Bucket), Key: aws.String(key)})
	if err != nil {
		return err
	}
	if head.ObjectLockMode == mode && head.ObjectLockRetainUntilDate != nil {
		return nil
	}
	_, err = p.client.PutObjectRetention(ctx, &s3.PutObjectRetentionInput{
		Bucket:    aws.String(p.cfg.Bucket),
		Key:       aws.String(key),
		VersionId: head.VersionId,
		Retention: &types.ObjectLockRetention{Mode: types.ObjectLockRetentionMode(mode), RetainUntilDate: until},
	})
	return err
}

// lock returns the object lock settings for a new object, if configured.
func (p *Provider) lock() (types.ObjectLockMode, *time.Time) {
	if p.cfg.ObjectLockMode == "" {
		return "", nil
	}
	until := time.Now().Add(p.cfg.ObjectLockRetention).UTC()
	return types.ObjectLockMode(p.cfg.ObjectLockMode), &until
}

func contentType(opts storage.PutOptions) string {
	if opts.ContentType == "" {
		return "application/octet-stream"
	}
	return opts.ContentType
}

// metadata is the caller's metadata plus our SHA-256.
func metadata(opts storage.PutOptions) map[string]string {
	md := make(map[string]string, len(opts.Metadata)+1)
	for k, v := range opts.Metadata {
		md[strings.ToLower(k)] = v
	}
	md[storage.MetaSHA256] = opts.SHA256
	return md
}

func hexToBase64(h string) string {
	b, _ := hex.DecodeString(h)
	return base64.StdEncoding.EncodeToString(b)
}

func base64ToHex(s string) string {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return ""
	}
	return hex.EncodeToString(b)
}
