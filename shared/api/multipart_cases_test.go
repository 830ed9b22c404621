package api_test

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"

	"github.com/wedsync/backup-replication/shared/api"
	"github.com/wedsync/backup-replication/shared/catalog"
)

// TestMultipartRequestsRefused: /complete and /parts answer malformed or
// out-of-place requests with the documented status and code, and a backup
// of another organisation exactly like a missing one. Parts that were
// never uploaded are refused by the storage (409 upload_incomplete), and
// the backup stays PENDING.
func TestMultipartRequestsRefused(t *testing.T) {
	const partSize = 8 << 20
	e := newEnv(t, func(c *api.Config, _ *api.Deps) {
		c.MultipartThreshold, c.PartSize, c.PartURLBatch = partSize, partSize, 2
	})
	sum := sha256.Sum256([]byte("declared, never sent"))
	req := map[string]any{"organizationId": "org1", "name": "film.mp4", "size": 3*partSize + 1, "sha256": hex.EncodeToString(sum[:]),
		"contentType": "video/mp4", "idempotencyKey": "film"}
	out := e.create("org1", req, http.StatusCreated)
	mp := out.Upload.Multipart
	if mp == nil || mp.PartCount != 4 || len(mp.Parts) != 2 {
		t.Fatalf("want a 4-part upload with 2 URLs, got %+v", out.Upload)
	}
	id := out.Backup.ID
	parts := func(etags ...string) []map[string]any {
		var ps []map[string]any
		for i, e := range etags {
			ps = append(ps, map[string]any{"partNumber": i + 1, "etag": e})
		}
		return ps
	}
	good := parts(`"a"`, `"b"`, `"c"`, `"d"`)
	cases := []struct {
		name, path, org string
		body            any
		status          int
		code            string
	}{
		{"complete: empty upload id", "/complete", "org1", map[string]any{"uploadId": "", "parts": good}, 400, api.CodeInvalidUploadID},
		{"complete: upload id with a space", "/complete", "org1", map[string]any{"uploadId": "a b", "parts": good}, 400, api.CodeInvalidUploadID},
		{"complete: upload id too long", "/complete", "org1", map[string]any{"uploadId": strings.Repeat("u", 1025), "parts": good}, 400, api.CodeInvalidUploadID},
		{"complete: parts out of order", "/complete", "org1", map[string]any{"uploadId": mp.UploadID, "parts": []map[string]any{
			{"partNumber": 2, "etag": `"b"`}, {"partNumber": 1, "etag": `"a"`}, {"partNumber": 3, "etag": `"c"`}, {"partNumber": 4, "etag": `"d"`}}}, 400, api.CodeInvalidParts},
		{"complete: empty etag", "/complete", "org1", map[string]any{"uploadId": mp.UploadID, "parts": parts(`"a"`, "", `"c"`, `"d"`)}, 400, api.CodeInvalidParts},
		{"complete: etag too long", "/complete", "org1", map[string]any{"uploadId": mp.UploadID, "parts": parts(`"a"`, strings.Repeat("e", 129), `"c"`, `"d"`)}, 400, api.CodeInvalidParts},
		{"complete: unknown field", "/complete", "org1", map[string]any{"uploadId": mp.UploadID, "parts": good, "force": true}, 400, api.CodeUnknownField},
		{"complete: not JSON", "/complete", "org1", `{"uploadId":`, 400, api.CodeInvalidJSON},
		{"complete: parts never uploaded", "/complete", "org1", map[string]any{"uploadId": mp.UploadID, "parts": good}, 409, api.CodeUploadIncomplete},
		{"complete: another organisation", "/complete", "org2", map[string]any{"uploadId": mp.UploadID, "parts": good}, 404, api.CodeNotFound},
		{"parts: from 0", "/parts", "org1", map[string]any{"uploadId": mp.UploadID, "from": 0, "count": 1}, 400, api.CodeInvalidParts},
		{"parts: from past the last", "/parts", "org1", map[string]any{"uploadId": mp.UploadID, "from": 5, "count": 1}, 400, api.CodeInvalidParts},
		{"parts: more than a batch", "/parts", "org1", map[string]any{"uploadId": mp.UploadID, "from": 1, "count": 3}, 400, api.CodeInvalidParts},
		{"parts: bad upload id", "/parts", "org1", map[string]any{"uploadId": "\u00e9", "from": 1, "count": 1}, 400, api.CodeInvalidUploadID},
		{"parts: another organisation", "/parts", "org2", map[string]any{"uploadId": mp.UploadID, "from": 3, "count": 2}, 404, api.CodeNotFound},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.call("POST", "/backups/"+id+c.path, c.org, c.body)
			if r.Status != c.status || r.code() != c.code {
				t.Fatalf("%d %s, want %d %s", r.Status, r.Body, c.status, c.code)
			}
		})
	}
	r := e.call("POST", "/backups/"+id+"/parts", "org1", map[string]any{"uploadId": mp.UploadID, "from": 3, "count": 2})
	var fresh struct{ Parts []api.PartURL }
	r.decode(t, &fresh)
	if r.Status != 200 || len(fresh.Parts) != 2 || fresh.Parts[1].PartNumber != 4 || fresh.Parts[1].Size != 1 {
		t.Fatalf("the last two part URLs: %d %s; want parts 3 and 4 (1 byte)", r.Status, r.Body)
	}
	if b, err := e.store.GetBackup(t.Context(), id); err != nil || b.Status != catalog.StatusPending {
		t.Fatalf("backup after refused completions: %+v, %v; want PENDING", b.Status, err)
	}
	if _, ok := e.landed(out.Backup.LandingKey); ok {
		t.Fatal("an object landed although no completion succeeded")
	}

	// Once the bytes have landed, no more part URLs are handed out; a
	// single-PUT backup never had any.
	b, _ := e.store.GetBackup(t.Context(), id)
	b.Status = catalog.StatusReplicating
	if _, err := e.store.UpdateBackup(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	if r := e.call("POST", "/backups/"+id+"/parts", "org1", map[string]any{"uploadId": mp.UploadID, "from": 1, "count": 1}); r.Status != 409 || r.code() != api.CodeConflict {
		t.Fatalf("parts after landing: %d %s, want 409 conflict", r.Status, r.Body)
	}
	small := e.create("org1", createReq("org1", "small.zip", []byte("s")), http.StatusCreated)
	if r := e.call("POST", "/backups/"+small.Backup.ID+"/parts", "org1", map[string]any{"uploadId": "u", "from": 1, "count": 1}); r.Status != 409 || r.code() != api.CodeNotMultipart {
		t.Fatalf("parts of a single-PUT backup: %d %s, want 409 not_multipart", r.Status, r.Body)
	}
}
