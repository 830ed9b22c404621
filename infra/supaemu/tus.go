package supaemu

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"hash"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/tus/tusd/v2/pkg/filestore"
	tusd "github.com/tus/tusd/v2/pkg/handler"
	"github.com/tus/tusd/v2/pkg/memorylocker"
	xslog "golang.org/x/exp/slog"
)

// TUSPath is where resumable uploads live, under the server's root.
const TUSPath = "/storage/v1/upload/resumable"

// DefaultChunkSize is the PATCH size hosted Supabase requires of TUS
// uploads (every PATCH but the last), and the default part size of the
// ETags the emulator gives TUS uploads.
const DefaultChunkSize = 6 << 20

// resumable serves TUS (tus.io 1.0.0) through tusd with Supabase's
// conventions on top: Upload-Metadata bucketName, objectName, contentType,
// cacheControl and metadata (user metadata as JSON); x-upsert to overwrite;
// the object appears in its bucket when the last byte arrives, with an ETag
// of the form "<md5 of part md5s>-<parts>" as hosted projects (which keep
// objects in S3) give TUS uploads.
type resumable struct {
	s       *Server
	store   filestore.FileStore
	h       *tusd.UnroutedHandler
	handler http.Handler // h's middleware around route, the base path stripped

	mu    sync.Mutex
	parts map[string]*partSums // by upload id, fed as PATCH bodies arrive
}

func newResumable(s *Server) (*resumable, error) {
	dir := filepath.Join(s.store.dir, "tus")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	t := &resumable{s: s, store: filestore.New(dir), parts: map[string]*partSums{}}
	composer := tusd.NewStoreComposer()
	t.store.UseIn(composer)
	memorylocker.New().UseIn(composer)
	h, err := tusd.NewUnroutedHandler(tusd.Config{
		StoreComposer:             composer,
		BasePath:                  TUSPath + "/",
		MaxSize:                   s.cfg.MaxFileSize,
		DisableDownload:           true,
		DisableConcatenation:      true,
		RespectForwardedHeaders:   true,
		Logger:                    xslog.New(xslog.NewTextHandler(io.Discard, nil)),
		PreUploadCreateCallback:   t.onCreate,
		PreFinishResponseCallback: t.onFinish,
	})
	if err != nil {
		return nil, err
	}
	t.h = h
	t.handler = h.Middleware(http.StripPrefix(TUSPath, http.HandlerFunc(t.route)))
	return t, nil
}

// ServeHTTP authenticates the request, enforces the chunk size, and hands
// it to tusd with the base path stripped.
func (t *resumable) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodOptions {
		ar, aerr := t.s.authenticate(r)
		if aerr != nil {
			aerr.write(w, r)
			return
		}
		r = ar
	}
	id := strings.Trim(strings.TrimPrefix(r.URL.Path, TUSPath), "/")
	if msg := t.checkChunk(r, id); msg != "" {
		http.Error(w, msg, http.StatusBadRequest)
		return
	}
	if r.Method == http.MethodPatch && id != "" {
		off, _ := strconv.ParseInt(r.Header.Get("Upload-Offset"), 10, 64)
		r.Body = &teeBody{ReadCloser: r.Body, sums: t.sumsFor(id), offset: off}
	}
	t.handler.ServeHTTP(w, r)
}

