package s3

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/wedsync/backup-replication/shared/storage"
)

// Copy copies src into key without the bytes passing through us: one
// CopyObject up to 5 GiB, UploadPartCopy parts above. It copies only within
// the same store (src.Endpoint equal to this provider's endpoint, both empty
// on AWS); otherwise it returns an error wrapping storage.ErrCannotCopy and
// the caller streams instead. The copy gets opts' content type and metadata
// with our SHA-256, asks S3 to compute a SHA-256 of the result, and is
// checked afterwards: size, and the SHA-256 when S3 reports a full-object
// one. A copy that does not match is deleted and reported as Integrity.
// A copy by parts gets only a composite checksum from S3: the returned
// Checksums.SHA256 is then empty, meaning the provider did not prove the
// bytes, and the caller relies on the source's proof or reads the copy back.
func (p *Provider) Copy(ctx context.Context, src storage.Locator, key string, opts storage.PutOptions) (storage.ObjectInfo, error) {
	if normalizeEndpoint(src.Endpoint) != p.endpoint || src.Bucket == "" || src.Key == "" {
		return storage.ObjectInfo{}, storage.NewError("copy", p.name, key, storage.Permanent,
			fmt.Errorf("%w: source %q/%q is on endpoint %q, this store is %q",
				storage.ErrCannotCopy, src.Bucket, src.Key, src.Endpoint, p.endpoint))
	}
	if !storage.ValidSHA256(opts.SHA256) {
		return storage.ObjectInfo{}, storage.NewError("copy", p.name, key, storage.Permanent,
			fmt.Errorf("expected SHA-256 %q is not lowercase hex", opts.SHA256))
	}
	head, err := p.client.HeadObject(ctx, &s3.HeadObjectInput{
		Bucket: aws.String(src.Bucket), Key: aws.String(src.Key), ChecksumMode: types.ChecksumModeEnabled,
	})
	if err != nil {
		return storage.ObjectInfo{}, p.fail("copy", src.Key, err)
	}
	srcInfo := headInfo(src.Key, head)
	if src.Size > 0 && srcInfo.Size != src.Size {
		return storage.ObjectInfo{}, storage.NewError("copy", p.name, key, storage.Integrity,
			fmt.Errorf("%w: source has %d bytes, expected %d", storage.ErrIntegrity, srcInfo.Size, src.Size))
	}
	if s := srcInfo.Checksums.SHA256; s != "" && s != opts.SHA256 {
		return storage.ObjectInfo{}, storage.NewError("copy", p.name, key, storage.Integrity,
			fmt.Errorf("%w: source SHA-256 is %s, expected %s", storage.ErrIntegrity, s, opts.SHA256))
	}
	etag := aws.ToString(head.ETag)
	if srcInfo.Size > p.copyThreshold {
		err = p.copyMultipart(ctx, src, key, srcInfo.Size, etag, opts)
	} else {
		err = p.copyObject(ctx, src, key, etag, opts)
	}
	if err == nil {
		err = p.ensureLock(ctx, key)
	}
	if err != nil {
		return storage.ObjectInfo{}, p.fail("copy", key, err)
	}
	return p.verifyCopy(ctx, key, srcInfo, opts)
}

// copyObject copies in one request, replacing the metadata with ours.
func (p *Provider) copyObject(ctx context.Context, src storage.Locator, key, etag string, opts storage.PutOptions) error {
	in := &s3.CopyObjectInput{
		Bucket:            aws.String(p.cfg.Bucket),
		Key:               aws.String(key),
		CopySource:        aws.String(copySource(src.Bucket, src.Key)),
		CopySourceIfMatch: aws.String(etag),
		MetadataDirective: types.MetadataDirectiveReplace,
		ContentType:       aws.String(contentType(opts)),
		Metadata:          metadata(opts),
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
	}
	if mode, until := p.lock(); mode != "" {
		in.ObjectLockMode, in.ObjectLockRetainUntilDate = mode, until
	}
	_, err := p.client.CopyObject(ctx, in)
	return err
}

