package tests

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wedsync/backup-replication/infra/local/apiclient"
	"github.com/wedsync/backup-replication/infra/local/stack"
	"github.com/wedsync/backup-replication/shared/api"
	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/seal"
)

// TestDownloadAndVerify: a download link serves the sealed copy, which
// the data key released with it decrypts to the very bytes uploaded;
// verify finds every copy intact (the sealed bytes), then finds the copies
// altered behind the system's back (one byte flipped, one truncated,
// straight on their emulators), marks them FAILED, the backup is no longer
// PROTECTED, and the next download comes from the one intact copy.
func TestDownloadAndVerify(t *testing.T) {
	t.Parallel()
	e := sharedStack(t)
	c, org := orgClient(e)
	ctx := t.Context()
	x := register(t, c, org, 401, 5<<20+17, "")
	if err := x.upload(ctx, c); err != nil {
		t.Fatal(err)
	}
	protected, err := waitStatus(t, c, x.ID, 10*time.Minute, apiclient.Protected)
	if err != nil {
		t.Fatalf("%v (replicas: %s)", err, replicaSummary(protected))
	}
	sealed := protected.Backup.Seal
	if sealed == nil {
		t.Fatal("PROTECTED without a seal")
	}

	first := downloadBytes(t, c, x)
	report := verifyBackup(t, c, x.ID)
	for _, p := range replicaProviders {
		if ck, ok := report[p]; !ok || !ck.OK || ck.SHA256 != sealed.CipherSHA256 || ck.Bytes != sealed.CipherSize {
			t.Errorf("verify of an intact %s copy: %+v, want the sealed %d bytes %s", p, ck, sealed.CipherSize, sealed.CipherSHA256)
		}
	}

	// Alter two copies directly on their emulators: one byte of the sealed
	// bytes flipped, and the sealed bytes one short.
	orig := readAll(t, e, first, x.Key)
	flipped := bytes.Clone(orig)
	flipped[len(flipped)/2] ^= 0x01
	altered := map[string][]byte{first: flipped, otherThan(first, "gcs", "supabase"): orig[:len(orig)-1]}
	for p, data := range altered {
		if err := e.overwrite(ctx, p, x.Key, data); err != nil {
			t.Fatalf("alter the %s copy: %v", p, err)
		}
	}
	report = verifyBackup(t, c, x.ID)
	var intact string
	for _, p := range replicaProviders {
		ck := report[p]
		if _, bad := altered[p]; !bad {
			intact = p
			if !ck.OK {
				t.Errorf("verify: the untouched %s copy reported %+v", p, ck)
			}
			continue
		}
		if ck.OK || (ck.Error != api.VerifyMismatch && ck.Error != api.VerifySizeMismatch) || !ck.MarkedFailed {
			t.Errorf("verify did not catch the altered %s copy: %+v", p, ck)
		}
	}
	d, err := c.Backup(ctx, x.ID)
	if err != nil {
		t.Fatal(err)
	}
	if d.Backup.Status == catalog.StatusProtected {
		t.Errorf("backup still PROTECTED with two altered copies: %s", replicaSummary(d))
	}
	for p, r := range replicasByProvider(t, d) {
		if _, bad := altered[p]; bad && r.State != catalog.ReplicaFailed {
			t.Errorf("altered %s copy is %s after verify, want FAILED", p, r.State)
		}
	}
	if got := downloadBytes(t, c, x); got != intact {
		t.Errorf("after verify the download comes from %s, want the intact copy on %s", got, intact)
	}
	e.requireNoCrash(t)
}

