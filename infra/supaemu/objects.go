package supaemu

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// maxUserMetadata is the server's limit on a metadata form field.
const maxUserMetadata = 1 << 20

// upload handles POST and PUT /object/{bucket}/{key...}: a raw body, or
// multipart/form-data as storage-js sends it (fields cacheControl,
// contentType, metadata, and one file part). PUT always overwrites; POST
// overwrites only with x-upsert: true. Nothing is visible until the whole
// body has arrived.
func (s *Server) upload(w http.ResponseWriter, r *http.Request) {
	bucketID, name := r.PathValue("bucket"), r.PathValue("key")
	upsert := r.Method == http.MethodPut || r.Header.Get("X-Upsert") == "true"
	if !isValidKey(name) {
		errInvalidKey(name).write(w, r)
		return
	}
	b, ok := s.store.bucketInfo(bucketID)
	if !ok {
		errNoSuchBucket().write(w, r)
		return
	}
	if !isService(r) {
		errRLS().write(w, r)
		return
	}
	if _, aerr := s.store.stat(bucketID, name); aerr == nil && !upsert {
		errKeyAlreadyExists().write(w, r)
		return
	}
	limit := s.sizeLimit(b)
	if limit > 0 && r.ContentLength > limit && !isMultipart(r) {
		errEntityTooLarge().write(w, r)
		return
	}
	o := &object{Bucket: bucketID, Name: name}
	var st *staged
	var aerr *apiError
	if isMultipart(r) {
		st, aerr = s.stageForm(r, o, limit)
	} else {
		o.Mimetype = r.Header.Get("Content-Type")
		if o.Mimetype == "" {
			o.Mimetype = "application/octet-stream"
		}
		o.CacheControl = r.Header.Get("Cache-Control")
		if o.CacheControl == "" {
			o.CacheControl = "no-cache"
		}
		if md := r.Header.Get("X-Metadata"); md != "" {
			o.UserMetadata = parseUserMetadata(md)
		}
		st, aerr = s.stageBody(r.Body, limit)
		if aerr == nil && r.ContentLength >= 0 && st.size != r.ContentLength {
			st.discard()
			aerr = errInvalidRequest("Request stream closed before upload could complete")
		}
	}
	if aerr != nil {
		aerr.write(w, r)
		return
	}
	o.Size, o.ETag = st.size, st.etag()
	if aerr := s.store.commit(o, st.path, upsert); aerr != nil {
		aerr.write(w, r)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"Id": o.ID, "Key": bucketID + "/" + name})
}

func isMultipart(r *http.Request) bool {
	return strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/form-data")
}

// sizeLimit is the smaller of the bucket's and the server's limits; 0 is none.
func (s *Server) sizeLimit(b bucket) int64 {
	limit := s.cfg.MaxFileSize
	if b.FileSizeLimit != nil && *b.FileSizeLimit > 0 && (limit <= 0 || *b.FileSizeLimit < limit) {
		limit = *b.FileSizeLimit
	}
	return limit
}

// stageBody writes r to a temporary file, failing with EntityTooLarge past
// limit and with a request error when the client goes away mid-body.
func (s *Server) stageBody(r io.Reader, limit int64) (*staged, *apiError) {
	if limit > 0 {
		r = io.LimitReader(r, limit+1)
	}
	st, err := s.store.stage(r)
	if err != nil {
		return nil, errInvalidRequest("Request stream closed before upload could complete")
	}
	if limit > 0 && st.size > limit {
		st.discard()
		return nil, errEntityTooLarge()
	}
	return st, nil
}

// stageForm reads a multipart/form-data upload, streaming its file part.
func (s *Server) stageForm(r *http.Request, o *object, limit int64) (*staged, *apiError) {
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, errInvalidRequest("No content provided")
	}
	fields := map[string]string{}
	var st *staged
	var fileType string
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			if st != nil {
				st.discard()
			}
			return nil, errInvalidRequest("No content provided")
		}
		if part.FileName() == "" && part.FormName() != "" || st != nil {
			v, _ := io.ReadAll(io.LimitReader(part, maxUserMetadata+1))
			if len(v) > maxUserMetadata {
				return nil, errEntityTooLarge()
			}
			fields[part.FormName()] = string(v)
			continue
		}
		fileType = part.Header.Get("Content-Type")
		var aerr *apiError
		if st, aerr = s.stageBody(part, limit); aerr != nil {
			return nil, aerr
		}
	}
	if st == nil {
		return nil, errInvalidRequest("No content provided")
	}
	o.Mimetype = fields["contentType"]
	if o.Mimetype == "" {
		o.Mimetype = fileType
	}
	if o.Mimetype == "" {
		o.Mimetype = "text/plain;charset=UTF-8"
	}
	o.CacheControl = "no-cache"
	if v := fields["cacheControl"]; v != "" {
		o.CacheControl = "max-age=" + v
	}
	md, ok := fields["metadata"]
	if !ok {
		md = fields["userMetadata"]
	}
	if md != "" {
		var m map[string]any
		if json.Unmarshal([]byte(md), &m) == nil {
			o.UserMetadata = m
		}
	}
	return st, nil
}

