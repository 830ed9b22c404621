// Package supabase keeps copies in a Supabase Storage bucket: the primary
// copy of every backup.
//
// Objects move over plain net/http with the caller's context: a one-request
// upload up to Config.TUSThreshold, TUS resumable uploads in 6 MiB chunks
// above it (resumable across invocations through storage.Resumer), and
// streamed ranged downloads. storage-go v0.8.1 serves the JSON calls
// (listing, removal, signed URLs, buckets), through its NewRequest and Do
// only, with our context and timeout on every request: its upload and
// download helpers write options into a header map shared by the whole
// client (a data race that leaks upsert and content types into later calls),
// take no context, have no timeout, and read whole bodies into memory; and
// its errors keep the message but drop the code (StorageError.Status is
// always 0), so a 400 from it is asked again over plain HTTP to read the
// code.
//
// Supabase keeps no content hash but the ETag, which is the MD5 of the
// object only for one-request uploads (multipart and TUS uploads get an MD5
// of part MD5s with a -N suffix). Every Put is verified by the strongest
// evidence: an ETag equal to our MD5, an ETag equal to our MD5 of 6 MiB
// parts, or else reading the object back and hashing it.
package supabase

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"time"

	storage_go "github.com/supabase-community/storage-go"

	"github.com/wedsync/backup-replication/shared/storage"
)

// Provider is a Supabase Storage bucket. It is safe for concurrent use.
type Provider struct {
	name string
	cfg  Config
	base string // ".../storage/v1"
	key  string
	http *http.Client
	sg   *storage_go.Client
	log  *slog.Logger
}

var (
	_ storage.Provider = (*Provider)(nil)
	_ storage.Resumer  = (*Provider)(nil)
)

// New builds a provider for cfg. It makes no request; log may be nil.
func New(cfg Config, log *slog.Logger) (*Provider, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.TUSThreshold, cfg.HTTPTimeout = cfg.tusThreshold(), cfg.httpTimeout()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.ResponseHeaderTimeout = cfg.HTTPTimeout
	tr.MaxIdleConnsPerHost = 16
	key := cfg.ServiceKey.Reveal()
	p := &Provider{
		name: cfg.name(), cfg: cfg, base: cfg.storageURL(), key: key,
		http: &http.Client{Transport: tr},
		// No upload or download helper of storage-go is ever called, so its
		// shared header map is only read, never written, after this.
		sg:  storage_go.NewClient(cfg.storageURL(), key, map[string]string{"apikey": key}),
		log: log.With("provider", cfg.name()),
	}
	return p, nil
}

// Name returns the configured provider name.
func (p *Provider) Name() string { return p.name }

// Put stores the object: in one request up to Config.TUSThreshold, by TUS
// above it. A source that does not match opts.SHA256 gives an Integrity
// error and no object; so does a stored object that does not prove equal
// to what was sent (it is deleted).
func (p *Provider) Put(ctx context.Context, key string, r io.Reader, size int64, opts storage.PutOptions) (storage.ObjectInfo, error) {
	if !storage.ValidSHA256(opts.SHA256) || size < 0 {
		return storage.ObjectInfo{}, &storage.Error{Op: "put", Provider: p.name, Key: key, Kind: storage.Permanent,
			Err: fmt.Errorf("need a size >= 0 and a lowercase hex SHA-256, got %d and %q", size, opts.SHA256)}
	}
	v := storage.NewVerifyingReader(r, size, opts.SHA256, opts.Progress)
	if size > p.cfg.TUSThreshold {
		return p.putTUS(ctx, key, v, size, opts)
	}
	return p.putOne(ctx, key, v, size, opts)
}

