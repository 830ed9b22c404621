package sealer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// maxParts is S3's limit of parts per multipart upload.
const maxParts = 10000

// errTaken says the sealed key already held an object when the upload
// tried to complete (If-None-Match: *): another delivery sealed first.
var errTaken = errors.New("sealed object written by another delivery first")

// upload writes one object of a known size to the landing bucket, as the
// io.Writer that seal.Seal streams into, with flat memory: parts of
// partSize, at most inFlight of them uploading while the next one fills.
// Nothing becomes visible before Complete: the last part (or, for an
// object of one part, the whole object) is held back until the caller
// has checked what it sealed, and Complete writes with If-None-Match: *
// so that an object another delivery completed first is never replaced.
// Abort leaves nothing behind.
type upload struct {
	api      LandingAPI
	bucket   string
	key      string
	size     int64
	partSize int64

	ctx    context.Context
	cancel context.CancelCauseFunc

	buf     []byte // the part being filled
	written int64  // bytes accepted so far
	id      string // multipart upload id; "" until the first part leaves
	num     int32  // parts handed to uploaders
	bufs    chan []byte
	sem     chan struct{}
	wg      sync.WaitGroup
	mu      sync.Mutex
	parts   []types.CompletedPart
	err     error
	settled bool
	// etag is the completed object's ETag, as S3 answered the write.
	etag string
}

// newUpload prepares an upload of size bytes to key.
func newUpload(ctx context.Context, api LandingAPI, bucket, key string, size, partSize int64, inFlight int) *upload {
	if need := (size + maxParts - 1) / maxParts; need > partSize {
		partSize = (need + 1<<20 - 1) &^ (1<<20 - 1)
	}
	partSize = min(partSize, max(size, 1))
	ctx, cancel := context.WithCancelCause(ctx)
	u := &upload{api: api, bucket: bucket, key: key, size: size, partSize: partSize, ctx: ctx, cancel: cancel,
		bufs: make(chan []byte, inFlight+1), sem: make(chan struct{}, inFlight)}
	for range inFlight + 1 {
		u.bufs <- nil // allocated on first use
	}
	return u
}

// Write takes sealed bytes; it returns the first upload error, which stops
// the sealing.
func (u *upload) Write(p []byte) (int, error) {
	if err := u.failed(); err != nil {
		return 0, err
	}
	if u.written+int64(len(p)) > u.size {
		return 0, fmt.Errorf("sealed stream is longer than the %d bytes announced", u.size)
	}
	n := 0
	for len(p) > 0 {
		if u.buf == nil {
			if err := u.takeBuffer(); err != nil {
				return n, err
			}
		}
		c := copy(u.buf[len(u.buf):cap(u.buf)], p)
		u.buf = u.buf[:len(u.buf)+c]
		p, n, u.written = p[c:], n+c, u.written+int64(c)
		if int64(len(u.buf)) == u.partSize && u.written < u.size {
			if err := u.send(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// takeBuffer waits for a free part buffer.
func (u *upload) takeBuffer() error {
	select {
	case b := <-u.bufs:
		if b == nil {
			b = make([]byte, 0, u.partSize)
		}
		u.buf = b[:0]
		return nil
	case <-u.ctx.Done():
		return context.Cause(u.ctx)
	}
}

// send starts uploading the filled buffer as the next part.
func (u *upload) send() error {
	if u.id == "" {
		out, err := u.api.CreateMultipartUpload(u.ctx, &s3.CreateMultipartUploadInput{
			Bucket: aws.String(u.bucket), Key: aws.String(u.key), ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c,
			ContentType: aws.String(contentType),
		})
		if err != nil {
			u.fail(fmt.Errorf("start multipart upload: %w", err))
			return u.failed()
		}
		u.id = aws.ToString(out.UploadId)
	}
	select {
	case u.sem <- struct{}{}:
	case <-u.ctx.Done():
		return context.Cause(u.ctx)
	}
	u.num++
	num, data := u.num, u.buf
	u.buf = nil
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		defer func() { <-u.sem; u.bufs <- data[:0] }()
		part, err := u.uploadPart(num, data)
		if err != nil {
			u.fail(fmt.Errorf("upload part %d: %w", num, err))
			return
		}
		u.mu.Lock()
		u.parts = append(u.parts, part)
		u.mu.Unlock()
	}()
	return nil
}

// uploadPart sends one part with its CRC32C, which S3 checks. Not a
// SHA-256: S3 would combine the parts' into a composite checksum, and a
// reader that took that for the object's SHA-256 (moto does not say it
// is composite) would see a mismatch; the object's SHA-256 is the seal's
// record (catalog.Seal.CipherSHA256).
func (u *upload) uploadPart(num int32, data []byte) (types.CompletedPart, error) {
	b64 := base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, crc32.Checksum(data, castagnoli)))
	out, err := u.api.UploadPart(u.ctx, &s3.UploadPartInput{
		Bucket: aws.String(u.bucket), Key: aws.String(u.key), UploadId: aws.String(u.id), PartNumber: aws.Int32(num),
		Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data))),
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c, ChecksumCRC32C: aws.String(b64),
	})
	if err != nil {
		return types.CompletedPart{}, err
	}
	return types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(num), ChecksumCRC32C: aws.String(b64)}, nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func (u *upload) fail(err error) {
	u.mu.Lock()
	if u.err == nil {
		u.err = err
		u.cancel(err)
	}
	u.mu.Unlock()
}