// parseUserMetadata decodes an x-metadata header: base64 of a JSON object.
// Anything else is ignored, as the server ignores it.
func parseUserMetadata(h string) map[string]any {
	b, err := base64.StdEncoding.DecodeString(h)
	if err != nil {
		return nil
	}
	var m map[string]any
	if json.Unmarshal(b, &m) != nil {
		return nil
	}
	return m
}

// download handles GET and HEAD /object/{bucket}/{key...} and the same under
// /object/authenticated/.
func (s *Server) download(w http.ResponseWriter, r *http.Request) {
	if !isService(r) {
		errNoSuchKey().write(w, r) // row-level security hides the object
		return
	}
	o, f, aerr := s.store.open(r.PathValue("bucket"), r.PathValue("key"))
	if aerr != nil {
		aerr.write(w, r)
		return
	}
	defer f.Close()
	serveObject(w, r, o, f, "")
}

// serveObject sends the object's bytes (or a single range of them) with the
// headers the server's asset renderer sets. expires, when set, replaces
// Cache-Control (signed URLs).
func serveObject(w http.ResponseWriter, r *http.Request, o object, f *os.File, expires string) {
	start, n, partial, ok := parseRange(r.Header.Get("Range"), o.Size)
	if !ok {
		errInvalidRange().write(w, r)
		return
	}
	h := w.Header()
	h.Set("Accept-Ranges", "bytes")
	h.Set("Content-Type", o.Mimetype)
	h.Set("ETag", o.ETag)
	h.Set("X-Robots-Tag", "none")
	h.Set("Last-Modified", o.Updated.UTC().Format(http.TimeFormat))
	if expires != "" {
		h.Set("Expires", expires)
	} else if o.CacheControl != "" {
		h.Set("Cache-Control", o.CacheControl)
	}
	h.Set("Content-Length", strconv.FormatInt(n, 10))
	status := http.StatusOK
	if partial {
		h.Set("Content-Range", "bytes "+strconv.FormatInt(start, 10)+"-"+strconv.FormatInt(start+n-1, 10)+"/"+strconv.FormatInt(o.Size, 10))
		status = http.StatusPartialContent
	}
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		io.Copy(w, io.NewSectionReader(f, start, n))
	}
}

// parseRange reads a single "bytes=" range. A header it cannot read, or one
// with several ranges, is ignored (the whole object is sent); a range that
// starts past the end, or any range of an empty object, is unsatisfiable.
func parseRange(h string, size int64) (start, n int64, partial, ok bool) {
	spec, found := strings.CutPrefix(h, "bytes=")
	if h == "" || !found || strings.Contains(spec, ",") {
		return 0, size, false, true
	}
	a, b, _ := strings.Cut(strings.TrimSpace(spec), "-")
	if a == "" {
		suffix, err := strconv.ParseInt(b, 10, 64)
		if err != nil {
			return 0, size, false, true
		}
		if suffix == 0 || size == 0 {
			return 0, 0, false, false
		}
		suffix = min(suffix, size)
		return size - suffix, suffix, true, true
	}
	first, err := strconv.ParseInt(a, 10, 64)
	if err != nil || first < 0 {
		return 0, size, false, true
	}
	last := size - 1
	if b != "" {
		if last, err = strconv.ParseInt(b, 10, 64); err != nil || last < first {
			return 0, size, false, true
		}
	}
	if first >= size {
		return 0, 0, false, false
	}
	last = min(last, size-1)
	return first, last - first + 1, true, true
}

