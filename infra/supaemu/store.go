package supaemu

import (
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"hash"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"time"
)

// validKey is the Storage server's rule for object names
// (src/storage/limits.ts): S3-safe ASCII only. Anything else is InvalidKey.
var validKey = regexp.MustCompile(`^[A-Za-z0-9_/!.*'() &$=@;:+,?-]*$`)

func isValidKey(k string) bool { return k != "" && validKey.MatchString(k) }

// object is one stored object. Its data file is never written after the
// object is committed, so readers can hold it open while it is replaced.
type object struct {
	ID           string
	Bucket, Name string
	Size         int64
	ETag         string // quoted, as in the ETag header
	Mimetype     string
	CacheControl string
	UserMetadata map[string]any
	Created      time.Time
	Updated      time.Time
	path         string
}

// systemMetadata is the object's "metadata" column, as listings show it.
func (o *object) systemMetadata() map[string]any {
	return map[string]any{
		"eTag": o.ETag, "size": o.Size, "mimetype": o.Mimetype, "cacheControl": o.CacheControl,
		"lastModified": o.Updated.UTC().Format(time.RFC3339Nano), "contentLength": o.Size, "httpStatusCode": 200,
	}
}

// row is the object as the API returns a row of storage.objects.
func (o *object) row() map[string]any {
	ts := o.Updated.UTC().Format(time.RFC3339Nano)
	return map[string]any{
		"bucket_id": o.Bucket, "name": o.Name, "id": o.ID, "owner": nil, "owner_id": nil,
		"updated_at": ts, "created_at": o.Created.UTC().Format(time.RFC3339Nano), "last_accessed_at": ts,
		"metadata": o.systemMetadata(), "user_metadata": o.UserMetadata,
	}
}

type bucket struct {
	ID               string
	Public           bool
	FileSizeLimit    *int64
	AllowedMimeTypes []string
	Created, Updated time.Time
	objects          map[string]*object
}

func (b *bucket) json() map[string]any {
	return map[string]any{
		"id": b.ID, "name": b.ID, "owner": "", "public": b.Public, "type": "STANDARD",
		"file_size_limit": b.FileSizeLimit, "allowed_mime_types": b.AllowedMimeTypes,
		"created_at": b.Created.UTC().Format(time.RFC3339Nano), "updated_at": b.Updated.UTC().Format(time.RFC3339Nano),
	}
}

// store keeps object bytes in files under dir and the index in memory.
type store struct {
	dir     string // objects/ and tmp/ live here
	mu      sync.RWMutex
	buckets map[string]*bucket
}

func newStore(dir string) (*store, error) {
	for _, d := range []string{"objects", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	return &store{dir: dir, buckets: map[string]*bucket{}}, nil
}

func newID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// staged is an upload written to a temporary file, not yet visible.
type staged struct {
	path string
	size int64
	md5  hash.Hash
}

// stage copies r into a temporary file, hashing it. On error nothing is
// left behind.
func (s *store) stage(r io.Reader) (*staged, error) {
	f, err := os.CreateTemp(filepath.Join(s.dir, "tmp"), "upload-")
	if err != nil {
		return nil, err
	}
	st := &staged{path: f.Name(), md5: md5.New()}
	st.size, err = io.Copy(io.MultiWriter(f, st.md5), r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(st.path)
		return nil, err
	}
	return st, nil
}

// discard removes a staged file that will not be committed.
func (st *staged) discard() { os.Remove(st.path) }

func (st *staged) etag() string { return `"` + hex.EncodeToString(st.md5.Sum(nil)) + `"` }

// commit makes o visible, moving the file at src into the store. Without
// upsert an existing object is KeyAlreadyExists. On error src is removed.
func (s *store) commit(o *object, src string, upsert bool) *apiError {
	o.path = filepath.Join(s.dir, "objects", newID())
	if err := os.Rename(src, o.path); err != nil {
		os.Remove(src)
		return errInternal()
	}
	s.mu.Lock()
	b := s.buckets[o.Bucket]
	var old *object
	if b != nil {
		old = b.objects[o.Name]
	}
	switch {
	case b == nil:
		s.mu.Unlock()
		os.Remove(o.path)
		return errNoSuchBucket()
	case old != nil && !upsert:
		s.mu.Unlock()
		os.Remove(o.path)
		return errKeyAlreadyExists()
	}
	now := time.Now()
	o.Updated, o.Created = now, now
	if o.ID == "" {
		o.ID = newID()
	}
	if old != nil {
		o.Created = old.Created
	}
	b.objects[o.Name] = o
	s.mu.Unlock()
	if old != nil {
		os.Remove(old.path) // open readers keep their descriptor
	}
	return nil
}

// open returns a copy of the object and its open data file.
func (s *store) open(bucketID, name string) (object, *os.File, *apiError) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	b := s.buckets[bucketID]
	if b == nil {
		return object{}, nil, errNoSuchBucket()
	}
	o := b.objects[name]
	if o == nil {
		return object{}, nil, errNoSuchKey()
	}
	f, err := os.Open(o.path)
	if err != nil {
		return object{}, nil, errInternal()
	}
	return *o, f, nil
}

// stat returns a copy of the object.
func (s *store) stat(bucketID, name string) (object, *apiError) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	b := s.buckets[bucketID]
	if b == nil {
		return object{}, errNoSuchBucket()
	}
	o := b.objects[name]
	if o == nil {
		return object{}, errNoSuchKey()
	}
	return *o, nil
}

// bucketInfo returns a copy of the bucket without its objects.
func (s *store) bucketInfo(id string) (bucket, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	b := s.buckets[id]
	if b == nil {
		return bucket{}, false
	}
	c := *b
	c.objects = nil
	return c, true
}

// remove deletes the named objects that exist and returns them.
func (s *store) remove(bucketID string, names ...string) ([]*object, *apiError) {
	s.mu.Lock()
	b := s.buckets[bucketID]
	if b == nil {
		s.mu.Unlock()
		return nil, errNoSuchBucket()
	}
	var gone []*object
	for _, n := range names {
		if o := b.objects[n]; o != nil {
			delete(b.objects, n)
			gone = append(gone, o)
		}
	}
	s.mu.Unlock()
	for _, o := range gone {
		os.Remove(o.path)
	}
	return gone, nil
}

// duplicate copies (or, with move, renames) an object within or across
// buckets. The data file is shared through a hard link, or copied where
// links are not possible.
func (s *store) duplicate(srcBucket, srcName, dstBucket, dstName string, upsert, move bool, meta map[string]any) (*object, *apiError) {
	src, f, aerr := s.open(srcBucket, srcName)
	if aerr != nil {
		return nil, aerr
	}
	defer f.Close()
	if _, ok := s.bucketInfo(dstBucket); !ok {
		return nil, errNoSuchBucket()
	}
	tmp := filepath.Join(s.dir, "tmp", "copy-"+newID())
	if err := os.Link(src.path, tmp); err != nil {
		st, err := s.stage(f)
		if err != nil {
			return nil, errInternal()
		}
		tmp = st.path
	}
	dst := src
	dst.ID, dst.Bucket, dst.Name = "", dstBucket, dstName
	dst.UserMetadata = maps.Clone(src.UserMetadata)
	if meta != nil {
		dst.UserMetadata = meta
	}
	if aerr := s.commit(&dst, tmp, upsert); aerr != nil {
		return nil, aerr
	}
	if move {
		s.remove(srcBucket, srcName)
	}
	return &dst, nil
}
