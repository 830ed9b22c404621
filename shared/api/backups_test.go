package api_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/wedsync/backup-replication/shared/api"
	"github.com/wedsync/backup-replication/shared/catalog"
)

func TestCreateValidation(t *testing.T) {
	e := newEnv(t, func(c *api.Config, _ *api.Deps) { c.MaxSize = 1 << 30 })
	valid := func(mod func(m map[string]any)) map[string]any {
		m := createReq("org1", "wedding.zip", []byte("x"))
		mod(m)
		return m
	}
	cases := []struct {
		name   string
		body   any
		status int
		code   string
	}{
		{"organizationId empty", valid(func(m map[string]any) { m["organizationId"] = "" }), 400, api.CodeInvalidOrganizationID},
		{"organizationId with slash", valid(func(m map[string]any) { m["organizationId"] = "org/1" }), 400, api.CodeInvalidOrganizationID},
		{"organizationId too long", valid(func(m map[string]any) { m["organizationId"] = strings.Repeat("a", 65) }), 400, api.CodeInvalidOrganizationID},
		{"name missing", valid(func(m map[string]any) { delete(m, "name") }), 400, api.CodeInvalidName},
		{"name with slash", valid(func(m map[string]any) { m["name"] = "a/b.zip" }), 400, api.CodeInvalidName},
		{"name with backslash", valid(func(m map[string]any) { m["name"] = `a\b.zip` }), 400, api.CodeInvalidName},
		{"name dot dot", valid(func(m map[string]any) { m["name"] = ".." }), 400, api.CodeInvalidName},
		{"name with dot dot", valid(func(m map[string]any) { m["name"] = "a..zip" }), 400, api.CodeInvalidName},
		{"name with newline", valid(func(m map[string]any) { m["name"] = "a\nb" }), 400, api.CodeInvalidName},
		{"name with NUL", valid(func(m map[string]any) { m["name"] = "a\x00b" }), 400, api.CodeInvalidName},
		{"name with RTL override", valid(func(m map[string]any) { m["name"] = "invoice\u202Efdp.exe" }), 400, api.CodeInvalidName},
		{"name too long", valid(func(m map[string]any) { m["name"] = strings.Repeat("é", 256) }), 400, api.CodeInvalidName},
		{"name padded", valid(func(m map[string]any) { m["name"] = " a.zip" }), 400, api.CodeInvalidName},
		{"name not a string", valid(func(m map[string]any) { m["name"] = 7 }), 400, api.CodeInvalidName},
		{"name invalid UTF-8", `{"organizationId":"org1","name":"a` + "\xff" + `","size":1,"sha256":"` + strings.Repeat("a", 64) + `","contentType":"application/zip","idempotencyKey":"k"}`, 400, api.CodeInvalidName},
		{"size missing", valid(func(m map[string]any) { delete(m, "size") }), 400, api.CodeInvalidSize},
		{"size negative", valid(func(m map[string]any) { m["size"] = -1 }), 400, api.CodeInvalidSize},
		{"size over max", valid(func(m map[string]any) { m["size"] = 1<<30 + 1 }), 400, api.CodeInvalidSize},
		{"size fractional", valid(func(m map[string]any) { m["size"] = 1.5 }), 400, api.CodeInvalidSize},
		{"size a string", valid(func(m map[string]any) { m["size"] = "10" }), 400, api.CodeInvalidSize},
		{"sha256 uppercase", valid(func(m map[string]any) { m["sha256"] = strings.Repeat("A", 64) }), 400, api.CodeInvalidSHA256},
		{"sha256 short", valid(func(m map[string]any) { m["sha256"] = strings.Repeat("a", 63) }), 400, api.CodeInvalidSHA256},
		{"sha256 not hex", valid(func(m map[string]any) { m["sha256"] = strings.Repeat("g", 64) }), 400, api.CodeInvalidSHA256},
		{"contentType missing", valid(func(m map[string]any) { delete(m, "contentType") }), 400, api.CodeInvalidContentType},
		{"contentType garbage", valid(func(m map[string]any) { m["contentType"] = "zip" }), 400, api.CodeInvalidContentType},
		{"contentType form", valid(func(m map[string]any) { m["contentType"] = "application/x-www-form-urlencoded" }), 400, api.CodeInvalidContentType},
		{"contentType multipart", valid(func(m map[string]any) { m["contentType"] = "multipart/form-data; boundary=x" }), 400, api.CodeInvalidContentType},
		{"contentType other parameter", valid(func(m map[string]any) { m["contentType"] = "text/csv; name=x" }), 400, api.CodeInvalidContentType},
		{"idempotencyKey missing", valid(func(m map[string]any) { delete(m, "idempotencyKey") }), 400, api.CodeInvalidIdempotencyKey},
		{"idempotencyKey with space", valid(func(m map[string]any) { m["idempotencyKey"] = "a b" }), 400, api.CodeInvalidIdempotencyKey},
		{"idempotencyKey too long", valid(func(m map[string]any) { m["idempotencyKey"] = strings.Repeat("k", 129) }), 400, api.CodeInvalidIdempotencyKey},
		{"unknown field", valid(func(m map[string]any) { m["bucket"] = "other" }), 400, api.CodeUnknownField},
		{"trailing data", `{"organizationId":"org1"} {}`, 400, api.CodeTrailingData},
		{"not JSON", `organizationId=org1`, 400, api.CodeInvalidJSON},
		{"empty body", ``, 400, api.CodeInvalidJSON},
		{"an array", `[]`, 400, api.CodeInvalidJSON},
		{"body too large", `{"name":"` + strings.Repeat("a", api.MaxBodyBytes) + `"}`, 413, api.CodeBodyTooLarge},
		{"another organization", valid(func(m map[string]any) { m["organizationId"] = "org2" }), 403, api.CodeForbidden},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.call("POST", "/backups", "org1", tc.body)
			if r.Status != tc.status || r.code() != tc.code {
				t.Fatalf("got %d %s, want %d %s", r.Status, r.Body, tc.status, tc.code)
			}
		})
	}
	t.Run("every problem is listed", func(t *testing.T) {
		r := e.call("POST", "/backups", "org1", map[string]any{"organizationId": "org1", "name": "../x", "size": -5})
		var body struct {
			Error struct {
				Fields []struct{ Field, Code string }
			}
		}
		r.decode(t, &body)
		if len(body.Error.Fields) != 5 {
			t.Fatalf("want 5 field errors (name, size, sha256, contentType, idempotencyKey), got %s", r.Body)
		}
	})
	t.Run("form body refused", func(t *testing.T) {
		req, _ := http.NewRequest("POST", e.srv.URL+"/backups", strings.NewReader("a=b"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", "Bearer "+token(t, "org1", nil))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnsupportedMediaType {
			t.Fatalf("status %d, want 415", resp.StatusCode)
		}
	})
	t.Run("no raw error in any body", func(t *testing.T) {
		r := e.call("POST", "/backups", "org1", `{"size": 1e400}`)
		if strings.Contains(string(r.Body), "json:") || strings.Contains(string(r.Body), "Go value") {
			t.Fatalf("decoder internals leaked: %s", r.Body)
		}
	})
}

