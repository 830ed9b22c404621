package gcs

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	gcs "cloud.google.com/go/storage"
	"google.golang.org/api/googleapi"
	raw "google.golang.org/api/storage/v1"

	"github.com/wedsync/backup-replication/shared/storage"
)

// This file speaks GCS's resumable-upload protocol itself, for the two
// things the client library cannot do safely or at all:
//
//   - One-request uploads (ChunkSize 0) that stay invisible when the source
//     fails. The library's one-request mode sends a multipart body, and when
//     its source fails it still writes the closing boundary, so GCS receives
//     a well-formed request holding a truncated object and commits it (seen
//     here against fake-gcs-server). Instead we open a session and send one
//     PUT whose Content-Length is the declared size, and hold back its last
//     byte until the SHA-256 is proved: a failed source can only ever leave
//     an incomplete request, which GCS never commits.
//   - Uploads that resume in a later invocation (storage.Resumer): the
//     session URI is the state to keep; the library does not expose it.

// sessionStatus is what a session reports about itself.
type sessionStatus struct {
	offset int64            // bytes persisted so far
	done   *gcs.ObjectAttrs // the committed object, when the upload finished
	gone   bool             // the session expired or was cancelled
}

// uploadURL is the JSON API's resumable-upload URL for key.
func (p *Provider) uploadURL(key string) string {
	root := strings.TrimSuffix(p.endpoint, "storage/v1/")
	return root + "upload/storage/v1/b/" + url.PathEscape(p.cfg.Bucket) + "/o?uploadType=resumable&name=" + url.QueryEscape(key)
}

// startSession opens a resumable upload of size bytes with the object's
// metadata and returns the session URI.
func (p *Provider) startSession(ctx context.Context, key string, size int64, opts storage.PutOptions) (string, error) {
	obj := &raw.Object{Name: key, ContentType: contentType(opts.ContentType), Metadata: metadata(opts)}
	if p.cfg.Retention > 0 {
		obj.Retention = &raw.ObjectRetention{Mode: p.retentionMode(), RetainUntilTime: time.Now().Add(p.cfg.Retention).UTC().Format(time.RFC3339)}
	}
	body, err := json.Marshal(obj)
	if err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.uploadURL(key), bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json; charset=UTF-8")
	req.Header.Set("X-Upload-Content-Type", obj.ContentType)
	req.Header.Set("X-Upload-Content-Length", strconv.FormatInt(size, 10))
	res, err := p.hc.Do(req)
	if err != nil {
		return "", err
	}
	defer drainClose(res.Body)
	if err := googleapi.CheckResponse(res); err != nil {
		return "", err
	}
	loc := res.Header.Get("Location")
	if loc == "" {
		return "", fmt.Errorf("resumable upload started without a session URI (status %d)", res.StatusCode)
	}
	return loc, nil
}

// queryStatus asks the session how far it got.
func (p *Provider) queryStatus(ctx context.Context, session string, size int64) (sessionStatus, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, session, http.NoBody)
	if err != nil {
		return sessionStatus{}, err
	}
	req.Header.Set("Content-Range", "bytes */"+strconv.FormatInt(size, 10))
	res, err := p.hc.Do(req)
	if err != nil {
		return sessionStatus{}, err
	}
	defer drainClose(res.Body)
	switch {
	case res.StatusCode == http.StatusOK || res.StatusCode == http.StatusCreated:
		a, err := decodeObject(res.Body)
		return sessionStatus{done: a, offset: size}, err
	case isIncomplete(res):
		return sessionStatus{offset: persisted(res.Header.Get("Range"))}, nil
	case res.StatusCode == http.StatusNotFound || res.StatusCode == http.StatusGone || res.StatusCode == 499:
		return sessionStatus{gone: true}, nil
	}
	return sessionStatus{}, googleapi.CheckResponse(res)
}

// isIncomplete reports a "308 Resume Incomplete" answer, which emulators
// may send as 200 with X-Http-Status-Code-Override.
func isIncomplete(res *http.Response) bool {
	return res.StatusCode == http.StatusPermanentRedirect || res.Header.Get("X-Http-Status-Code-Override") == "308"
}