func (u *upload) failed() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.err
}

// Complete sends what is held back and makes the object visible, unless
// an object is there already (errTaken). Every byte announced must have
// been written. On error the upload is aborted.
func (u *upload) Complete() error {
	if u.written != u.size {
		err := fmt.Errorf("sealed stream has %d bytes, %d announced", u.written, u.size)
		return errors.Join(err, u.Abort(err))
	}
	if err := u.complete(); err != nil {
		return errors.Join(err, u.Abort(err))
	}
	u.settled = true
	u.cancel(nil)
	return nil
}

func (u *upload) complete() error {
	if u.id == "" {
		// One part: a single PutObject with the whole object's SHA-256.
		data := u.buf
		if data == nil {
			data = []byte{}
		}
		sum := sha256.Sum256(data)
		out, err := u.api.PutObject(u.ctx, &s3.PutObjectInput{
			Bucket: aws.String(u.bucket), Key: aws.String(u.key), Body: bytes.NewReader(data),
			ContentLength: aws.Int64(int64(len(data))), ContentType: aws.String(contentType),
			ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
			ChecksumSHA256:    aws.String(base64.StdEncoding.EncodeToString(sum[:])),
			IfNoneMatch:       aws.String("*"),
		})
		if err == nil {
			u.etag = aws.ToString(out.ETag)
		}
		return u.taken(err)
	}
	if len(u.buf) > 0 {
		if err := u.send(); err != nil {
			return err
		}
	}
	u.wg.Wait()
	if err := u.failed(); err != nil {
		return err
	}
	parts := make([]types.CompletedPart, len(u.parts))
	for _, p := range u.parts {
		parts[aws.ToInt32(p.PartNumber)-1] = p
	}
	out, err := u.api.CompleteMultipartUpload(u.ctx, &s3.CompleteMultipartUploadInput{
		Bucket: aws.String(u.bucket), Key: aws.String(u.key), UploadId: aws.String(u.id),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
		IfNoneMatch:     aws.String("*"),
	})
	if err == nil {
		u.etag = aws.ToString(out.ETag)
	}
	return u.taken(err)
}

// taken maps S3's refusal of If-None-Match (412, or 409 while another
// write of the key is in progress) to errTaken.
func (u *upload) taken(err error) error {
	if err == nil {
		return nil
	}
	if s := httpStatus(err); s == 412 || s == 409 {
		return fmt.Errorf("%w: %w", errTaken, err)
	}
	return err
}

// Abort stops the upload and removes its parts; it is a no-op after
// Complete succeeded or a first Abort. Its calls outlive a cancelled
// caller. An error means parts may remain until the bucket's lifecycle
// rule for incomplete uploads (AbortIncompleteMultipartUpload) removes
// them; no object was written either way.
func (u *upload) Abort(why error) error {
	if u.settled {
		return nil
	}
	u.settled = true
	u.cancel(why)
	u.wg.Wait()
	if u.id == "" {
		return nil
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(u.ctx), 30*time.Second)
	defer cancel()
	_, err := u.api.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
		Bucket: aws.String(u.bucket), Key: aws.String(u.key), UploadId: aws.String(u.id)})
	return err
}