func TestCreateAndUploadSinglePut(t *testing.T) {
	e := newEnv(t, nil)
	for _, size := range []int{0, 1, 64 << 10} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			data := bytes.Repeat([]byte("wedding guest list;"), size/19+1)[:size]
			req := createReq("org1", fmt.Sprintf("guests-%d.csv", size), data)
			req["contentType"] = "text/csv; charset=UTF-8"
			out := e.create("org1", req, http.StatusCreated)
			b, up := out.Backup, out.Upload
			if !api.ValidID(b.ID) || len(b.ID) != 26 || b.Status != catalog.StatusPending ||
				b.LandingKey != "backups/org1/"+b.ID || b.ContentType != "text/csv; charset=utf-8" {
				t.Fatalf("backup %+v", b)
			}
			if up.Method != "PUT" || up.Multipart != nil || up.URL == "" {
				t.Fatalf("upload %+v", up)
			}
			sum := sha256.Sum256(data)
			if got := up.Headers["X-Amz-Checksum-Sha256"]; got != base64.StdEncoding.EncodeToString(sum[:]) {
				t.Fatalf("checksum header %q not bound to the declared sha256; headers %v", got, up.Headers)
			}
			// A 0-byte PUT cannot sign content-length (the SDK signs it only when
			// positive); the signed checksum of no bytes binds it instead.
			if up.Headers["Content-Length"] != fmt.Sprint(size) || (size > 0 && !strings.Contains(up.URL, "content-length")) {
				t.Fatalf("content length not bound: headers %v url %s", up.Headers, up.URL)
			}
			if !strings.Contains(up.URL, "X-Amz-Expires=900") {
				t.Fatalf("presigned URL does not expire in 15 minutes: %s", up.URL)
			}
			if st, _, body := put(t, up.Method, up.URL, up.Headers, data); st != 200 {
				t.Fatalf("PUT to presigned URL: %d %s", st, body)
			}
			got, ok := e.landed(b.LandingKey)
			if !ok || !bytes.Equal(got, data) {
				t.Fatalf("landing object: ok=%v, %d bytes, want %d", ok, len(got), len(data))
			}
		})
	}
	t.Run("bytes that do not match the declared sha256 are refused", func(t *testing.T) {
		data := []byte("the real contract")
		out := e.create("org1", createReq("org1", "contract.pdf", data), http.StatusCreated)
		st, _, _ := put(t, out.Upload.Method, out.Upload.URL, out.Upload.Headers, []byte("a forged contract"))
		if st == 200 {
			if _, ok := e.landed(out.Backup.LandingKey); ok {
				t.Skip("moto stores bytes whose x-amz-checksum-sha256 differs; AWS S3 answers 400 BadDigest")
			}
		}
	})
}