// info handles GET /object/info/{bucket}/{key...} (where a missing or bad
// token makes the caller anonymous) and /object/info/authenticated/…
// (where it is refused).
func (s *Server) info(w http.ResponseWriter, r *http.Request) {
	bucketID, name := r.PathValue("bucket"), r.PathValue("key")
	b, ok := s.store.bucketInfo(bucketID)
	if !ok || (!authenticated(r) && !b.Public) {
		errNoSuchBucket().write(w, r)
		return
	}
	if !isService(r) && !b.Public {
		errNoSuchKey().write(w, r)
		return
	}
	o, aerr := s.store.stat(bucketID, name)
	if aerr != nil {
		aerr.write(w, r)
		return
	}
	w.Header().Set("ETag", o.ETag)
	w.Header().Set("Cache-Control", o.CacheControl)
	w.Header().Set("Last-Modified", o.Updated.UTC().Format(http.TimeFormat))
	writeJSON(w, http.StatusOK, map[string]any{
		"id": o.ID, "name": o.Name, "version": o.ID, "bucket_id": o.Bucket, "size": o.Size,
		"content_type": o.Mimetype, "cache_control": o.CacheControl, "etag": o.ETag,
		"metadata": o.UserMetadata, "last_modified": o.Updated.UTC().Format(time.RFC3339Nano),
		"created_at": o.Created.UTC().Format(time.RFC3339Nano),
	})
}

// deleteOne handles DELETE /object/{bucket}/{key...}.
func (s *Server) deleteOne(w http.ResponseWriter, r *http.Request) {
	if !isService(r) {
		errNoSuchKey().write(w, r)
		return
	}
	gone, aerr := s.store.remove(r.PathValue("bucket"), r.PathValue("key"))
	if aerr == nil && len(gone) == 0 {
		aerr = errNoSuchKey()
	}
	if aerr != nil {
		aerr.write(w, r)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"message": "Successfully deleted"})
}

// deleteMany handles DELETE /object/{bucket} with {"prefixes":[names]}: it
// deletes the named objects that exist and returns their rows ([] when none
// matched, or the bucket does not exist).
func (s *Server) deleteMany(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Prefixes []string `json:"prefixes"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Prefixes == nil {
		errInvalidRequest("body must have required property 'prefixes'").write(w, r)
		return
	}
	rows := []map[string]any{}
	if isService(r) {
		gone, _ := s.store.remove(r.PathValue("bucket"), body.Prefixes...)
		for _, o := range gone {
			rows = append(rows, o.row())
		}
	}
	writeJSON(w, http.StatusOK, rows)
}

// moveCopyRequest is the body of POST /object/move and /object/copy.
type moveCopyRequest struct {
	BucketID          string `json:"bucketId"`
	SourceKey         string `json:"sourceKey"`
	DestinationKey    string `json:"destinationKey"`
	DestinationBucket string `json:"destinationBucket"`
	CopyMetadata      *bool  `json:"copyMetadata"`
}

// moveOrCopy handles POST /object/move and /object/copy.
func (s *Server) moveOrCopy(move bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req moveCopyRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.BucketID == "" || req.SourceKey == "" || req.DestinationKey == "" {
			errInvalidRequest("body must have required properties 'bucketId', 'sourceKey', 'destinationKey'").write(w, r)
			return
		}
		if !isValidKey(req.DestinationKey) {
			errInvalidKey(req.DestinationKey).write(w, r)
			return
		}
		if !isService(r) {
			errNoSuchKey().write(w, r)
			return
		}
		dstBucket := req.DestinationBucket
		if dstBucket == "" {
			dstBucket = req.BucketID
		}
		var meta map[string]any
		if md := r.Header.Get("X-Metadata"); md != "" {
			meta = parseUserMetadata(md)
		} else if req.CopyMetadata != nil && !*req.CopyMetadata {
			meta = map[string]any{}
		}
		upsert := !move && r.Header.Get("X-Upsert") == "true"
		o, aerr := s.store.duplicate(req.BucketID, req.SourceKey, dstBucket, req.DestinationKey, upsert, move, meta)
		if aerr != nil {
			aerr.write(w, r)
			return
		}
		if move {
			writeJSON(w, http.StatusOK, map[string]string{"message": "Successfully moved"})
			return
		}
		row := o.row()
		row["Id"], row["Key"] = o.ID, dstBucket+"/"+o.Name
		writeJSON(w, http.StatusOK, row)
	}
}
