package main

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/wedsync/backup-replication/shared/storage"
)

// gcsSink speaks the part of GCS's resumable-upload protocol that the GCS
// provider uses (start a session, send chunks or one request, finish) and
// throws the bytes away as they arrive, keeping only their count, CRC32C
// and MD5. When the client states the object's CRC32C (the Go client sends
// X-Goog-Hash with its last chunk) the sink checks it and refuses the
// upload on a mismatch, as GCS does. It stands at the network edge for the
// memory checks: fake-gcs-server holds whole objects in memory several
// times over, so it cannot take multi-GiB uploads.
type gcsSink struct {
	url      string
	mu       sync.Mutex
	sessions map[string]*sinkUpload
	next     int
}

type sinkUpload struct {
	name, contentType string
	metadata          map[string]string
	size              int64 // -1 until known
	n                 int64
	crc               hash.Hash32
	md5               hash.Hash
}

// serveGCSSink runs the sink on a loopback port until SIGTERM, printing
// "READY <url>" once it listens.
func serveGCSSink() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	s := &gcsSink{url: "http://" + ln.Addr().String(), sessions: map[string]*sinkUpload{}}
	hs := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() { <-ctx.Done(); hs.Close() }()
	fmt.Fprintln(os.Stdout, "READY", s.url)
	if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (s *gcsSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	id := q.Get("upload_id")
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/":
		w.WriteHeader(http.StatusOK) // readiness
	case r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/upload/storage/v1/b/") &&
		q.Get("uploadType") == "resumable" && id == "":
		s.start(w, r)
	case (r.Method == http.MethodPut || r.Method == http.MethodPost) && id != "":
		s.chunk(w, r, id)
	case r.Method == http.MethodDelete && id != "":
		s.mu.Lock()
		delete(s.sessions, id)
		s.mu.Unlock()
		w.WriteHeader(499)
	default:
		sinkError(w, http.StatusNotImplemented, "the sink speaks resumable uploads only")
	}
}

func (s *gcsSink) start(w http.ResponseWriter, r *http.Request) {
	var o struct {
		Name        string            `json:"name"`
		ContentType string            `json:"contentType"`
		Metadata    map[string]string `json:"metadata"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&o); err != nil {
		sinkError(w, http.StatusBadRequest, "bad object resource")
		return
	}
	u := &sinkUpload{name: r.URL.Query().Get("name"), contentType: o.ContentType, metadata: o.Metadata,
		size: -1, crc: crc32.New(storage.CastagnoliTable), md5: md5.New()}
	if u.name == "" {
		u.name = o.Name
	}
	if n, err := strconv.ParseInt(r.Header.Get("X-Upload-Content-Length"), 10, 64); err == nil {
		u.size = n
	}
	s.mu.Lock()
	s.next++
	id := strconv.Itoa(s.next)
	s.sessions[id] = u
	s.mu.Unlock()
	w.Header().Set("Location", s.url+r.URL.Path+"?uploadType=resumable&upload_id="+id)
	w.WriteHeader(http.StatusOK)
}

// chunk takes "bytes a-b/total", "bytes a-b/*" or a status query
// "bytes */total".
func (s *gcsSink) chunk(w http.ResponseWriter, r *http.Request, id string) {
	s.mu.Lock()
	u := s.sessions[id]
	s.mu.Unlock()
	if u == nil {
		sinkError(w, http.StatusNotFound, "no such upload session")
		return
	}
	rng, total, ok := strings.Cut(strings.TrimPrefix(r.Header.Get("Content-Range"), "bytes "), "/")
	if !ok {
		sinkError(w, http.StatusBadRequest, "bad Content-Range")
		return
	}
	if total != "*" {
		u.size, _ = strconv.ParseInt(total, 10, 64)
	}
	if rng != "*" {
		first, _, _ := strings.Cut(rng, "-")
		start, err := strconv.ParseInt(first, 10, 64)
		if err != nil || start > u.n {
			sinkError(w, http.StatusBadRequest, "chunk does not start at the persisted offset")
			return
		}
		io.CopyN(io.Discard, r.Body, u.n-start) // bytes already held
		n, err := io.CopyBuffer(io.MultiWriter(u.crc, u.md5), r.Body, make([]byte, 256<<10))
		u.n += n
		if err != nil {
			return // the client went away; the session keeps what arrived
		}
	}
	if u.size >= 0 && u.n == u.size {
		if want, ok := statedCRC32C(r.Header); ok && want != u.crc.Sum32() {
			sinkError(w, http.StatusBadRequest, fmt.Sprintf("crc32c %08x does not match the bytes received (%08x)", want, u.crc.Sum32()))
			return
		}
		s.finish(w, u)
		return
	}
	if u.n > 0 {
		w.Header().Set("Range", fmt.Sprintf("bytes=0-%d", u.n-1))
	}
	if r.Header.Get("X-GUploader-No-308") == "yes" {
		w.Header().Set("X-Http-Status-Code-Override", "308")
		return
	}
	w.WriteHeader(http.StatusPermanentRedirect)
}

// statedCRC32C reads "crc32c=<base64>" from X-Goog-Hash.
func statedCRC32C(h http.Header) (uint32, bool) {
	for _, v := range h.Values("X-Goog-Hash") {
		for part := range strings.SplitSeq(v, ",") {
			if b64, ok := strings.CutPrefix(strings.TrimSpace(part), "crc32c="); ok {
				b, err := base64.StdEncoding.DecodeString(b64)
				if err == nil && len(b) == 4 {
					return binary.BigEndian.Uint32(b), true
				}
			}
		}
	}
	return 0, false
}

// finish answers the last chunk with the object resource GCS would give.
func (s *gcsSink) finish(w http.ResponseWriter, u *sinkUpload) {
	crc := binary.BigEndian.AppendUint32(nil, u.crc.Sum32())
	sum := base64.StdEncoding.EncodeToString(u.md5.Sum(nil))
	now := time.Now().UTC()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"kind": "storage#object", "bucket": "sink", "name": u.name, "size": strconv.FormatInt(u.n, 10),
		"contentType": u.contentType, "metadata": u.metadata, "generation": strconv.FormatInt(now.UnixNano(), 10),
		"crc32c": base64.StdEncoding.EncodeToString(crc), "md5Hash": sum, "etag": sum,
		"updated": now.Format(time.RFC3339Nano),
	})
}

func sinkError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": code, "message": msg}})
}
