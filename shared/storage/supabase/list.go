package supabase

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	storage_go "github.com/supabase-community/storage-go"

	"github.com/wedsync/backup-replication/shared/storage"
)

// listPage is how many entries one list request asks for (the server caps
// a page at 1500).
const listPage = 1000

// listRequest is the body of POST /object/list/{bucket}.
type listRequest struct {
	Prefix string `json:"prefix"`
	Search string `json:"search"`
	Limit  int    `json:"limit"`
	Offset int    `json:"offset"`
	SortBy struct {
		Column string `json:"column"`
		Order  string `json:"order"`
	} `json:"sortBy"`
}

// listEntry is one entry of a listing: a file, or (Id null) a folder.
type listEntry struct {
	Name      string  `json:"name"`
	ID        *string `json:"id"`
	UpdatedAt string  `json:"updated_at"`
	Metadata  *struct {
		ETag     string `json:"eTag"`
		Size     int64  `json:"size"`
		Mimetype string `json:"mimetype"`
	} `json:"metadata"`
}

// List walks the bucket below prefix. Supabase lists one folder level at a
// time, takes the prefix as a folder and matches names case-insensitively:
// List lists the folder that holds the prefix, narrowing by the rest of it
// (search), descends into matching folders, and keeps only names that
// start with the prefix exactly. Listings carry no user metadata, so the
// ObjectInfo has no SHA256 (Stat has it). Pages are by offset, so objects
// written or removed during a walk may be missed or seen twice.
func (p *Provider) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	enc := encodeKey(prefix)
	dir := enc[:strings.LastIndexByte(enc, '/')+1]
	return p.walk(ctx, dir, enc[len(dir):], enc, fn)
}

// walk lists dir (narrowed by search), calling fn for files under enc and
// descending into folders under it. Errors of fn come back as they are.
func (p *Provider) walk(ctx context.Context, dir, search, enc string, fn func(storage.ObjectInfo) error) error {
	for offset := 0; ; offset += listPage {
		req := listRequest{Prefix: dir, Search: search, Limit: listPage, Offset: offset}
		req.SortBy.Column, req.SortBy.Order = "name", "asc"
		var page []listEntry
		if err := p.sgoCall(ctx, http.MethodPost, "/object/list/"+p.cfg.Bucket, req, &page); err != nil {
			return p.fail("list", dir, err)
		}
		for _, e := range page {
			full := dir + e.Name
			if e.ID == nil {
				if strings.HasPrefix(full+"/", enc) {
					if err := p.walk(ctx, full+"/", "", enc, fn); err != nil {
						return err
					}
				}
				continue
			}
			if !strings.HasPrefix(full, enc) {
				continue
			}
			key, _ := decodeKey(full)
			info := storage.ObjectInfo{Key: key}
			info.ModTime, _ = time.Parse(time.RFC3339Nano, e.UpdatedAt)
			if e.Metadata != nil {
				info.Size, info.ContentType = e.Metadata.Size, e.Metadata.Mimetype
				info.Checksums.ETag = strings.Trim(e.Metadata.ETag, `"`)
				if isMD5(info.Checksums.ETag) {
					info.Checksums.MD5 = info.Checksums.ETag
				}
			}
			if err := fn(info); err != nil {
				return err
			}
		}
		if len(page) < listPage {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return p.fail("list", dir, err)
		}
	}
}

// SignedURL returns a URL that downloads the object without credentials
// until ttl has passed (whole seconds, at least one). The URL is a bearer
// credential: never log it.
func (p *Provider) SignedURL(ctx context.Context, key string, ttl time.Duration) (string, error) {
	secs := max(int64(ttl/time.Second), 1)
	var out struct {
		SignedURL string `json:"signedURL"`
	}
	err := p.sgoCall(ctx, http.MethodPost, "/object/sign/"+p.cfg.Bucket+"/"+escapePath(encodeKey(key)),
		map[string]int64{"expiresIn": secs}, &out)
	if err != nil {
		return "", p.fail("sign", key, err)
	}
	// The server answers "/object/sign/{bucket}/{name}?token=…" with the
	// name unescaped (it may hold '?'): escape it again.
	i := strings.LastIndex(out.SignedURL, "?token=")
	if i < 0 || !strings.HasPrefix(out.SignedURL, "/object/sign/") {
		return "", p.fail("sign", key, fmt.Errorf("unexpected signed URL shape"))
	}
	return p.base + escapePath(out.SignedURL[:i]) + "?token=" + url.QueryEscape(out.SignedURL[i+len("?token="):]), nil
}

// EnsureBucket creates the configured bucket, private, unless it exists.
// The service key must be allowed to create buckets.
func (p *Provider) EnsureBucket(ctx context.Context) error {
	var b storage_go.Bucket
	err := p.sgoCall(ctx, http.MethodGet, "/bucket/"+url.PathEscape(p.cfg.Bucket), nil, &b)
	if classify(err) != storage.NotFound {
		return p.failBucket(err)
	}
	err = p.sgoCall(ctx, http.MethodPost, "/bucket", map[string]any{"id": p.cfg.Bucket, "name": p.cfg.Bucket, "public": false}, nil)
	var ae *apiError
	if errors.As(err, &ae) && ae.Code == "BucketAlreadyExists" {
		return nil
	}
	return p.failBucket(err)
}

func (p *Provider) failBucket(err error) error {
	if err == nil {
		return nil
	}
	return p.fail("bucket", p.cfg.Bucket, err)
}

// sgoCall sends one JSON call through storage-go with ctx and the HTTP
// timeout (storage-go's own methods take neither). storage-go keeps only the
// message of an error, so a 400, whose meaning is in the body's code, is
// asked again over plain HTTP: sgoCall is for calls that may be repeated.
func (p *Provider) sgoCall(ctx context.Context, method, path string, body, out any) error {
	tctx, cancel := context.WithTimeout(ctx, p.cfg.HTTPTimeout)
	defer cancel()
	var payload []any
	if body != nil {
		payload = append(payload, body)
	}
	req, err := p.sg.NewRequest(method, p.base+path, payload...)
	if err != nil {
		return err
	}
	resp, err := p.sg.Do(req.WithContext(tctx), out)
	if resp != nil {
		resp.Body.Close()
	}
	var se *storage_go.StorageError
	switch {
	case err == nil:
		return nil
	case resp == nil || !errors.As(err, &se):
		return err // the network, or a body that did not decode
	case resp.StatusCode != http.StatusBadRequest:
		return &apiError{HTTPStatus: resp.StatusCode, Message: se.Message, retryAfter: retryAfter(resp.Header)}
	}
	return p.jsonCall(ctx, method, path, body, out)
}

// jsonCall sends one JSON call over plain HTTP and decodes the answer.
func (p *Provider) jsonCall(ctx context.Context, method, path string, body, out any) error {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.HTTPTimeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := p.newRequest(ctx, method, p.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.http.Do(req)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return readError(resp)
	}
	defer resp.Body.Close()
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}
