package api

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wedsync/backup-replication/shared/storage"
)

// FuzzCreateBackupRequest feeds arbitrary bodies to the POST /backups
// decoder and validator: no panic, every refusal has a known code and a
// client status, and whatever is accepted is safe to build a key and a
// presigned request from.
func FuzzCreateBackupRequest(f *testing.F) {
	sum := strings.Repeat("ab", 32)
	for _, s := range []string{
		`{"organizationId":"org1","name":"wedding.zip","size":10,"sha256":"` + sum + `","contentType":"application/zip","idempotencyKey":"k1"}`,
		`{"organizationId":"org1","name":"guests.csv","size":0,"sha256":"` + sum + `","contentType":"text/csv; charset=UTF-8","idempotencyKey":"k"}`,
		`{"organizationId":"../x","name":"a/../b","size":-1,"sha256":"Z","contentType":"multipart/form-data","idempotencyKey":""}`,
		`{"name":"\u202Eexe.pdf","size":1e400}`, `{"size":"1"}`, `{} {}`, `[]`, `null`, ``, `{"x":1}`,
		`{"organizationId":"o","name":"n","size":1,"sha256":"` + sum + `","contentType":"image/jpeg","idempotencyKey":"k","organizationId":"p"}`,
	} {
		f.Add([]byte(s))
	}
	known := map[string]bool{}
	for _, c := range fieldCodes {
		known[c] = true
	}
	for _, c := range []string{CodeInvalidJSON, CodeBodyTooLarge, CodeUnknownField, CodeTrailingData} {
		known[c] = true
	}
	const maxSize = 1 << 40
	f.Fuzz(func(t *testing.T, body []byte) {
		var req CreateBackupRequest
		rd := http.MaxBytesReader(httptest.NewRecorder(), io.NopCloser(strings.NewReader(string(body))), MaxBodyBytes)
		e := decodeBody(rd, &req)
		if e == nil {
			e = req.validate(maxSize)
		}
		if e != nil {
			if !known[e.Code] || e.Message == "" || (e.Status != 400 && e.Status != 413) {
				t.Fatalf("refusal %d %q %q", e.Status, e.Code, e.Message)
			}
			return
		}
		if !ValidID(req.OrganizationID) || nameProblem(req.Name) != "" || strings.ContainsAny(req.Name, "/\\\x00") ||
			req.Size == nil || *req.Size < 0 || *req.Size > maxSize || !storage.ValidSHA256(req.SHA256) ||
			!validIdempotencyKey(req.IdempotencyKey) {
			t.Fatalf("accepted an invalid request %+v", req)
		}
		if ct, msg := canonicalContentType(req.ContentType); msg != "" || ct != req.ContentType {
			t.Fatalf("content type %q is not canonical (%q, %q)", req.ContentType, ct, msg)
		}
		if key := LandingKey(req.OrganizationID, NewID(time.Now())); strings.Contains(key, "..") || strings.Count(key, "/") != 2 {
			t.Fatalf("key %q", key)
		}
	})
}

func TestNewID(t *testing.T) {
	seen := map[string]bool{}
	prev := ""
	base := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	for i := range 2000 {
		id := NewID(base.Add(time.Duration(i) * time.Millisecond))
		if len(id) != 26 || !ValidID(id) || seen[id] {
			t.Fatalf("id %q (len %d) invalid or repeated", id, len(id))
		}
		if id <= prev {
			t.Fatalf("id %q made later sorts before %q", id, prev)
		}
		seen[id], prev = true, id
	}
	if a, b := NewID(base), NewID(base); a[:10] != b[:10] || a == b {
		t.Fatalf("same millisecond: %s %s", a, b)
	}
	if id := NewID(time.Date(10889, 8, 2, 5, 31, 50, 655e6, time.UTC)); id[:10] != "7ZZZZZZZZZ" {
		t.Fatalf("largest timestamp encodes as %s", id[:10])
	}
}
