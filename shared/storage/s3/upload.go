package s3

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/wedsync/backup-replication/shared/storage"
)

// partSizeFor returns the configured part size, raised (to a whole MiB) when
// size would otherwise need more than MaxParts parts.
func (p *Provider) partSizeFor(size int64) int64 {
	ps := p.cfg.PartSize
	if need := (size + MaxParts - 1) / MaxParts; need > ps {
		ps = (need + 1<<20 - 1) &^ (1<<20 - 1)
	}
	return ps
}

// putMultipart uploads the stream in parts, each with its own SHA-256
// checksum that S3 checks. At most Concurrency parts are buffered and in
// flight at once. The upload is completed only after the verifier has seen
// the whole stream match; on any failure it is aborted, so no object (and no
// orphaned parts) remain.
func (p *Provider) putMultipart(ctx context.Context, key string, v *storage.VerifyingReader, size int64, opts storage.PutOptions) (storage.ObjectInfo, error) {
	partSize := p.partSizeFor(size)
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
		return storage.ObjectInfo{}, p.fail("put", key, err)
	}
	uploadID := aws.ToString(up.UploadId)
	parts, err := p.uploadParts(ctx, key, uploadID, v, size, partSize, nil)
	if err == nil {
		var done *s3.CompleteMultipartUploadOutput
		done, err = p.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
			Bucket:          aws.String(p.cfg.Bucket),
			Key:             aws.String(key),
			UploadId:        aws.String(uploadID),
			MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
		})
		if err == nil {
			if err := p.ensureLock(ctx, key); err != nil {
				return storage.ObjectInfo{}, p.fail("put", key, fmt.Errorf("set object lock: %w", err))
			}
			return p.putInfo(key, size, opts, aws.ToString(done.ETag)), nil
		}
	}
	p.abort(ctx, key, uploadID, err)
	return storage.ObjectInfo{}, p.fail("put", key, err)
}

// uploadParts reads the stream part by part and uploads the parts with up
// to Concurrency workers, skipping those in have (parts a resumed upload
// already holds) whose bytes match. It returns the completed parts in
// order, or the first error (a read error, an integrity error, or an upload
// error).
func (p *Provider) uploadParts(ctx context.Context, key, uploadID string, v *storage.VerifyingReader, size, partSize int64, have map[int32]types.Part) ([]types.CompletedPart, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	nparts := int((size + partSize - 1) / partSize)
	parts := make([]types.CompletedPart, nparts)
	bufs := newBufferPool(p.cfg.Concurrency, min(partSize, size))
	var wg sync.WaitGroup
	var once sync.Once
	var firstErr error
	setErr := func(err error) {
		once.Do(func() { firstErr = err; cancel(err) })
	}

	for i := range nparts {
		off := int64(i) * partSize
		n := min(partSize, size-off)
		buf, err := bufs.get(ctx)
		if err != nil {
			setErr(err)
			break
		}
		if _, err := io.ReadFull(v, buf[:n]); err != nil {
			setErr(fmt.Errorf("read part %d: %w", i+1, err))
			break
		}
		if i == nparts-1 {
			// The whole stream must match before the last part leaves.
			if err := v.Verify(); err != nil {
				setErr(err)
				break
			}
		}
		if err := ctx.Err(); err != nil {
			setErr(context.Cause(ctx))
			break
		}
		wg.Add(1)
		go func(num int32, data []byte) {
			defer wg.Done()
			defer bufs.put(buf)
			if part, ok := alreadyUploaded(have[num], data); ok {
				parts[num-1] = part
				return
			}
			part, err := p.uploadPart(ctx, key, uploadID, num, data)
			if err != nil {
				setErr(fmt.Errorf("upload part %d: %w", num, err))
				return
			}
			parts[num-1] = part
		}(int32(i+1), buf[:n])
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	return parts, nil
}

// uploadPart sends one buffered part with its SHA-256 as checksum and as
// signed payload hash.
func (p *Provider) uploadPart(ctx context.Context, key, uploadID string, num int32, data []byte) (types.CompletedPart, error) {
	sum := sha256.Sum256(data)
	b64 := base64.StdEncoding.EncodeToString(sum[:])
	out, err := p.client.UploadPart(ctx, &s3.UploadPartInput{
		Bucket:            aws.String(p.cfg.Bucket),
		Key:               aws.String(key),
		UploadId:          aws.String(uploadID),
		PartNumber:        aws.Int32(num),
		Body:              bytes.NewReader(data),
		ContentLength:     aws.Int64(int64(len(data))),
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
		ChecksumSHA256:    aws.String(b64),
	}, withPayloadHash(hex.EncodeToString(sum[:])))
	if err != nil {
		return types.CompletedPart{}, err
	}
	return types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(num), ChecksumSHA256: aws.String(b64)}, nil
}

// abort abandons a multipart upload with its own deadline, since ctx may be
// what ended it. A failure to abort is logged: the bucket's lifecycle rule
// for incomplete uploads is the backstop.
func (p *Provider) abort(ctx context.Context, key, uploadID string, why error) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	_, err := p.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
		Bucket: aws.String(p.cfg.Bucket), Key: aws.String(key), UploadId: aws.String(uploadID),
	})
	if err != nil && storage.KindOf(p.fail("put", key, err)) != storage.NotFound {
		p.log.Error("abort multipart upload failed", "op", "put", "key", key, "upload_id", uploadID, "why", why, "error", err)
	}
}

// bufferPool hands out at most n part buffers, allocating them lazily, so a
// multipart upload holds at most n parts in memory.
type bufferPool struct {
	free  chan []byte
	mu    sync.Mutex
	made  int
	limit int
	size  int64
}

func newBufferPool(n int, size int64) *bufferPool {
	return &bufferPool{free: make(chan []byte, n), limit: n, size: size}
}

func (b *bufferPool) get(ctx context.Context) ([]byte, error) {
	select {
	case buf := <-b.free:
		return buf, nil
	default:
	}
	b.mu.Lock()
	if b.made < b.limit {
		b.made++
		b.mu.Unlock()
		return make([]byte, b.size), nil
	}
	b.mu.Unlock()
	select {
	case buf := <-b.free:
		return buf, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

func (b *bufferPool) put(buf []byte) { b.free <- buf }
