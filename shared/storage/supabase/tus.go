package supabase

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wedsync/backup-replication/shared/storage"
)

// TUS (tus.io 1.0.0) as Supabase serves it at /storage/v1/upload/resumable:
// Upload-Metadata carries bucketName, objectName, contentType and metadata
// (our user metadata as JSON); x-upsert: true goes on every request (the
// server reads it on the creation and on the final PATCH); every PATCH but
// the last is exactly ChunkSize bytes; the object appears when the last
// byte arrives. The upload URL (the Location of the creation) lives 24 h
// and is the state that lets a later invocation resume.

const tusVersion = "1.0.0"

// putTUS sends a stream by TUS. A stream cannot be read again, so on any
// failure the upload is terminated rather than left to resume.
func (p *Provider) putTUS(ctx context.Context, key string, v *storage.VerifyingReader, size int64, opts storage.PutOptions) (storage.ObjectInfo, error) {
	if size == 0 {
		// An empty upload completes on creation: verify before it.
		if err := v.Verify(); err != nil {
			return storage.ObjectInfo{}, p.integrity("put", key, err)
		}
	}
	parts := newPartsMD5()
	skipWholeMD5(v, size)
	loc, err := p.createUpload(ctx, key, size, opts)
	if err != nil {
		return storage.ObjectInfo{}, err
	}
	if err := p.sendChunks(ctx, key, loc, v, parts, 0, size); err != nil {
		p.terminate(key, loc)
		return storage.ObjectInfo{}, err
	}
	return p.verifyStored(ctx, key, size, opts, v.MD5(), parts)
}

// PutResumable uploads src by TUS, resuming the upload whose URL is state
// when the server still has it (HEAD gives the offset; the bytes before it
// are read again from src, to hash them). A new upload's URL is passed to
// save before any byte is sent. Objects up to Config.TUSThreshold go in one
// request, with no state. On an Integrity error the upload is abandoned;
// on other errors it stays resumable.
func (p *Provider) PutResumable(ctx context.Context, key string, src storage.Source, opts storage.PutOptions, state string, save func(state string) error) (storage.ObjectInfo, error) {
	size := src.Size()
	if !storage.ValidSHA256(opts.SHA256) || size < 0 {
		return storage.ObjectInfo{}, &storage.Error{Op: "put", Provider: p.name, Key: key, Kind: storage.Permanent,
			Err: fmt.Errorf("need a size >= 0 and a lowercase hex SHA-256, got %d and %q", size, opts.SHA256)}
	}
	if size <= p.cfg.TUSThreshold {
		rc, err := src.Open(ctx, 0)
		if err != nil {
			return storage.ObjectInfo{}, p.sourceError(ctx, key, err)
		}
		defer rc.Close()
		return p.Put(ctx, key, rc, size, opts)
	}
	if save == nil {
		save = func(string) error { return nil }
	}
	loc, offset, err := p.resumeFrom(ctx, key, state, size)
	if err != nil {
		return storage.ObjectInfo{}, err
	}
	rc, err := src.Open(ctx, 0)
	if err != nil {
		return storage.ObjectInfo{}, p.sourceError(ctx, key, err)
	}
	defer rc.Close()
	v := storage.NewVerifyingReader(rc, size, opts.SHA256, opts.Progress)
	parts := newPartsMD5()
	skipWholeMD5(v, size)
	if loc == "" {
		if loc, err = p.createUpload(ctx, key, size, opts); err != nil {
			return storage.ObjectInfo{}, err
		}
		if err := save(loc); err != nil {
			p.terminate(key, loc)
			return storage.ObjectInfo{}, storage.NewError("put", p.name, key, storage.Transient, fmt.Errorf("saving the upload URL: %w", err))
		}
	} else {
		p.log.Info("resuming upload", "op", "put", "key", key, "bytes", offset)
	}
	if _, err := io.CopyN(parts, v, offset); err != nil {
		return storage.ObjectInfo{}, p.sourceError(ctx, key, err)
	}
	if err := p.sendChunks(ctx, key, loc, v, parts, offset, size); err != nil {
		if storage.KindOf(err) == storage.Integrity {
			p.terminate(key, loc)
			if offset == size {
				// An earlier call completed the upload with these bytes.
				p.removeCorrupt(key, err)
			}
		}
		return storage.ObjectInfo{}, err
	}
	return p.verifyStored(ctx, key, size, opts, v.MD5(), parts)
}