func (t *resumable) route(w http.ResponseWriter, r *http.Request) {
	id := strings.Trim(r.URL.Path, "/")
	switch {
	case id == "" && r.Method == http.MethodPost:
		t.h.PostFile(w, r)
	case id != "" && r.Method == http.MethodHead:
		t.h.HeadFile(w, r)
	case id != "" && r.Method == http.MethodPatch:
		t.h.PatchFile(w, r)
	case id != "" && r.Method == http.MethodDelete:
		t.h.DelFile(w, r)
		t.forget(id)
	default:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

// checkChunk enforces hosted Supabase's rule: every PATCH carries exactly
// the chunk size, except the one that ends the upload. (The real server's
// answer to a wrong size is not documented; this one is 400 text/plain.)
func (t *resumable) checkChunk(r *http.Request, id string) string {
	chunk := t.s.cfg.ChunkSize
	withBody := r.Method == http.MethodPatch ||
		(r.Method == http.MethodPost && r.Header.Get("Content-Type") == "application/offset+octet-stream" && r.ContentLength != 0)
	if !withBody || chunk <= 0 {
		return ""
	}
	off, _ := strconv.ParseInt(r.Header.Get("Upload-Offset"), 10, 64)
	var size int64 = -1
	if r.Method == http.MethodPost {
		size, _ = strconv.ParseInt(r.Header.Get("Upload-Length"), 10, 64)
	} else if up, err := t.store.GetUpload(r.Context(), id); err == nil {
		if info, err := up.GetInfo(r.Context()); err == nil {
			size = info.Size
		}
	}
	if size < 0 || r.ContentLength < 0 {
		return ""
	}
	if r.ContentLength == chunk || off+r.ContentLength == size {
		return ""
	}
	return "chunk size must be exactly " + strconv.FormatInt(chunk, 10) + " bytes for every PATCH but the last, got " +
		strconv.FormatInt(r.ContentLength, 10)
}

// tusError is an error as the server's TUS routes send it: the real status
// and the message as plain text.
func tusError(e *apiError) tusd.Error {
	return tusd.Error{ErrorCode: e.code, Message: e.message, HTTPResponse: tusd.HTTPResponse{
		StatusCode: e.status, Body: e.message,
		Header: tusd.HTTPHeader{"Content-Type": "text/plain; charset=utf-8"},
	}}
}

func (t *resumable) onCreate(ev tusd.HookEvent) (tusd.HTTPResponse, tusd.FileInfoChanges, error) {
	md := ev.Upload.MetaData
	bucketID, name := md["bucketName"], md["objectName"]
	if bucketID == "" || name == "" {
		return tusd.HTTPResponse{}, tusd.FileInfoChanges{}, tusError(errInvalidRequest("Metadata header is required"))
	}
	if !isValidKey(name) {
		return tusd.HTTPResponse{}, tusd.FileInfoChanges{}, tusError(errInvalidKey(name))
	}
	if _, ok := t.s.store.bucketInfo(bucketID); !ok {
		return tusd.HTTPResponse{}, tusd.FileInfoChanges{}, tusError(errNoSuchBucket())
	}
	if role, _ := ev.Context.Value(roleKey{}).(string); role != ServiceRole {
		return tusd.HTTPResponse{}, tusd.FileInfoChanges{}, tusError(errRLS())
	}
	if _, aerr := t.s.store.stat(bucketID, name); aerr == nil && ev.HTTPRequest.Header.Get("X-Upsert") != "true" {
		return tusd.HTTPResponse{}, tusd.FileInfoChanges{}, tusError(errKeyAlreadyExists())
	}
	changed := tusd.MetaData{}
	for k, v := range md {
		changed[k] = v
	}
	if _, err := strconv.ParseInt(md["cacheControl"], 10, 64); err == nil {
		changed["cacheControl"] = "max-age=" + md["cacheControl"]
	} else {
		changed["cacheControl"] = "no-cache"
	}
	return tusd.HTTPResponse{}, tusd.FileInfoChanges{MetaData: changed}, nil
}

// onFinish makes the completed upload an object. The final PATCH's
// x-upsert decides whether it may replace one, as on the real server.
func (t *resumable) onFinish(ev tusd.HookEvent) (tusd.HTTPResponse, error) {
	info := ev.Upload
	md := info.MetaData
	o := &object{Bucket: md["bucketName"], Name: md["objectName"], Size: info.Size,
		Mimetype: md["contentType"], CacheControl: md["cacheControl"]}
	if o.Mimetype == "" {
		o.Mimetype = "application/octet-stream"
	}
	if md["metadata"] != "" {
		var m map[string]any
		if json.Unmarshal([]byte(md["metadata"]), &m) == nil {
			o.UserMetadata = m
		}
	}
	bin := info.Storage[filestore.StorageKeyPath]
	o.ETag = t.etag(info.ID, bin, info.Size)
	tmp := filepath.Join(t.s.store.dir, "tmp", "tus-"+newID())
	// The upload's file stays for HEAD (offset = length); the object gets
	// its own name for the same bytes.
	if err := os.Link(bin, tmp); err != nil {
		src, err := os.Open(bin)
		if err != nil {
			return tusd.HTTPResponse{}, tusError(errInternal())
		}
		st, err := t.s.store.stage(src)
		src.Close()
		if err != nil {
			return tusd.HTTPResponse{}, tusError(errInternal())
		}
		tmp = st.path
	}
	if aerr := t.s.store.commit(o, tmp, ev.HTTPRequest.Header.Get("X-Upsert") == "true"); aerr != nil {
		return tusd.HTTPResponse{}, tusError(aerr)
	}
	return tusd.HTTPResponse{Header: tusd.HTTPHeader{"Tus-Complete": "1"}}, nil
}

// etag is the multipart ETag of the upload: from the sums taken as PATCH
// bodies arrived when they cover every byte, else by reading the file.
func (t *resumable) etag(id, path string, size int64) string {
	ps := t.forget(id)
	if ps == nil || ps.broken || ps.n != size {
		ps = newPartSums(t.s.cfg.PartSize)
		if f, err := os.Open(path); err == nil {
			io.Copy(ps, f)
			f.Close()
		}
	}
	return ps.etag()
}

func (t *resumable) sumsFor(id string) *partSums {
	t.mu.Lock()
	defer t.mu.Unlock()
	ps := t.parts[id]
	if ps == nil {
		ps = newPartSums(t.s.cfg.PartSize)
		t.parts[id] = ps
	}
	return ps
}

func (t *resumable) forget(id string) *partSums {
	t.mu.Lock()
	defer t.mu.Unlock()
	ps := t.parts[id]
	delete(t.parts, id)
	return ps
}

// partSums computes an S3 multipart ETag over a stream cut into parts.
type partSums struct {
	size    int64
	n       int64
	cur     hash.Hash
	curN    int64
	digests []byte
	broken  bool // bytes were missed: the file must be read instead
}

func newPartSums(size int64) *partSums { return &partSums{size: size, cur: md5.New()} }

func (p *partSums) Write(b []byte) (int, error) {
	total := len(b)
	for len(b) > 0 {
		k := min(int64(len(b)), p.size-p.curN)
		p.cur.Write(b[:k])
		p.curN += k
		p.n += k
		b = b[k:]
		if p.curN == p.size {
			p.digests = p.cur.Sum(p.digests)
			p.cur.Reset()
			p.curN = 0
		}
	}
	return total, nil
}

// etag is `"<hex md5 of the part digests>-<parts>"`, or the plain MD5 of
// nothing for an empty upload.
func (p *partSums) etag() string {
	d := p.digests
	if p.curN > 0 {
		d = p.cur.Sum(d)
	}
	parts := len(d) / md5.Size
	if parts == 0 {
		sum := md5.Sum(nil)
		return `"` + hex.EncodeToString(sum[:]) + `"`
	}
	sum := md5.Sum(d)
	return `"` + hex.EncodeToString(sum[:]) + "-" + strconv.Itoa(parts) + `"`
}

// teeBody feeds a PATCH body into the upload's part sums as tusd reads it
// (under tusd's upload lock, after it has checked the offset).
type teeBody struct {
	io.ReadCloser
	sums    *partSums
	offset  int64
	started bool
}

func (b *teeBody) Read(p []byte) (int, error) {
	if !b.started {
		b.started = true
		if b.sums.n != b.offset {
			b.sums.broken = true
		}
	}
	n, err := b.ReadCloser.Read(p)
	if n > 0 && !b.sums.broken {
		b.sums.Write(p[:n])
	}
	return n, err
}