// putOne sends the object in one POST with x-upsert. The last byte is held
// back until the verifier has seen the whole source match, so a mismatched
// source never completes the request and the server never stores it.
func (p *Provider) putOne(ctx context.Context, key string, v *storage.VerifyingReader, size int64, opts storage.PutOptions) (storage.ObjectInfo, error) {
	var body io.Reader = http.NoBody
	hb := &holdback{r: v, size: size}
	if size == 0 {
		if err := v.Verify(); err != nil {
			return storage.ObjectInfo{}, p.integrity("put", key, err)
		}
	} else {
		body = hb
	}
	req, err := p.newRequest(ctx, http.MethodPost, p.objectURL(key), body)
	if err != nil {
		return storage.ObjectInfo{}, p.fail("put", key, err)
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", contentType(opts))
	req.Header.Set("X-Upsert", "true")
	req.Header.Set("X-Metadata", base64.StdEncoding.EncodeToString(metadataJSON(opts)))
	resp, err := p.http.Do(req)
	switch {
	case storage.KindOf(hb.err) == storage.Integrity:
		if err == nil {
			resp.Body.Close()
		}
		return storage.ObjectInfo{}, p.integrity("put", key, hb.err)
	case err != nil && (ctx.Err() != nil || hb.err != nil && hb.err != io.EOF):
		// Cancelled, or the source failed rather than the network.
		return storage.ObjectInfo{}, p.sourceError(ctx, key, cmp.Or(hb.err, err))
	case err != nil:
		return storage.ObjectInfo{}, p.fail("put", key, err)
	case resp.StatusCode != http.StatusOK:
		return storage.ObjectInfo{}, p.fail("put", key, readError(resp))
	}
	resp.Body.Close()
	if err := v.Verify(); err != nil {
		// Cannot happen with the hold-back, but the promise is worth a check.
		p.removeCorrupt(key, err)
		return storage.ObjectInfo{}, p.integrity("put", key, err)
	}
	return p.verifyStored(ctx, key, size, opts, v.MD5(), nil)
}

// holdback passes a verifying reader through but keeps back the last of
// the size bytes until the verifier reports a clean end. When it reports an
// error instead (wrong hash, too short, too long), that byte is never
// released: the request body stays short and the server discards it.
type holdback struct {
	r    io.Reader
	size int64
	sent int64
	buf  []byte
	data []byte // read, not yet released
	err  error  // the reader's last error; io.EOF after a verified end
}

// Read implements io.Reader.
func (h *holdback) Read(p []byte) (int, error) {
	for {
		avail := int64(len(h.data))
		if h.err != io.EOF {
			avail = max(0, min(avail, h.size-1-h.sent))
		}
		if avail > 0 {
			n := copy(p, h.data[:avail])
			h.data = h.data[n:]
			h.sent += int64(n)
			return n, nil
		}
		if h.err != nil {
			return 0, h.err
		}
		if h.buf == nil {
			h.buf = make([]byte, 32<<10)
		}
		kept := copy(h.buf, h.data)
		n, err := h.r.Read(h.buf[kept:])
		h.data, h.err = h.buf[:kept+n], err
	}
}

// Get streams the object from offset; length < 0 means to the end.
func (p *Provider) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if offset < 0 {
		return nil, &storage.Error{Op: "get", Provider: p.name, Key: key, Kind: storage.Permanent, Err: fmt.Errorf("negative offset %d", offset)}
	}
	if length == 0 {
		info, err := p.Stat(ctx, key)
		if err != nil {
			return nil, err
		}
		if offset > info.Size {
			return nil, &storage.Error{Op: "get", Provider: p.name, Key: key, Kind: storage.Permanent,
				Err: fmt.Errorf("offset %d is past the end of %d bytes", offset, info.Size)}
		}
		return io.NopCloser(bytes.NewReader(nil)), nil
	}
	req, err := p.newRequest(ctx, http.MethodGet, p.objectURL(key), nil)
	if err != nil {
		return nil, p.fail("get", key, err)
	}
	ranged := offset > 0 || length > 0
	if ranged {
		rng := "bytes=" + strconv.FormatInt(offset, 10) + "-"
		if length > 0 {
			rng += strconv.FormatInt(offset+length-1, 10)
		}
		req.Header.Set("Range", rng)
	}
	resp, err := p.http.Do(req)
	if err != nil {
		return nil, p.fail("get", key, err)
	}
	switch {
	case resp.StatusCode == http.StatusPartialContent:
		if !strings.HasPrefix(resp.Header.Get("Content-Range"), "bytes "+strconv.FormatInt(offset, 10)+"-") {
			resp.Body.Close()
			return nil, p.fail("get", key, fmt.Errorf("asked for bytes from %d, got Content-Range %q", offset, resp.Header.Get("Content-Range")))
		}
		return &reader{p: p, key: key, rc: resp.Body}, nil
	case resp.StatusCode == http.StatusOK:
		// A server that ignored the range sends everything: skip to it.
		var r io.Reader = resp.Body
		if ranged {
			if _, err := io.CopyN(io.Discard, resp.Body, offset); err != nil {
				resp.Body.Close()
				return nil, p.fail("get", key, err)
			}
			if length > 0 {
				r = io.LimitReader(resp.Body, length)
			}
		}
		return &reader{p: p, key: key, rc: resp.Body, r: r}, nil
	}
	return nil, p.fail("get", key, readError(resp))
}