// copyMultipart copies in parts of p.copyPart bytes, Concurrency at a time,
// each pinned to the source's ETag so a source that changes mid-copy fails
// the copy instead of mixing versions.
func (p *Provider) copyMultipart(ctx context.Context, src storage.Locator, key string, size int64, etag string, opts storage.PutOptions) error {
	create := &s3.CreateMultipartUploadInput{
		Bucket:            aws.String(p.cfg.Bucket),
		Key:               aws.String(key),
		ContentType:       aws.String(contentType(opts)),
		Metadata:          metadata(opts),
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
	}
	if mode, until := p.lock(); mode != "" {
		create.ObjectLockMode, create.ObjectLockRetainUntilDate = mode, until
	}
	up, err := p.client.CreateMultipartUpload(ctx, create)
	if err != nil {
		return err
	}
	uploadID := aws.ToString(up.UploadId)
	partSize := max(p.copyPart, (size+MaxParts-1)/MaxParts)
	nparts := int((size + partSize - 1) / partSize)
	parts := make([]types.CompletedPart, nparts)

	cctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sem := make(chan struct{}, p.cfg.Concurrency)
	var wg sync.WaitGroup
	var once sync.Once
	var firstErr error
	for i := range nparts {
		select {
		case sem <- struct{}{}:
		case <-cctx.Done():
		}
		if cctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func(num int32, first, last int64) {
			defer wg.Done()
			defer func() { <-sem }()
			out, err := p.client.UploadPartCopy(cctx, &s3.UploadPartCopyInput{
				Bucket:            aws.String(p.cfg.Bucket),
				Key:               aws.String(key),
				UploadId:          aws.String(uploadID),
				PartNumber:        aws.Int32(num),
				CopySource:        aws.String(copySource(src.Bucket, src.Key)),
				CopySourceRange:   aws.String(fmt.Sprintf("bytes=%d-%d", first, last)),
				CopySourceIfMatch: aws.String(etag),
			})
			if err != nil {
				once.Do(func() { firstErr = fmt.Errorf("copy part %d: %w", num, err); cancel(firstErr) })
				return
			}
			part := types.CompletedPart{PartNumber: aws.Int32(num)}
			if r := out.CopyPartResult; r != nil {
				part.ETag, part.ChecksumSHA256 = r.ETag, r.ChecksumSHA256
			}
			parts[num-1] = part
		}(int32(i+1), int64(i)*partSize, min(int64(i+1)*partSize, size)-1)
	}
	wg.Wait()
	if firstErr == nil {
		if err := ctx.Err(); err != nil {
			firstErr = err
		}
	}
	if firstErr == nil {
		_, firstErr = p.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
			Bucket:          aws.String(p.cfg.Bucket),
			Key:             aws.String(key),
			UploadId:        aws.String(uploadID),
			MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
		})
	}
	if firstErr != nil {
		p.abort(ctx, key, uploadID, firstErr)
	}
	return firstErr
}

// verifyCopy checks the new object against the source and the expected
// SHA-256, deleting it when it does not match.
func (p *Provider) verifyCopy(ctx context.Context, key string, src storage.ObjectInfo, opts storage.PutOptions) (storage.ObjectInfo, error) {
	info, err := p.Stat(ctx, key)
	if err != nil {
		return storage.ObjectInfo{}, err
	}
	var bad error
	switch {
	case info.Size != src.Size:
		bad = fmt.Errorf("%w: copy has %d bytes, source %d", storage.ErrIntegrity, info.Size, src.Size)
	case info.Checksums.SHA256 != "" && info.Checksums.SHA256 != opts.SHA256:
		bad = fmt.Errorf("%w: S3 computed SHA-256 %s for the copy, expected %s", storage.ErrIntegrity, info.Checksums.SHA256, opts.SHA256)
	case info.SHA256 != opts.SHA256:
		bad = fmt.Errorf("%w: copy's metadata SHA-256 is %q, expected %s", storage.ErrIntegrity, info.SHA256, opts.SHA256)
	}
	if bad != nil {
		p.discard(ctx, "copy", key, bad)
		return storage.ObjectInfo{}, storage.NewError("copy", p.name, key, storage.Integrity, bad)
	}
	return info, nil
}

// copySource is the x-amz-copy-source value: bucket/key, URL-encoded except
// for the slashes that separate segments and unreserved characters.
func copySource(bucket, key string) string {
	const unreserved = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~/"
	var b strings.Builder
	for _, c := range []byte(bucket + "/" + key) {
		if strings.IndexByte(unreserved, c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