func TestCreateIdempotent(t *testing.T) {
	e := newEnv(t, nil)
	req := createReq("org1", "photos.zip", []byte("photos"))
	first := e.create("org1", req, http.StatusCreated)
	again := e.create("org1", req, http.StatusOK)
	if again.Backup.ID != first.Backup.ID || again.Upload.URL == "" {
		t.Fatalf("second create gave %+v, want backup %s with an upload URL", again, first.Backup.ID)
	}
	// The same key in another organization is another backup.
	other := createReq("org2", "photos.zip", []byte("photos"))
	if b := e.create("org2", other, http.StatusCreated); b.Backup.ID == first.Backup.ID {
		t.Fatal("idempotency key shared across organizations")
	}
	// The same key for different content is a client bug, not a retry.
	req["size"], req["sha256"] = 7, strings.Repeat("0", 64)
	if r := e.call("POST", "/backups", "org1", req); r.Status != 409 || r.code() != api.CodeIdempotencyConflict {
		t.Fatalf("reused key: %d %s", r.Status, r.Body)
	}
	page := e.call("GET", "/backups", "org1", nil)
	var p catalog.Page
	page.decode(t, &p)
	if len(p.Backups) != 1 {
		t.Fatalf("org1 has %d backups after retries, want 1", len(p.Backups))
	}
}

