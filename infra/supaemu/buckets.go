package supaemu

import (
	"encoding/json"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// validBucketName is the server's rule for bucket names.
var validBucketName = regexp.MustCompile(`^[A-Za-z0-9_!.*'() &$=@;:+,?-]+$`)

// bucketRequest is the body of POST /bucket and PUT /bucket/{id}.
type bucketRequest struct {
	ID               string          `json:"id"`
	Name             string          `json:"name"`
	Public           bool            `json:"public"`
	FileSizeLimit    json.RawMessage `json:"file_size_limit"`
	AllowedMimeTypes []string        `json:"allowed_mime_types"`
}

// sizeLimit reads file_size_limit: a number of bytes or a string such as
// "50MB" (decimal units, as the server's parseFileSizeToBytes). ok is false
// when the value cannot be read.
func (b bucketRequest) sizeLimit() (limit *int64, ok bool) {
	raw := strings.TrimSpace(string(b.FileSizeLimit))
	if raw == "" || raw == "null" {
		return nil, true
	}
	var n float64
	if json.Unmarshal(b.FileSizeLimit, &n) != nil {
		var s string
		if json.Unmarshal(b.FileSizeLimit, &s) != nil {
			return nil, false
		}
		m := regexp.MustCompile(`(?i)^([0-9]+(?:\.[0-9]+)?)(gb|mb|kb|b)$`).FindStringSubmatch(s)
		if m == nil {
			return nil, false
		}
		n, _ = strconv.ParseFloat(m[1], 64)
		n *= map[string]float64{"gb": 1e9, "mb": 1e6, "kb": 1e3, "b": 1}[strings.ToLower(m[2])]
	}
	v := int64(n)
	return &v, true
}

func (s *Server) createBucket(w http.ResponseWriter, r *http.Request) {
	var req bucketRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Name == "" {
		errInvalidRequest("body must have required property 'name'").write(w, r)
		return
	}
	if req.ID == "" {
		req.ID = req.Name
	}
	limit, ok := req.sizeLimit()
	if !validBucketName.MatchString(req.ID) || !ok {
		errInvalidRequest("Bucket name invalid").write(w, r)
		return
	}
	if !isService(r) {
		errRLS().write(w, r)
		return
	}
	s.store.mu.Lock()
	if s.store.buckets[req.ID] != nil {
		s.store.mu.Unlock()
		errBucketAlreadyExists().write(w, r)
		return
	}
	now := time.Now()
	s.store.buckets[req.ID] = &bucket{ID: req.ID, Public: req.Public, FileSizeLimit: limit,
		AllowedMimeTypes: req.AllowedMimeTypes, Created: now, Updated: now, objects: map[string]*object{}}
	s.store.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]string{"name": req.ID})
}

func (s *Server) listBuckets(w http.ResponseWriter, r *http.Request) {
	out := []map[string]any{}
	if isService(r) {
		s.store.mu.RLock()
		for _, b := range s.store.buckets {
			out = append(out, b.json())
		}
		s.store.mu.RUnlock()
	}
	sort.Slice(out, func(i, j int) bool { return out[i]["id"].(string) < out[j]["id"].(string) })
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getBucket(w http.ResponseWriter, r *http.Request) {
	b, ok := s.store.bucketInfo(r.PathValue("id"))
	if !ok || !isService(r) {
		errNoSuchBucket().write(w, r)
		return
	}
	writeJSON(w, http.StatusOK, b.json())
}

func (s *Server) updateBucket(w http.ResponseWriter, r *http.Request) {
	var req bucketRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		errInvalidRequest("invalid body").write(w, r)
		return
	}
	limit, ok := req.sizeLimit()
	if !ok {
		errInvalidRequest("Invalid file size limit").write(w, r)
		return
	}
	s.store.mu.Lock()
	b := s.store.buckets[r.PathValue("id")]
	if b == nil || !isService(r) {
		s.store.mu.Unlock()
		errNoSuchBucket().write(w, r)
		return
	}
	b.Public, b.FileSizeLimit, b.AllowedMimeTypes, b.Updated = req.Public, limit, req.AllowedMimeTypes, time.Now()
	s.store.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]string{"message": "Successfully updated"})
}

func (s *Server) deleteBucket(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.store.mu.Lock()
	b := s.store.buckets[id]
	switch {
	case b == nil || !isService(r):
		s.store.mu.Unlock()
		errNoSuchBucket().write(w, r)
		return
	case len(b.objects) > 0:
		s.store.mu.Unlock()
		errBucketNotEmpty().write(w, r)
		return
	}
	delete(s.store.buckets, id)
	s.store.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]string{"message": "Successfully deleted"})
}

// emptyBucket handles POST /bucket/{id}/empty. The real server queues the
// work; here it is done before the answer.
func (s *Server) emptyBucket(w http.ResponseWriter, r *http.Request) {
	s.store.mu.Lock()
	b := s.store.buckets[r.PathValue("id")]
	if b == nil || !isService(r) {
		s.store.mu.Unlock()
		errNoSuchBucket().write(w, r)
		return
	}
	gone := b.objects
	b.objects = map[string]*object{}
	s.store.mu.Unlock()
	for _, o := range gone {
		os.Remove(o.path)
	}
	writeJSON(w, http.StatusOK, map[string]string{"message": "Empty bucket has been queued. Completion may take up to an hour."})
}