// resumeFrom returns the upload to continue and the server's offset in it,
// or "" to start a new upload: when there is no state, when the server no
// longer has the upload or it is another object's, or when it completed
// but its object has since gone.
func (p *Provider) resumeFrom(ctx context.Context, key, state string, size int64) (string, int64, error) {
	if state == "" {
		return "", 0, nil
	}
	if !p.ownsUpload(state) {
		return "", 0, &storage.Error{Op: "put", Provider: p.name, Key: key, Kind: storage.Permanent,
			Err: errors.New("the saved state is not an upload URL of this provider")}
	}
	off, length, err := p.uploadOffset(ctx, state)
	switch {
	case err != nil && classify(err) == storage.NotFound:
		return "", 0, nil // expired or terminated
	case err != nil:
		return "", 0, p.fail("put", key, err)
	case length != size || off > size:
		return "", 0, nil
	case off == size:
		if _, err := p.Stat(ctx, key); storage.KindOf(err) == storage.NotFound {
			return "", 0, nil
		} else if err != nil {
			return "", 0, err
		}
	}
	return state, off, nil
}

// sendChunks PATCHes v from offset to size in ChunkSize chunks, one chunk
// buffered at a time, feeding parts alongside each PATCH. The last chunk
// goes only after the verifier has seen the whole source match, so a
// mismatched source never completes the upload.
func (p *Provider) sendChunks(ctx context.Context, key, loc string, v *storage.VerifyingReader, parts *partsMD5, offset, size int64) error {
	if offset == size {
		if err := v.Verify(); err != nil {
			return p.integrity("put", key, err)
		}
		return nil
	}
	buf := make([]byte, min(int64(ChunkSize), size-offset))
	for offset < size {
		n := min(int64(ChunkSize), size-offset)
		if _, err := io.ReadFull(v, buf[:n]); err != nil {
			return p.sourceError(ctx, key, err)
		}
		if offset+n == size {
			if err := v.Verify(); err != nil {
				return p.integrity("put", key, err)
			}
		}
		hashed := make(chan struct{})
		go func() { parts.Write(buf[:n]); close(hashed) }() // on another core while the chunk travels
		next, err := p.patch(ctx, loc, offset, buf[:n])
		<-hashed
		if err != nil {
			return p.fail("put", key, err)
		}
		if next != offset+n {
			return &storage.Error{Op: "put", Provider: p.name, Key: key, Kind: storage.Transient,
				Err: fmt.Errorf("TUS offset %d after sending %d bytes at %d", next, n, offset)}
		}
		offset = next
	}
	return nil
}

// sourceError classifies a failure to read the source.
func (p *Provider) sourceError(ctx context.Context, key string, err error) error {
	switch {
	case errors.Is(err, storage.ErrIntegrity):
		return p.integrity("put", key, err)
	case ctx.Err() != nil:
		return p.fail("put", key, ctx.Err())
	}
	return storage.NewError("put", p.name, key, storage.Transient, fmt.Errorf("reading the source: %w", err))
}

