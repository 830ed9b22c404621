package s3

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/wedsync/backup-replication/shared/storage"
)

var _ storage.Resumer = (*Provider)(nil)

// resumeState is what a caller keeps between invocations to continue a
// multipart upload: the upload and what it was for. The parts themselves
// are listed from S3, which is the truth about what arrived.
type resumeState struct {
	Version  int    `json:"v"`
	UploadID string `json:"upload_id"`
	Key      string `json:"key"`
	Size     int64  `json:"size"`
	SHA256   string `json:"sha256"`
	PartSize int64  `json:"part_size"`
}

// PutResumable stores src under key by a multipart upload that a later
// invocation can continue. state is "" the first time; save receives the
// new state as soon as the upload exists, and "" once it is completed or
// abandoned for good. On resume the provider lists the parts S3 holds,
// re-reads the whole source to hash it, and uploads only the parts that are
// missing or whose bytes differ. A failure that a retry may cure (timeout,
// throttling, a cancelled context) leaves the upload in place for the next
// call; an integrity failure aborts it. Objects below MultipartThreshold
// are put in one request and never need state.
func (p *Provider) PutResumable(ctx context.Context, key string, src storage.Source, opts storage.PutOptions, state string, save func(string) error) (storage.ObjectInfo, error) {
	size := src.Size()
	if size < p.cfg.MultipartThreshold {
		rc, err := src.Open(ctx, 0)
		if err != nil {
			return storage.ObjectInfo{}, err
		}
		defer rc.Close()
		return p.Put(ctx, key, rc, size, opts)
	}
	if !storage.ValidSHA256(opts.SHA256) {
		return storage.ObjectInfo{}, storage.NewError("put", p.name, key, storage.Permanent,
			fmt.Errorf("expected SHA-256 %q is not lowercase hex", opts.SHA256))
	}
	st, have, err := p.resumeOrCreate(ctx, key, size, opts, state, save)
	if err != nil {
		return storage.ObjectInfo{}, p.fail("put", key, err)
	}
	rc, err := src.Open(ctx, 0)
	if err != nil {
		return storage.ObjectInfo{}, err
	}
	defer rc.Close()
	v := storage.NewVerifyingReader(rc, size, opts.SHA256, opts.Progress)
	parts, err := p.uploadParts(ctx, key, st.UploadID, v, size, st.PartSize, have)
	if err == nil {
		_, err = p.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
			Bucket:          aws.String(p.cfg.Bucket),
			Key:             aws.String(key),
			UploadId:        aws.String(st.UploadID),
			MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
		})
		if err == nil {
			err = p.ensureLock(ctx, key)
		}
		if err == nil {
			if serr := save(""); serr != nil {
				p.log.Warn("could not clear resumable state", "op", "put", "key", key, "error", serr)
			}
			return p.Stat(ctx, key)
		}
	}
	err = p.fail("put", key, err)
	if storage.KindOf(err) == storage.Integrity || storage.KindOf(err) == storage.NotFound {
		p.abort(ctx, key, st.UploadID, err)
		if serr := save(""); serr != nil {
			p.log.Warn("could not clear resumable state", "op", "put", "key", key, "error", serr)
		}
	}
	return storage.ObjectInfo{}, err
}

// resumeOrCreate continues the upload in state when it is still there and
// for the same object, and starts a new one otherwise (saving its state).
// It returns the parts S3 already holds.
func (p *Provider) resumeOrCreate(ctx context.Context, key string, size int64, opts storage.PutOptions, state string, save func(string) error) (resumeState, map[int32]types.Part, error) {
	var st resumeState
	if state != "" && json.Unmarshal([]byte(state), &st) == nil && st.Version == 1 &&
		st.Key == key && st.Size == size && st.SHA256 == opts.SHA256 && st.UploadID != "" {
		have, err := p.listParts(ctx, key, st.UploadID)
		if err == nil {
			return st, have, nil
		}
		if storage.KindOf(p.fail("put", key, err)) != storage.NotFound {
			return st, nil, err
		}
		p.log.Info("resumable upload gone, starting again", "op", "put", "key", key, "upload_id", st.UploadID)
	}
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
		return st, nil, err
	}
	st = resumeState{Version: 1, UploadID: aws.ToString(up.UploadId), Key: key, Size: size,
		SHA256: opts.SHA256, PartSize: p.partSizeFor(size)}
	b, _ := json.Marshal(st)
	if err := save(string(b)); err != nil {
		p.abort(ctx, key, st.UploadID, err)
		return st, nil, fmt.Errorf("save resumable state: %w", err)
	}
	return st, nil, nil
}

// listParts returns the parts an upload holds, by number.
func (p *Provider) listParts(ctx context.Context, key, uploadID string) (map[int32]types.Part, error) {
	have := map[int32]types.Part{}
	pages := s3.NewListPartsPaginator(p.client, &s3.ListPartsInput{
		Bucket: aws.String(p.cfg.Bucket), Key: aws.String(key), UploadId: aws.String(uploadID),
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, part := range page.Parts {
			have[aws.ToInt32(part.PartNumber)] = part
		}
	}
	return have, nil
}

// alreadyUploaded reports whether part (from ListParts) holds exactly data:
// same size, and the same SHA-256 checksum or, where the store lists none
// (moto), an ETag equal to the MD5 of data. Anything else is uploaded again.
func alreadyUploaded(part types.Part, data []byte) (types.CompletedPart, bool) {
	if part.PartNumber == nil || aws.ToInt64(part.Size) != int64(len(data)) {
		return types.CompletedPart{}, false
	}
	sum := sha256.Sum256(data)
	b64 := base64.StdEncoding.EncodeToString(sum[:])
	done := types.CompletedPart{PartNumber: part.PartNumber, ETag: part.ETag, ChecksumSHA256: aws.String(b64)}
	if c := aws.ToString(part.ChecksumSHA256); c != "" {
		return done, c == b64
	}
	m := md5.Sum(data)
	return done, strings.Trim(aws.ToString(part.ETag), `"`) == hex.EncodeToString(m[:])
}