func TestListPaging(t *testing.T) {
	e := newEnv(t, nil)
	want := map[string]bool{}
	for i := range 5 {
		out := e.create("org1", createReq("org1", fmt.Sprintf("b%d.zip", i), []byte{byte(i)}), http.StatusCreated)
		want[out.Backup.ID] = true
	}
	e.create("org2", createReq("org2", "theirs.zip", []byte("x")), http.StatusCreated)
	seen := map[string]bool{}
	cursor, pages := "", 0
	for {
		r := e.call("GET", "/backups?limit=2&cursor="+cursor, "org1", nil)
		if r.Status != 200 {
			t.Fatalf("list: %d %s", r.Status, r.Body)
		}
		var p catalog.Page
		r.decode(t, &p)
		pages++
		if len(p.Backups) > 2 {
			t.Fatalf("page of %d with limit 2", len(p.Backups))
		}
		for _, b := range p.Backups {
			if seen[b.ID] || !want[b.ID] {
				t.Fatalf("backup %s (org %s) repeated or not org1's", b.ID, b.OrganizationID)
			}
			seen[b.ID] = true
		}
		if p.Next == "" {
			break
		}
		cursor = p.Next
	}
	if len(seen) != 5 || pages < 3 {
		t.Fatalf("saw %d backups in %d pages, want 5 in ≥3", len(seen), pages)
	}
	var p catalog.Page
	e.call("GET", "/backups?status=PENDING&organizationId=org1", "org1", nil).decode(t, &p)
	if len(p.Backups) != 5 {
		t.Fatalf("status filter PENDING: %d backups", len(p.Backups))
	}
	e.call("GET", "/backups?status=PROTECTED", "org1", nil).decode(t, &p)
	if len(p.Backups) != 0 {
		t.Fatalf("status filter PROTECTED: %d backups", len(p.Backups))
	}
	for q, code := range map[string]string{
		"status=DONE": api.CodeInvalidStatus, "limit=0": api.CodeInvalidLimit, "limit=201": api.CodeInvalidLimit,
		"limit=x": api.CodeInvalidLimit, "cursor=bm90LWEtY3Vyc29y": api.CodeInvalidCursor, "organizationId=a%2Fb": api.CodeInvalidOrganizationID,
	} {
		if r := e.call("GET", "/backups?"+q, "org1", nil); r.Status != 400 || r.code() != code {
			t.Errorf("?%s: %d %s, want 400 %s", q, r.Status, r.Body, code)
		}
	}
}

func TestMultipartUpload(t *testing.T) {
	const partSize = 8 << 20
	e := newEnv(t, func(c *api.Config, _ *api.Deps) { c.MultipartThreshold, c.PartSize = partSize, partSize })
	data := bytes.Repeat([]byte("0123456789abcdef"), (partSize+4096)/16)
	out := e.create("org1", createReq("org1", "album.zip", data), http.StatusCreated)
	mp := out.Upload.Multipart
	if mp == nil || out.Upload.URL != "" {
		t.Fatalf("want a multipart upload, got %+v", out.Upload)
	}
	if mp.PartSize != partSize || mp.PartCount != 2 || len(mp.Parts) != 2 || mp.Complete != "/backups/"+out.Backup.ID+"/complete" {
		t.Fatalf("multipart %+v", mp)
	}
	if mp.Parts[1].Size != int64(len(data)-partSize) {
		t.Fatalf("last part size %d", mp.Parts[1].Size)
	}
	id := out.Backup.ID
	// Completing before every part is up fails and says so.
	if r := e.call("POST", mp.Complete, "org1", map[string]any{"uploadId": mp.UploadID, "parts": []map[string]any{{"partNumber": 1, "etag": "x"}}}); r.Status != 400 || r.code() != api.CodeInvalidParts {
		t.Fatalf("complete with one of two parts: %d %s", r.Status, r.Body)
	}
	var parts []map[string]any
	off := 0
	for _, p := range mp.Parts {
		st, h, body := put(t, "PUT", p.URL, p.Headers, data[off:off+int(p.Size)])
		if st != 200 || h.Get("ETag") == "" {
			t.Fatalf("part %d: %d %s", p.PartNumber, st, body)
		}
		parts = append(parts, map[string]any{"partNumber": p.PartNumber, "etag": h.Get("ETag")})
		off += int(p.Size)
	}
	// Fresh URLs for an open upload.
	r := e.call("POST", "/backups/"+id+"/parts", "org1", map[string]any{"uploadId": mp.UploadID, "from": 2, "count": 5})
	var fresh struct{ Parts []api.PartURL }
	r.decode(t, &fresh)
	if r.Status != 200 || len(fresh.Parts) != 1 || fresh.Parts[0].PartNumber != 2 {
		t.Fatalf("fresh part URLs: %d %s", r.Status, r.Body)
	}
	if r := e.call("POST", mp.Complete, "org1", map[string]any{"uploadId": "nope", "parts": parts}); r.Status != 409 || r.code() != api.CodeUploadNotFound {
		t.Fatalf("complete with an unknown upload id: %d %s", r.Status, r.Body)
	}
	if r := e.call("POST", mp.Complete, "org1", map[string]any{"uploadId": mp.UploadID, "parts": parts}); r.Status != 200 {
		t.Fatalf("complete: %d %s", r.Status, r.Body)
	}
	got, ok := e.landed(out.Backup.LandingKey)
	if !ok || !bytes.Equal(got, data) {
		t.Fatalf("landed %d bytes (ok=%v), want %d", len(got), ok, len(data))
	}
	if r := e.call("POST", mp.Complete, "org1", map[string]any{"uploadId": mp.UploadID, "parts": parts}); r.Status != 409 || r.code() != api.CodeUploadNotFound {
		t.Fatalf("second complete: %d %s", r.Status, r.Body)
	}
	// A single-PUT backup has nothing to complete.
	small := e.create("org1", createReq("org1", "small.zip", []byte("s")), http.StatusCreated)
	if r := e.call("POST", "/backups/"+small.Backup.ID+"/complete", "org1", map[string]any{"uploadId": "u", "parts": []any{}}); r.Status != 409 || r.code() != api.CodeNotMultipart {
		t.Fatalf("complete of a single-PUT backup: %d %s", r.Status, r.Body)
	}
}