// reader classifies the errors of a download stream.
type reader struct {
	p   *Provider
	key string
	rc  io.ReadCloser
	r   io.Reader // nil: rc
}

func (r *reader) Read(b []byte) (int, error) {
	src := r.r
	if src == nil {
		src = r.rc
	}
	n, err := src.Read(b)
	if err != nil && err != io.EOF {
		err = r.p.fail("get", r.key, err)
	}
	return n, err
}

func (r *reader) Close() error { return r.rc.Close() }

// objectInfo is the JSON of GET /object/info/authenticated/{bucket}/{key}.
type objectInfo struct {
	Size         int64          `json:"size"`
	ContentType  string         `json:"content_type"`
	ETag         string         `json:"etag"`
	Metadata     map[string]any `json:"metadata"`
	LastModified time.Time      `json:"last_modified"`
}

// Stat reads the object's info: size, content type, ETag (with the MD5 it
// proves when it has no part suffix), and our SHA-256 from its metadata.
func (p *Provider) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.HTTPTimeout)
	defer cancel()
	u := p.base + "/object/info/authenticated/" + p.cfg.Bucket + "/" + escapePath(encodeKey(key))
	req, err := p.newRequest(ctx, http.MethodGet, u, nil)
	if err != nil {
		return storage.ObjectInfo{}, p.fail("stat", key, err)
	}
	resp, err := p.http.Do(req)
	if err != nil {
		return storage.ObjectInfo{}, p.fail("stat", key, err)
	}
	if resp.StatusCode != http.StatusOK {
		return storage.ObjectInfo{}, p.fail("stat", key, readError(resp))
	}
	defer resp.Body.Close()
	var oi objectInfo
	if err := json.NewDecoder(io.LimitReader(resp.Body, 2<<20)).Decode(&oi); err != nil {
		return storage.ObjectInfo{}, p.fail("stat", key, fmt.Errorf("decoding object info: %w", err))
	}
	info := storage.ObjectInfo{Key: key, Size: oi.Size, ContentType: oi.ContentType, ModTime: oi.LastModified,
		Metadata: map[string]string{}}
	for k, v := range oi.Metadata {
		if s, ok := v.(string); ok {
			info.Metadata[k] = s
		} else {
			b, _ := json.Marshal(v)
			info.Metadata[k] = string(b)
		}
	}
	info.SHA256 = info.Metadata[storage.MetaSHA256]
	info.Checksums.ETag = strings.Trim(oi.ETag, `"`)
	if isMD5(info.Checksums.ETag) {
		info.Checksums.MD5 = info.Checksums.ETag
	}
	return info, nil
}

func isMD5(s string) bool {
	if len(s) != 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !('0' <= s[i] && s[i] <= '9' || 'a' <= s[i] && s[i] <= 'f') {
			return false
		}
	}
	return true
}

// Delete removes the object; a missing object is not an error (the bulk
// removal storage-go uses answers [] for it).
func (p *Provider) Delete(ctx context.Context, key string) error {
	var removed []map[string]any
	err := p.sgoCall(ctx, http.MethodDelete, "/object/"+p.cfg.Bucket, map[string][]string{"prefixes": {encodeKey(key)}}, &removed)
	if err != nil {
		return p.fail("delete", key, err)
	}
	return nil
}

// newRequest builds a request with the service key.
func (p *Provider) newRequest(ctx context.Context, method, url string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+p.key)
	req.Header.Set("Apikey", p.key)
	return req, nil
}

func (p *Provider) objectURL(key string) string {
	return p.base + "/object/" + p.cfg.Bucket + "/" + escapePath(encodeKey(key))
}

func contentType(opts storage.PutOptions) string {
	if opts.ContentType == "" {
		return "application/octet-stream"
	}
	return opts.ContentType
}

// metadataJSON is the object's user metadata: the caller's plus our SHA-256.
func metadataJSON(opts storage.PutOptions) []byte {
	md := maps.Clone(opts.Metadata)
	if md == nil {
		md = map[string]string{}
	}
	md[storage.MetaSHA256] = opts.SHA256
	b, _ := json.Marshal(md)
	return b
}