// downloadBytes asks for a download link, fetches it without credentials
// and checks the bytes: the sealed copy, which the data key released with
// the link decrypts to the upload; it returns the provider that served
// them.
func downloadBytes(t *testing.T, c *apiclient.Client, x pipelineBackup) string {
	t.Helper()
	var dl api.Download
	if err := c.Do(t.Context(), http.MethodGet, "/backups/"+x.ID+"/download", nil, &dl); err != nil {
		t.Fatalf("GET /backups/%s/download: %v", x.ID, err)
	}
	if dl.SHA256 != x.SHA || dl.Size != x.Data.size || dl.URL == "" || dl.Sealed == nil || dl.CipherSHA256 == "" {
		t.Fatalf("download answer %s/%d bytes from %q (sealed %v, cipher %q), want %s/%d, sealed", dl.SHA256, dl.Size,
			dl.Provider, dl.Sealed != nil, dl.CipherSHA256, x.SHA, x.Data.size)
	}
	resp, err := http.Get(dl.URL)
	if err != nil {
		t.Fatalf("fetch the %s download link: %v", dl.Provider, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("fetch the %s download link: HTTP %d", dl.Provider, resp.StatusCode)
	}
	ch, scan := sha256.New(), &markerScan{}
	_, plain, err := seal.Open(io.TeeReader(resp.Body, io.MultiWriter(ch, scan)), dl.Sealed.DataKey)
	if err != nil {
		t.Fatalf("the %s download does not open with the released key: %v", dl.Provider, err)
	}
	h := sha256.New()
	n, err := io.Copy(h, plain)
	if err != nil {
		t.Fatalf("decrypt the %s download: %v", dl.Provider, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != x.SHA || n != x.Data.size {
		t.Errorf("%s download decrypts to %d bytes %s, want %d bytes %s", dl.Provider, n, got, x.Data.size, x.SHA)
	}
	if got := hex.EncodeToString(ch.Sum(nil)); got != dl.CipherSHA256 || scan.found {
		t.Errorf("%s download served sha256 %s (marker %v), want the sealed %s", dl.Provider, got, scan.found, dl.CipherSHA256)
	}
	return dl.Provider
}

// readAll reads a copy straight from its emulator.
func readAll(t *testing.T, e *sharedEnv, where, key string) []byte {
	t.Helper()
	rc, err := e.Open[where](t.Context(), key)
	if err != nil {
		t.Fatalf("read the %s copy: %v", where, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read the %s copy: %v", where, err)
	}
	return b
}

// verifyBackup calls POST /backups/{id}/verify and indexes its report.
func verifyBackup(t *testing.T, c *apiclient.Client, id string) map[string]api.CopyCheck {
	t.Helper()
	var rep api.VerifyReport
	if err := c.Do(t.Context(), http.MethodPost, "/backups/"+id+"/verify", nil, &rep); err != nil {
		t.Fatalf("POST /backups/%s/verify: %v", id, err)
	}
	out := map[string]api.CopyCheck{}
	for _, ck := range rep.Copies {
		out[ck.Provider] = ck
	}
	return out
}

// otherThan returns the first of names that is not not.
func otherThan(not string, names ...string) string {
	for _, n := range names {
		if n != not {
			return n
		}
	}
	return ""
}

// badRequest is one malformed request and the answer it must get.
type badRequest struct {
	name, method, path, contentType, body string
	token                                 bool
	status                                int
	code                                  string // "" for answers of the gateway itself ({"message"})
}

// TestMalformedRequests: malformed and hostile requests get a 4xx with a
// JSON error a client can act on (a stable code and a message), never a
// 5xx or a crash; names that are odd but harmless are stored as given and
// never reach an object key.
func TestMalformedRequests(t *testing.T) {
	t.Parallel()
	e := sharedStack(t)
	_, org := orgClient(e)
	sha := strings.Repeat("ab", 32)
	create := func(fields map[string]any) string {
		m := map[string]any{"organizationId": org, "name": "contracts.zip", "size": 10, "sha256": sha,
			"contentType": "application/zip", "idempotencyKey": "k-" + api.NewID(time.Now())}
		for k, v := range fields {
			if v == nil {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
		b, _ := json.Marshal(m)
		return string(b)
	}
	post := func(name, body string, status int, code string) badRequest {
		return badRequest{name: name, method: "POST", path: "/backups", contentType: "application/json", body: body, token: true, status: status, code: code}
	}
	cases := []badRequest{
		post("not JSON", `{"organizationId": "`, 400, api.CodeInvalidJSON),
		post("empty body", ``, 400, api.CodeInvalidJSON),
		post("JSON array", `[1,2]`, 400, api.CodeInvalidJSON),
		post("two objects", create(nil)+create(nil), 400, api.CodeTrailingData),
		post("unknown field", create(map[string]any{"admin": true}), 400, api.CodeUnknownField),
		post("size as text", create(map[string]any{"size": "10"}), 400, api.CodeInvalidSize),
		post("size missing", create(map[string]any{"size": nil}), 400, api.CodeInvalidSize),
		post("negative size", create(map[string]any{"size": -1}), 400, api.CodeInvalidSize),
		post("size above 5 TiB", create(map[string]any{"size": int64(6) << 40}), 400, api.CodeInvalidSize),
		post("short sha256", create(map[string]any{"sha256": "abc"}), 400, api.CodeInvalidSHA256),
		post("upper-case sha256", create(map[string]any{"sha256": strings.ToUpper(sha)}), 400, api.CodeInvalidSHA256),
		post("sha256 not hex", create(map[string]any{"sha256": strings.Repeat("zz", 32)}), 400, api.CodeInvalidSHA256),
		post("multipart content type", create(map[string]any{"contentType": "multipart/form-data; boundary=x"}), 400, api.CodeInvalidContentType),
		post("content type with a script", create(map[string]any{"contentType": "text/html<script>"}), 400, api.CodeInvalidContentType),
		post("idempotency key with spaces", create(map[string]any{"idempotencyKey": "a b"}), 400, api.CodeInvalidIdempotencyKey),
		post("organization with a path", create(map[string]any{"organizationId": "../" + org}), 400, api.CodeInvalidOrganizationID),
		post("another organization", create(map[string]any{"organizationId": api.NewID(time.Now())}), 403, api.CodeForbidden),
		post("name with a path", create(map[string]any{"name": "../../etc/passwd"}), 400, api.CodeInvalidName),
		post("name with a backslash", create(map[string]any{"name": `..\..\boot.ini`}), 400, api.CodeInvalidName),
		post("name ..", create(map[string]any{"name": ".."}), 400, api.CodeInvalidName),
		post("name with NUL", create(map[string]any{"name": "a\x00b.zip"}), 400, api.CodeInvalidName),
		post("name with a newline", create(map[string]any{"name": "a\nb.zip"}), 400, api.CodeInvalidName),
		post("name reversed by a bidi mark", create(map[string]any{"name": "invoice\u202Efdp.exe"}), 400, api.CodeInvalidName),
		post("name of 256 characters", create(map[string]any{"name": strings.Repeat("é", 256)}), 400, api.CodeInvalidName),
		post("name with trailing space", create(map[string]any{"name": "contract.pdf "}), 400, api.CodeInvalidName),
		post("name not UTF-8", strings.Replace(create(nil), "contracts.zip", "contracts\xff.zip", 1), 400, api.CodeInvalidName),
		post("empty name", create(map[string]any{"name": ""}), 400, api.CodeInvalidName),
		post("body above 64 KiB", create(map[string]any{"name": strings.Repeat("a", 70<<10)}), 413, api.CodeBodyTooLarge),
		{name: "text/plain body", method: "POST", path: "/backups", contentType: "text/plain", body: create(nil), token: true, status: 415, code: api.CodeUnsupportedMediaType},
		{name: "no token", method: "POST", path: "/backups", contentType: "application/json", body: create(nil), status: 401, code: api.CodeUnauthenticated},
		{name: "bad backup id", method: "GET", path: "/backups/bad.id", token: true, status: 400, code: api.CodeInvalidID},
		{name: "unknown backup", method: "GET", path: "/backups/" + api.NewID(time.Now()), token: true, status: 404, code: api.CodeNotFound},
		{name: "bad status filter", method: "GET", path: "/backups?organizationId=" + org + "&status=LOST", token: true, status: 400, code: api.CodeInvalidStatus},
		{name: "bad limit", method: "GET", path: "/backups?organizationId=" + org + "&limit=-1", token: true, status: 400, code: api.CodeInvalidLimit},
		{name: "forged cursor", method: "GET", path: "/backups?organizationId=" + org + "&cursor=eyJoYWNrIjp0cnVlfQ", token: true, status: 400, code: api.CodeInvalidCursor},
		{name: "verify an unknown backup", method: "POST", path: "/backups/" + api.NewID(time.Now()) + "/verify", token: true, status: 404, code: api.CodeNotFound},
		{name: "no such route", method: "GET", path: "/admin", token: true, status: 404},
		{name: "body above API Gateway's 10 MB", method: "POST", path: "/backups", contentType: "application/json", body: strings.Repeat(" ", 10<<20+1), token: true, status: 413},
	}
	token := stack.DevToken(org, time.Hour)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := rawRequest(t, e.APIURL, tc, token)
			if status != tc.status {
				t.Fatalf("HTTP %d, want %d: %s", status, tc.status, truncate(body, 300))
			}
			var doc struct {
				Error struct {
					Code, Message string
				}
				Message string
			}
			if err := json.Unmarshal(body, &doc); err != nil {
				t.Fatalf("answer is not JSON: %s", truncate(body, 300))
			}
			switch {
			case tc.code == "" && doc.Message == "" && doc.Error.Message == "":
				t.Errorf("error answer without a message: %s", body)
			case tc.code != "" && (doc.Error.Code != tc.code || doc.Error.Message == ""):
				t.Errorf("error %q %q, want code %q and a message", doc.Error.Code, doc.Error.Message, tc.code)
			}
			if strings.Contains(string(body), "\x00") || strings.Contains(string(body), "<script>") {
				t.Errorf("the answer echoes hostile input: %s", truncate(body, 300))
			}
		})
	}

	// Odd names that are not tricks are kept exactly, and stay out of keys.
	c := apiclient.New(e.APIURL, token)
	for i, name := range []string{"Ślub Ani & Tomka – zdjęcia 💍.zip", `guests "final" (v2)?.csv`, "100% done; rm -rf *.tar", "Invoice <draft> #3 & co.pdf", "%2e%2e%2fetc"} {
		size := int64(i)
		got, err := c.CreateBackup(t.Context(), api.CreateBackupRequest{OrganizationID: org, Name: name, Size: &size,
			SHA256: patternData{seed: uint64(500 + i), size: size}.sha256(), ContentType: "application/zip", IdempotencyKey: fmt.Sprintf("odd-%s-%d", org, i)})
		if err != nil {
			t.Errorf("name %q refused: %v", name, err)
			continue
		}
		if got.Backup.Name != name || got.Backup.LandingKey != "backups/"+org+"/"+got.Backup.ID {
			t.Errorf("name %q stored as %q with key %q", name, got.Backup.Name, got.Backup.LandingKey)
		}
	}
	// The API still answers normally afterwards, and nothing crashed.
	if err := c.Do(t.Context(), http.MethodGet, "/backups?organizationId="+org, nil, nil); err != nil {
		t.Errorf("GET /backups after the malformed requests: %v", err)
	}
	e.requireNoCrash(t)
}

func rawRequest(t *testing.T, base string, tc badRequest, token string) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, tc.method, base+tc.path, strings.NewReader(tc.body))
	if err != nil {
		t.Fatal(err)
	}
	if tc.contentType != "" {
		req.Header.Set("Content-Type", tc.contentType)
	}
	if tc.token {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, body
}