func TestPartLayoutForHugeBackups(t *testing.T) {
	e := newEnv(t, func(c *api.Config, _ *api.Deps) { c.PartURLBatch = 3 })
	sum := sha256.Sum256(nil)
	req := map[string]any{"organizationId": "org1", "name": "archive.tar", "size": int64(5 << 40),
		"sha256": hex.EncodeToString(sum[:]), "contentType": "application/x-tar", "idempotencyKey": "huge"}
	out := e.create("org1", req, http.StatusCreated)
	mp := out.Upload.Multipart
	if mp == nil || mp.PartCount > 10000 || int64(mp.PartCount)*mp.PartSize < 5<<40 || mp.PartSize%(1<<20) != 0 || len(mp.Parts) != 3 || mp.More == "" {
		t.Fatalf("5 TiB layout: %+v", mp)
	}
}

// TestDependencyFailureIsNotLeaked points the catalog at tables that do
// not exist (a real DynamoDB error from moto): the client gets the generic
// internal error, the log gets the cause.
func TestDependencyFailureIsNotLeaked(t *testing.T) {
	e := newEnv(t, func(_ *api.Config, d *api.Deps) {
		m := startMoto(t)
		awsCfg, _ := m.AWSConfig(t.Context())
		broken, err := catalog.NewDynamo(dynamodb.NewFromConfig(awsCfg), catalog.Config{BackupsTable: "no-such-table", ReplicasTable: "no-such-replicas"})
		if err != nil {
			t.Fatal(err)
		}
		d.Store = broken
	})
	for _, c := range []struct{ method, path string }{
		{"GET", "/backups"}, {"GET", "/backups/01ABC"}, {"POST", "/backups"}, {"GET", "/status"},
	} {
		var body any
		if c.method == "POST" {
			body = createReq("org1", "x.zip", []byte("x"))
		}
		r := e.call(c.method, c.path, "org1", body)
		if r.Status != 500 || r.code() != api.CodeInternal || strings.Contains(string(r.Body), "no-such-table") ||
			strings.Contains(string(r.Body), "ResourceNotFound") {
			t.Errorf("%s %s: %d %s", c.method, c.path, r.Status, r.Body)
		}
	}
	if !strings.Contains(e.logs.String(), "no-such-table") && !strings.Contains(e.logs.String(), "ResourceNotFound") {
		t.Errorf("the cause is not logged: %s", e.logs.String())
	}
}
