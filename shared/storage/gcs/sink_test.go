package gcs

import (
	"crypto/md5"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	raw "google.golang.org/api/storage/v1"

	"github.com/wedsync/backup-replication/shared/storage"
)

// sinkServer speaks the part of the GCS JSON API's resumable-upload
// protocol that uploads use, the way GCS does, and throws the bytes away:
// it keeps only their count, CRC32C and MD5, computed as they arrive, and
// answers the final chunk with an object resource carrying them. It stands
// at the network edge for memory checks of multi-GiB uploads (fake-gcs-server
// holds objects in memory several times over) and for resumption tests
// (fake-gcs-server keeps nothing of an interrupted request, and commits on a
// status query).
type sinkServer struct {
	*httptest.Server
	mu       sync.Mutex
	sessions map[string]*sinkSession
	nextID   int
	// cutAfter, when positive, makes the next upload PUT drop its
	// connection after that many body bytes, once.
	cutAfter atomic.Int64
	// lastStart is the first byte offset of the latest chunk received.
	lastStart atomic.Int64
}

type sinkSession struct {
	name, contentType string
	metadata          map[string]string
	size              int64 // declared total, -1 while unknown
	n                 int64 // bytes received and kept
	crc               hash.Hash32
	md5               hash.Hash
}

func newSink(t testing.TB) *sinkServer {
	s := &sinkServer{sessions: map[string]*sinkSession{}}
	s.Server = httptest.NewServer(s)
	t.Cleanup(s.Close)
	return s
}

func (s *sinkServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	switch {
	case r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/upload/storage/v1/b/") && q.Get("uploadType") == "resumable" && q.Get("upload_id") == "":
		s.start(w, r)
	case (r.Method == http.MethodPut || r.Method == http.MethodPost) && q.Get("upload_id") != "":
		// The Go client sends its chunks with POST; the protocol says PUT.
		s.put(w, r, q.Get("upload_id"))
	case r.Method == http.MethodDelete && q.Get("upload_id") != "":
		s.mu.Lock()
		delete(s.sessions, q.Get("upload_id"))
		s.mu.Unlock()
		w.WriteHeader(499)
	default:
		gcsError(w, http.StatusNotImplemented, "notImplemented", "the sink speaks only resumable uploads")
	}
}

func (s *sinkServer) start(w http.ResponseWriter, r *http.Request) {
	var o raw.Object
	if err := json.NewDecoder(r.Body).Decode(&o); err != nil {
		gcsError(w, http.StatusBadRequest, "parseError", "bad object resource")
		return
	}
	sess := &sinkSession{name: r.URL.Query().Get("name"), contentType: o.ContentType, metadata: o.Metadata,
		size: -1, crc: crc32.New(storage.CastagnoliTable), md5: md5.New()}
	if sess.name == "" {
		sess.name = o.Name
	}
	if v, err := strconv.ParseInt(r.Header.Get("X-Upload-Content-Length"), 10, 64); err == nil {
		sess.size = v
	}
	s.mu.Lock()
	s.nextID++
	id := strconv.Itoa(s.nextID)
	s.sessions[id] = sess
	s.mu.Unlock()
	w.Header().Set("Location", s.URL+r.URL.Path+"?uploadType=resumable&upload_id="+id)
}

// put takes one chunk ("bytes a-b/total", "bytes a-b/*") or a status query
// or empty final request ("bytes */total").
func (s *sinkServer) put(w http.ResponseWriter, r *http.Request, id string) {
	s.mu.Lock()
	sess := s.sessions[id]
	s.mu.Unlock()
	if sess == nil {
		gcsError(w, http.StatusNotFound, "notFound", "no such upload session")
		return
	}
	rng, total, ok := strings.Cut(strings.TrimPrefix(r.Header.Get("Content-Range"), "bytes "), "/")
	if !ok {
		gcsError(w, http.StatusBadRequest, "invalid", "bad Content-Range")
		return
	}
	if total != "*" {
		sess.size, _ = strconv.ParseInt(total, 10, 64)
	}
	if rng != "*" {
		first, _, _ := strings.Cut(rng, "-")
		start, _ := strconv.ParseInt(first, 10, 64)
		s.lastStart.Store(start)
		if start > sess.n {
			gcsError(w, http.StatusBadRequest, "invalid", "chunk starts past the persisted bytes")
			return
		}
		// Bytes we already hold are skipped, as GCS does.
		io.CopyN(io.Discard, r.Body, sess.n-start)
		var body io.Reader = r.Body
		cut := s.cutAfter.Swap(0)
		if cut > 0 {
			body = io.LimitReader(r.Body, cut)
		}
		n, err := io.CopyBuffer(io.MultiWriter(sess.crc, sess.md5), body, make([]byte, 256<<10))
		sess.n += n
		if cut > 0 || err != nil {
			if conn, _, herr := http.NewResponseController(w).Hijack(); herr == nil {
				conn.Close()
			}
			return
		}
	}
	if sess.size >= 0 && sess.n == sess.size {
		s.commit(w, sess)
		return
	}
	if sess.n > 0 {
		w.Header().Set("Range", fmt.Sprintf("bytes=0-%d", sess.n-1))
	}
	if r.Header.Get("X-GUploader-No-308") == "yes" {
		w.Header().Set("X-Http-Status-Code-Override", "308")
		return
	}
	w.WriteHeader(http.StatusPermanentRedirect)
}

func (s *sinkServer) commit(w http.ResponseWriter, sess *sinkSession) {
	crc := make([]byte, 4)
	binary.BigEndian.PutUint32(crc, sess.crc.Sum32())
	md := base64.StdEncoding.EncodeToString(sess.md5.Sum(nil))
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(raw.Object{
		Kind: "storage#object", Bucket: testBucket, Name: sess.name, Size: uint64(sess.n),
		ContentType: sess.contentType, Metadata: sess.metadata, Generation: time.Now().UnixNano(),
		Crc32c: base64.StdEncoding.EncodeToString(crc), Md5Hash: md, Etag: md,
		Updated: time.Now().UTC().Format(time.RFC3339Nano),
	})
}
