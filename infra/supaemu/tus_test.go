package supaemu

import (
	"bytes"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// tusMeta encodes an Upload-Metadata header.
func tusMeta(kv ...string) string {
	var parts []string
	for i := 0; i+1 < len(kv); i += 2 {
		parts = append(parts, kv[i]+" "+base64.StdEncoding.EncodeToString([]byte(kv[i+1])))
	}
	return strings.Join(parts, ",")
}

// create starts a TUS upload of size bytes and returns its URL path
// relative to /storage/v1.
func (e *env) create(name string, size int64, kv ...string) reply {
	e.t.Helper()
	h := e.auth(append([]string{"Tus-Resumable", "1.0.0", "Upload-Length", strconv.FormatInt(size, 10),
		"Upload-Metadata", tusMeta("bucketName", "b", "objectName", name, "contentType", "application/x-test",
			"cacheControl", "3600", "metadata", `{"sha256":"feed"}`)}, kv...)...)
	return e.do("POST", "/upload/resumable", h, "")
}

func (e *env) patch(loc string, off int64, chunk []byte, kv ...string) reply {
	e.t.Helper()
	h := e.auth(append([]string{"Tus-Resumable", "1.0.0", "Upload-Offset", strconv.FormatInt(off, 10),
		"Content-Type", "application/offset+octet-stream"}, kv...)...)
	return e.do("PATCH", loc, h, string(chunk))
}

// relative turns a Location into a path under /storage/v1.
func (e *env) relative(loc string) string {
	e.t.Helper()
	rel, ok := strings.CutPrefix(loc, e.url)
	if !ok || !strings.HasPrefix(rel, "/upload/resumable/") {
		e.t.Fatalf("Location %q is not under %s/upload/resumable/", loc, e.url)
	}
	return rel
}

// multipartETag is the S3 ETag of data cut into parts of size part.
func multipartETag(data []byte, part int) string {
	var digests []byte
	n := 0
	for off := 0; off < len(data); off += part {
		s := md5.Sum(data[off:min(off+part, len(data))])
		digests = append(digests, s[:]...)
		n++
	}
	s := md5.Sum(digests)
	return `"` + hex.EncodeToString(s[:]) + "-" + strconv.Itoa(n) + `"`
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

func TestTUSUpload(t *testing.T) {
	for _, part := range []int64{0, 5 << 20} {
		t.Run("part="+strconv.FormatInt(part, 10), func(t *testing.T) {
			e := newEnv(t, Config{PartSize: part})
			data := pattern(2*DefaultChunkSize + 1)
			r := e.must(e.create("big.bin", int64(len(data))), 201)
			loc := e.relative(r.header.Get("Location"))

			e.must(e.patch(loc, 0, data[:DefaultChunkSize]), 204)
			r = e.must(e.do("HEAD", loc, e.auth("Tus-Resumable", "1.0.0"), ""), 200)
			if r.header.Get("Upload-Offset") != strconv.Itoa(DefaultChunkSize) || r.header.Get("Upload-Length") != strconv.Itoa(len(data)) {
				t.Errorf("HEAD: Upload-Offset %s Upload-Length %s", r.header.Get("Upload-Offset"), r.header.Get("Upload-Length"))
			}
			// Not visible before the last byte.
			e.must(e.do("GET", "/object/b/big.bin", e.auth(), ""), 400)

			e.must(e.patch(loc, DefaultChunkSize, data[DefaultChunkSize:2*DefaultChunkSize]), 204)
			r = e.must(e.patch(loc, 2*DefaultChunkSize, data[2*DefaultChunkSize:]), 204)
			if r.header.Get("Tus-Complete") != "1" || r.header.Get("Upload-Offset") != strconv.Itoa(len(data)) {
				t.Errorf("final PATCH: Tus-Complete %q Upload-Offset %q", r.header.Get("Tus-Complete"), r.header.Get("Upload-Offset"))
			}
			r = e.must(e.do("GET", "/object/b/big.bin", e.auth(), ""), 200)
			if !bytes.Equal(r.body, data) {
				t.Errorf("object has %d bytes that differ from the %d uploaded", len(r.body), len(data))
			}
			wantPart := int(part)
			if wantPart == 0 {
				wantPart = DefaultChunkSize
			}
			if et := r.header.Get("ETag"); et != multipartETag(data, wantPart) {
				t.Errorf("ETag %s, want %s", et, multipartETag(data, wantPart))
			}
			info := e.info("big.bin")
			if info["content_type"] != "application/x-test" || info["cache_control"] != "max-age=3600" ||
				string(mustJSON(info["metadata"])) != `{"sha256":"feed"}` {
				t.Errorf("info %v", info)
			}
			// A completed upload still answers HEAD, with offset = length.
			r = e.must(e.do("HEAD", loc, e.auth("Tus-Resumable", "1.0.0"), ""), 200)
			if r.header.Get("Upload-Offset") != strconv.Itoa(len(data)) {
				t.Errorf("HEAD after completion: Upload-Offset %s", r.header.Get("Upload-Offset"))
			}
		})
	}
}

func TestTUSRules(t *testing.T) {
	e := newEnv(t, Config{})
	t.Run("chunk of the wrong size", func(t *testing.T) {
		e.t = t
		loc := e.relative(e.must(e.create("chunks.bin", 3*DefaultChunkSize), 201).header.Get("Location"))
		e.must(e.patch(loc, 0, pattern(1<<20)), 400)
		e.must(e.patch(loc, 0, pattern(DefaultChunkSize+1)), 400)
		e.must(e.patch(loc, 0, pattern(DefaultChunkSize)), 204)
	})
	t.Run("last chunk may be short", func(t *testing.T) {
		e.t = t
		loc := e.relative(e.must(e.create("small.bin", 10), 201).header.Get("Location"))
		e.must(e.patch(loc, 0, pattern(10)), 204)
		e.must(e.do("GET", "/object/b/small.bin", e.auth(), ""), 200)
	})
	t.Run("wrong offset", func(t *testing.T) {
		e.t = t
		loc := e.relative(e.must(e.create("offset.bin", 10), 201).header.Get("Location"))
		e.must(e.patch(loc, 5, pattern(5)), 409)
	})
	t.Run("no authorization", func(t *testing.T) {
		e.t = t
		r := e.do("POST", "/upload/resumable", http.Header{"Tus-Resumable": {"1.0.0"}, "Upload-Length": {"1"}}, "")
		if r.status != 400 || !strings.Contains(string(r.body), "InvalidRequest") {
			t.Errorf("%d %s, want the missing-authorization body", r.status, r.body)
		}
	})
	t.Run("existing object without x-upsert", func(t *testing.T) {
		e.t = t
		if r := e.create("exists.txt", 3); r.status != 409 || string(r.body) != "The resource already exists" {
			t.Errorf("%d %q, want 409 The resource already exists", r.status, r.body)
		}
	})
	t.Run("existing object with x-upsert", func(t *testing.T) {
		e.t = t
		loc := e.relative(e.must(e.create("exists.txt", 3, "X-Upsert", "true"), 201).header.Get("Location"))
		e.must(e.patch(loc, 0, []byte("new"), "X-Upsert", "true"), 204)
		if r := e.must(e.do("GET", "/object/b/exists.txt", e.auth(), ""), 200); string(r.body) != "new" {
			t.Errorf("after upsert the object is %q", r.body)
		}
	})
	t.Run("missing bucket", func(t *testing.T) {
		e.t = t
		h := e.auth("Tus-Resumable", "1.0.0", "Upload-Length", "1", "Upload-Metadata", tusMeta("bucketName", "nob", "objectName", "x"))
		if r := e.do("POST", "/upload/resumable", h, ""); r.status != 404 {
			t.Errorf("%d %q, want 404", r.status, r.body)
		}
	})
	t.Run("anon", func(t *testing.T) {
		e.t = t
		h := e.auth("Tus-Resumable", "1.0.0", "Upload-Length", "1", "Upload-Metadata", tusMeta("bucketName", "b", "objectName", "anon"))
		h.Set("Authorization", "Bearer "+e.anon)
		if r := e.do("POST", "/upload/resumable", h, ""); r.status != 403 {
			t.Errorf("%d %q, want 403", r.status, r.body)
		}
	})
}