// createUpload starts a TUS upload and returns its URL.
func (p *Provider) createUpload(ctx context.Context, key string, size int64, opts storage.PutOptions) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.HTTPTimeout)
	defer cancel()
	req, err := p.newRequest(ctx, http.MethodPost, p.base+"/upload/resumable", nil)
	if err != nil {
		return "", p.fail("put", key, err)
	}
	meta := [][2]string{{"bucketName", p.cfg.Bucket}, {"objectName", encodeKey(key)},
		{"contentType", contentType(opts)}, {"metadata", string(metadataJSON(opts))}}
	var pairs []string
	for _, kv := range meta {
		pairs = append(pairs, kv[0]+" "+base64.StdEncoding.EncodeToString([]byte(kv[1])))
	}
	req.Header.Set("Tus-Resumable", tusVersion)
	req.Header.Set("Upload-Length", strconv.FormatInt(size, 10))
	req.Header.Set("Upload-Metadata", strings.Join(pairs, ","))
	req.Header.Set("X-Upsert", "true")
	resp, err := p.http.Do(req)
	if err != nil {
		return "", p.fail("put", key, err)
	}
	if resp.StatusCode != http.StatusCreated {
		return "", p.fail("put", key, readError(resp))
	}
	resp.Body.Close()
	loc, err := req.URL.Parse(resp.Header.Get("Location"))
	if err != nil || resp.Header.Get("Location") == "" {
		return "", p.fail("put", key, fmt.Errorf("TUS creation answered without a usable Location"))
	}
	return loc.String(), nil
}

// ownsUpload reports whether state is an upload URL on this provider's
// server: the key is never sent anywhere else.
func (p *Provider) ownsUpload(state string) bool {
	u, err1 := url.Parse(state)
	b, err2 := url.Parse(p.base)
	return err1 == nil && err2 == nil && u.Scheme == b.Scheme && u.Host == b.Host &&
		strings.HasPrefix(u.Path, b.Path+"/upload/resumable/")
}

// uploadOffset asks the server how much of an upload it holds.
func (p *Provider) uploadOffset(ctx context.Context, loc string) (offset, length int64, err error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.HTTPTimeout)
	defer cancel()
	req, err := p.newRequest(ctx, http.MethodHead, loc, nil)
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Tus-Resumable", tusVersion)
	resp, err := p.http.Do(req)
	if err != nil {
		return 0, 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, 0, readError(resp)
	}
	resp.Body.Close()
	offset, err1 := strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64)
	length, err2 := strconv.ParseInt(resp.Header.Get("Upload-Length"), 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, 0, fmt.Errorf("TUS HEAD without offset or length: %w", err)
	}
	return offset, length, nil
}

// patch sends one chunk at offset and returns the server's new offset.
func (p *Provider) patch(ctx context.Context, loc string, offset int64, chunk []byte) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.HTTPTimeout)
	defer cancel()
	req, err := p.newRequest(ctx, http.MethodPatch, loc, bytes.NewReader(chunk))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Tus-Resumable", tusVersion)
	req.Header.Set("Upload-Offset", strconv.FormatInt(offset, 10))
	req.Header.Set("Content-Type", "application/offset+octet-stream")
	req.Header.Set("X-Upsert", "true")
	resp, err := p.http.Do(req)
	if err != nil {
		return 0, err
	}
	switch resp.StatusCode {
	case http.StatusNoContent, http.StatusOK:
	case http.StatusConflict, http.StatusNotFound, http.StatusGone:
		// Another writer moved the offset, or the upload expired: the next
		// attempt asks the server (HEAD) and resumes or starts again.
		return 0, &storage.Error{Op: "put", Provider: p.name, Kind: storage.Transient, Err: readError(resp)}
	default:
		return 0, readError(resp)
	}
	resp.Body.Close()
	return strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64)
}

// terminate abandons an upload (best effort; an expired upload is gone
// anyway after 24 h).
func (p *Provider) terminate(key, loc string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := p.newRequest(ctx, http.MethodDelete, loc, nil)
	if err != nil {
		return
	}
	req.Header.Set("Tus-Resumable", tusVersion)
	resp, err := p.http.Do(req)
	if err != nil {
		p.log.Debug("terminating upload failed", "op", "put", "key", key, "error", err.Error())
		return
	}
	resp.Body.Close()
}