// persisted reads "bytes=0-N" as N+1; no header means nothing persisted.
func persisted(rng string) int64 {
	_, last, ok := strings.Cut(strings.TrimPrefix(rng, "bytes="), "-")
	if !ok {
		return 0
	}
	n, err := strconv.ParseInt(last, 10, 64)
	if err != nil {
		return 0
	}
	return n + 1
}

// sendRest sends bytes [offset, size) from v in one PUT and returns the
// committed object. v must be positioned at offset. The body withholds its
// last byte until v has proved the whole stream (see holdBack).
func (p *Provider) sendRest(ctx context.Context, session string, v *storage.VerifyingReader, offset, size int64) (*gcs.ObjectAttrs, error) {
	var body io.Reader = http.NoBody
	rangeHdr := "bytes */" + strconv.FormatInt(size, 10)
	if offset < size {
		body = &holdBack{v: v, left: size - offset}
		rangeHdr = fmt.Sprintf("bytes %d-%d/%d", offset, size-1, size)
	} else if err := v.Verify(); err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, session, body)
	if err != nil {
		return nil, err
	}
	req.ContentLength = size - offset
	req.Header.Set("Content-Range", rangeHdr)
	res, err := p.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer drainClose(res.Body)
	if res.StatusCode != http.StatusOK && res.StatusCode != http.StatusCreated {
		if err := googleapi.CheckResponse(res); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("upload not finalized (status %d)", res.StatusCode)
	}
	return decodeObject(res.Body)
}

// cancelSession deletes an upload session so that nothing sent to it can
// ever be committed. Best effort: an abandoned session also expires after a
// week.
func (p *Provider) cancelSession(ctx context.Context, session string) {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(dctx, http.MethodDelete, session, http.NoBody)
	if err != nil {
		return
	}
	if res, err := p.hc.Do(req); err == nil {
		drainClose(res.Body)
	}
}

// holdBack streams the remaining bytes of a VerifyingReader but withholds
// the very last one until the verifier has seen the source end with the
// declared size and SHA-256. A request whose body fails before its last
// byte is incomplete, and GCS never commits an incomplete upload.
type holdBack struct {
	v    *storage.VerifyingReader
	left int64
}

// Read implements io.Reader.
func (h *holdBack) Read(b []byte) (int, error) {
	switch {
	case h.left == 0:
		return 0, io.EOF
	case len(b) == 0:
		return 0, nil
	case h.left > 1:
		if int64(len(b)) > h.left-1 {
			b = b[:h.left-1]
		}
		n, err := h.v.Read(b)
		h.left -= int64(n)
		if err == io.EOF {
			err = io.ErrUnexpectedEOF // cannot happen: the verifier reports a short source
		}
		return n, err
	}
	var last [1]byte
	if _, err := io.ReadFull(h.v, last[:]); err != nil {
		return 0, err
	}
	if err := h.v.Verify(); err != nil {
		return 0, err
	}
	b[0] = last[0]
	h.left = 0
	return 1, nil
}

// decodeObject reads the object resource GCS answers a finished upload
// with, keeping what compare and info need.
func decodeObject(r io.Reader) (*gcs.ObjectAttrs, error) {
	var o raw.Object
	if err := json.NewDecoder(r).Decode(&o); err != nil {
		return nil, fmt.Errorf("decoding the uploaded object: %w", err)
	}
	a := &gcs.ObjectAttrs{Name: o.Name, Size: int64(o.Size), ContentType: o.ContentType,
		Metadata: o.Metadata, Generation: o.Generation, Etag: o.Etag}
	a.Updated, _ = time.Parse(time.RFC3339Nano, o.Updated)
	if b, err := base64.StdEncoding.DecodeString(o.Crc32c); err == nil && len(b) == 4 {
		a.CRC32C = binary.BigEndian.Uint32(b)
	}
	if b, err := base64.StdEncoding.DecodeString(o.Md5Hash); err == nil {
		a.MD5 = b
	}
	return a, nil
}

func drainClose(rc io.ReadCloser) {
	io.Copy(io.Discard, io.LimitReader(rc, 64<<10))
	rc.Close()
}