// verifyStored checks the stored object against what was sent, by the
// strongest evidence there is: an ETag equal to the MD5 of the bytes (one
// request), an ETag equal to their MD5 of ChunkSize parts (TUS on a server
// whose parts are the chunks), or else the object read back and hashed. A
// stored object that fails is deleted.
func (p *Provider) verifyStored(ctx context.Context, key string, size int64, opts storage.PutOptions, md5Hex string, parts *partsMD5) (storage.ObjectInfo, error) {
	start := time.Now()
	info, err := p.Stat(ctx, key)
	if err != nil {
		return storage.ObjectInfo{}, err
	}
	etag := info.Checksums.ETag
	var why error
	evidence := ""
	switch {
	case info.Size != size:
		why = fmt.Errorf("stored %d bytes, sent %d", info.Size, size)
	case info.SHA256 != opts.SHA256:
		why = fmt.Errorf("stored object's metadata says sha256 %q, sent %s", info.SHA256, opts.SHA256)
	case isMD5(etag) && md5Hex != "":
		evidence = "etag-md5"
		if etag != md5Hex {
			why = fmt.Errorf("ETag %s is not the MD5 %s of the bytes sent", etag, md5Hex)
		}
	case parts != nil && etag == parts.etag():
		evidence = "etag-parts-md5"
	default:
		evidence = "read-back"
		sum, err := p.readBack(ctx, key)
		if err != nil {
			return storage.ObjectInfo{}, err
		}
		if sum != opts.SHA256 {
			why = fmt.Errorf("read back sha256 %s, sent %s", sum, opts.SHA256)
		}
	}
	if why != nil {
		p.removeCorrupt(key, why)
		return storage.ObjectInfo{}, p.integrity("put", key, why)
	}
	p.log.Debug("put verified", "op", "put", "key", key, "bytes", size, "evidence", evidence,
		"duration_ms", time.Since(start).Milliseconds())
	info.Checksums.Proof = evidence
	return info, nil
}

// readBack streams the object and returns its hex SHA-256.
func (p *Provider) readBack(ctx context.Context, key string) (string, error) {
	rc, err := p.Get(ctx, key, 0, -1)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	h := sha256.New()
	if _, err := io.Copy(h, rc); err != nil {
		return "", p.fail("put", key, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// removeCorrupt deletes an object that failed verification (best effort,
// with its own deadline: the caller's context may be spent).
func (p *Provider) removeCorrupt(key string, why error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := p.Delete(ctx, key)
	p.log.Warn("removed an object that failed verification", "op", "put", "key", key,
		"reason", why.Error(), "remove_error", fmt.Sprint(err))
}

// skipWholeMD5 spares v the whole object's MD5 when a TUS upload of size
// bytes spans several chunks: the server's ETag is then an MD5 of part
// MD5s (partsMD5), never the whole MD5, and a server that does give a
// plain MD5 has the copy read back instead (verifyStored).
func skipWholeMD5(v *storage.VerifyingReader, size int64) {
	if size > ChunkSize {
		v.SkipMD5()
	}
}

// partsMD5 computes the ETag S3 gives a multipart upload of a stream cut
// into ChunkSize parts: the MD5 of the parts' MD5s, "-", the part count.
type partsMD5 struct {
	cur     hash.Hash
	curN    int64
	digests []byte
}

func newPartsMD5() *partsMD5 { return &partsMD5{cur: md5.New()} }

// Write implements io.Writer.
func (p *partsMD5) Write(b []byte) (int, error) {
	total := len(b)
	for len(b) > 0 {
		k := min(int64(len(b)), ChunkSize-p.curN)
		p.cur.Write(b[:k])
		p.curN += k
		b = b[k:]
		if p.curN == ChunkSize {
			p.digests = p.cur.Sum(p.digests)
			p.cur.Reset()
			p.curN = 0
		}
	}
	return total, nil
}

func (p *partsMD5) etag() string {
	d := p.digests
	if p.curN > 0 {
		d = p.cur.Sum(d)
	}
	sum := md5.Sum(d)
	return hex.EncodeToString(sum[:]) + "-" + strconv.Itoa(len(d)/md5.Size)
}
