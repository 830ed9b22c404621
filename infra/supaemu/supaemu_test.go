package supaemu

import (
	"bytes"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

const (
	testSecret = "test-jwt-secret-with-at-least-32-characters"
	alphabet   = "abcdefghijklmnopqrstuvwxyz" // 26 bytes, as in SUPABASE-API.md
)

// env is an emulator behind a real socket, with bucket "b" holding
// "exists.txt" (the alphabet) and "folder/inner.txt".
type env struct {
	t       *testing.T
	url     string
	service string
	anon    string
}

func newEnv(t *testing.T, cfg Config) *env {
	t.Helper()
	cfg.Dir, cfg.JWTSecret = t.TempDir(), testSecret
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	e := &env{t: t, url: ts.URL + "/storage/v1", service: SignKey(testSecret, ServiceRole, time.Hour), anon: SignKey(testSecret, "anon", time.Hour)}
	e.must(e.do("POST", "/bucket", e.auth(), `{"id":"b","name":"b","public":false}`), 200)
	e.must(e.do("POST", "/object/b/exists.txt", e.auth("Content-Type", "text/plain"), alphabet), 200)
	e.must(e.do("POST", "/object/b/folder/inner.txt", e.auth(), "x"), 200)
	return e
}

// auth returns headers with the service key plus the given pairs.
func (e *env) auth(kv ...string) http.Header {
	h := http.Header{"Authorization": {"Bearer " + e.service}}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (e *env) do(method, path string, h http.Header, body string) reply {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if h != nil {
		req.Header = h
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header, b}
}

func (e *env) must(r reply, status int) reply {
	e.t.Helper()
	if r.status != status {
		e.t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	return r
}

func errBody(status, errName, msg, code string) string {
	b, _ := json.Marshal(map[string]string{"statusCode": status, "error": errName, "message": msg, "code": code})
	return string(b)
}

var (
	noSuchKey    = errBody("404", "not_found", "Object not found", "NoSuchKey")
	noSuchBucket = errBody("404", "Bucket not found", "Bucket not found", "NoSuchBucket")
	accessDenied = func(msg string) string { return errBody("403", "Unauthorized", msg, "AccessDenied") }
)

// TestErrorBodies checks every row of SUPABASE-API.md's error table.
func TestErrorBodies(t *testing.T) {
	e := newEnv(t, Config{})
	bearer := func(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }
	cases := []struct {
		name         string
		method, path string
		h            http.Header
		body         string
		status       int
		want         string // exact JSON body; "" means no body
	}{
		{"missing object GET", "GET", "/object/b/missing", e.auth(), "", 400, noSuchKey},
		{"missing object info", "GET", "/object/info/b/missing", e.auth(), "", 400, noSuchKey},
		{"missing object info authenticated", "GET", "/object/info/authenticated/b/missing", e.auth(), "", 400, noSuchKey},
		{"missing object DELETE", "DELETE", "/object/b/missing", e.auth(), "", 400, noSuchKey},
		{"missing object copy", "POST", "/object/copy", e.auth(), `{"bucketId":"b","sourceKey":"missing","destinationKey":"x"}`, 400, noSuchKey},
		{"missing object HEAD", "HEAD", "/object/b/missing", e.auth(), "", 400, ""},
		{"duplicate upload", "POST", "/object/b/exists.txt", e.auth(), "new", 400,
			errBody("409", "Duplicate", "The resource already exists", "KeyAlreadyExists")},
		{"duplicate bucket", "POST", "/bucket", e.auth(), `{"id":"b","name":"b"}`, 400,
			errBody("409", "Duplicate", "The resource already exists", "BucketAlreadyExists")},
		{"missing bucket GET", "GET", "/bucket/nob", e.auth(), "", 400, noSuchBucket},
		{"missing bucket DELETE", "DELETE", "/bucket/nob", e.auth(), "", 400, noSuchBucket},
		{"upload into missing bucket", "POST", "/object/nob/k", e.auth(), "x", 400, noSuchBucket},
		{"bad JWT signature", "GET", "/object/b/exists.txt", bearer(SignKey("another-secret", ServiceRole, time.Hour)), "", 400,
			accessDenied("signature verification failed")},
		{"malformed JWT", "GET", "/object/b/exists.txt", bearer("garbage"), "", 400, accessDenied("Invalid Compact JWS")},
		{"expired JWT", "GET", "/object/b/exists.txt", bearer(SignKey(testSecret, ServiceRole, -time.Minute)), "", 400,
			accessDenied(`"exp" claim timestamp check failed`)},
		{"no Authorization, apikey only", "GET", "/object/b/exists.txt", http.Header{"Apikey": {e.service}}, "", 400,
			errBody("400", "Error", "headers must have required property 'authorization'", "InvalidRequest")},
		{"anon creates bucket", "POST", "/bucket", bearer(e.anon), `{"id":"c","name":"c"}`, 400,
			accessDenied("new row violates row-level security policy")},
		{"anon uploads", "POST", "/object/b/anon.txt", bearer(e.anon), "x", 400,
			accessDenied("new row violates row-level security policy")},
		{"anon reads private object", "GET", "/object/b/exists.txt", bearer(e.anon), "", 400, noSuchKey},
		{"delete non-empty bucket", "DELETE", "/bucket/b", e.auth(), "", 400,
			errBody("409", "ResourceNotEmpty", "The bucket you tried to delete is not empty", "ResourceNotEmpty")},
		{"signed URL with bad token", "GET", "/object/sign/b/exists.txt?token=garbage", nil, "", 400,
			errBody("400", "InvalidJWT", "Invalid Compact JWS", "InvalidJWT")},
		{"unsatisfiable Range", "GET", "/object/b/exists.txt", e.auth("Range", "bytes=26-30"), "", 416,
			errBody("416", "invalid_range", "invalid range provided", "InvalidRange")},
		{"key outside the server's character set", "POST", "/object/b/caf%C3%A9", e.auth(), "x", 400,
			errBody("400", "InvalidKey", "Invalid key: café", "InvalidKey")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			r := e.do(tc.method, tc.path, tc.h, tc.body)
			if r.status != tc.status {
				t.Errorf("status %d, want %d", r.status, tc.status)
			}
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			if tc.want == "" {
				if len(r.body) != 0 {
					t.Errorf("body %q, want none", r.body)
				}
				return
			}
			var got, want any
			json.Unmarshal(r.body, &got)
			json.Unmarshal([]byte(tc.want), &want)
			if g, w := mustJSON(got), mustJSON(want); string(g) != string(w) {
				t.Errorf("body %s, want %s", r.body, tc.want)
			}
		})
	}
}

// TestObjects checks the other observations of SUPABASE-API.md and the
// response shapes storage-go decodes.
func TestObjects(t *testing.T) {
	e := newEnv(t, Config{})
	sum := md5.Sum([]byte(alphabet))

	t.Run("range", func(t *testing.T) {
		e.t = t
		r := e.must(e.do("GET", "/object/b/exists.txt", e.auth("Range", "bytes=6-9"), ""), 206)
		if string(r.body) != "ghij" || r.header.Get("Content-Range") != "bytes 6-9/26" || r.header.Get("Accept-Ranges") != "bytes" {
			t.Errorf("got %q Content-Range %q Accept-Ranges %q", r.body, r.header.Get("Content-Range"), r.header.Get("Accept-Ranges"))
		}
		if et := r.header.Get("ETag"); et != `"`+hex.EncodeToString(sum[:])+`"` {
			t.Errorf("ETag %s, want the quoted MD5", et)
		}
	})
	t.Run("upsert", func(t *testing.T) {
		e.t = t
		r := e.must(e.do("POST", "/object/b/exists.txt", e.auth("X-Upsert", "true"), alphabet), 200)
		var got map[string]string
		json.Unmarshal(r.body, &got)
		if got["Key"] != "b/exists.txt" || len(got["Id"]) != 36 {
			t.Errorf("upsert answered %s, want Key b/exists.txt and an Id", r.body)
		}
	})
	t.Run("put creates", func(t *testing.T) {
		e.t = t
		e.must(e.do("PUT", "/object/b/created-by-put", e.auth(), "p"), 200)
	})
	t.Run("bulk delete of nothing", func(t *testing.T) {
		e.t = t
		r := e.must(e.do("DELETE", "/object/b", e.auth(), `{"prefixes":["nothing-here"]}`), 200)
		if strings.TrimSpace(string(r.body)) != "[]" {
			t.Errorf("body %s, want []", r.body)
		}
	})
	t.Run("cache-control", func(t *testing.T) {
		e.t = t
		e.must(e.do("POST", "/object/b/raw-cc", e.auth(), "x"), 200)
		if cc := e.do("GET", "/object/b/raw-cc", e.auth(), "").header.Get("Cache-Control"); cc != "no-cache" {
			t.Errorf("raw upload Cache-Control %q, want no-cache", cc)
		}
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		mw.WriteField("cacheControl", "3600")
		mw.WriteField("metadata", `{"k":"form"}`)
		fw, _ := mw.CreateFormFile("", "blob")
		fw.Write([]byte("form body"))
		mw.Close()
		e.must(e.do("POST", "/object/b/form-cc", e.auth("Content-Type", mw.FormDataContentType()), buf.String()), 200)
		r := e.must(e.do("GET", "/object/b/form-cc", e.auth(), ""), 200)
		if cc := r.header.Get("Cache-Control"); cc != "max-age=3600" || string(r.body) != "form body" {
			t.Errorf("form upload Cache-Control %q body %q, want max-age=3600 and the file part", cc, r.body)
		}
		if md := e.info("form-cc")["metadata"]; mustJSON(md) == nil || string(mustJSON(md)) != `{"k":"form"}` {
			t.Errorf("form upload metadata %v", md)
		}
	})
	t.Run("x-metadata", func(t *testing.T) {
		e.t = t
		md := base64.StdEncoding.EncodeToString([]byte(`{"sha256":"abc","backup-id":"b1"}`))
		e.must(e.do("POST", "/object/b/with-md", e.auth("X-Metadata", md, "Content-Type", "application/json"), "{}"), 200)
		info := e.info("with-md")
		if string(mustJSON(info["metadata"])) != `{"backup-id":"b1","sha256":"abc"}` || info["content_type"] != "application/json" || info["size"] != 2.0 {
			t.Errorf("info %v", info)
		}
	})
	t.Run("sign", func(t *testing.T) {
		e.t = t
		r := e.must(e.do("POST", "/object/sign/b/exists.txt", e.auth(), `{"expiresIn":60}`), 200)
		var got map[string]string
		json.Unmarshal(r.body, &got)
		if !strings.HasPrefix(got["signedURL"], "/object/sign/b/exists.txt?token=") {
			t.Fatalf("signedURL %q", got["signedURL"])
		}
		if r := e.must(e.do("GET", got["signedURL"], nil, ""), 200); string(r.body) != alphabet {
			t.Errorf("signed download %q", r.body)
		}
		other := strings.Replace(got["signedURL"], "exists.txt", "folder/inner.txt", 1)
		if r := e.do("GET", other, nil, ""); r.status != 400 || !strings.Contains(string(r.body), "InvalidSignature") {
			t.Errorf("token of another object: %d %s", r.status, r.body)
		}
		expired := signJWT(testSecret, map[string]any{"url": "b/exists.txt", "scope": "download", "iat": 1, "exp": 2})
		r = e.do("GET", "/object/sign/b/exists.txt?token="+expired, nil, "")
		if want := errBody("400", "InvalidJWT", `"exp" claim timestamp check failed`, "InvalidJWT"); r.status != 400 || strings.TrimSpace(string(r.body)) != want {
			t.Errorf("expired token: %d %s, want %s", r.status, r.body, want)
		}
	})
	t.Run("list", func(t *testing.T) {
		e.t = t
		r := e.must(e.do("POST", "/object/list/b", e.auth(), `{"prefix":"","limit":100,"offset":0,"sortBy":{"column":"name","order":"asc"}}`), 200)
		var got []map[string]any
		json.Unmarshal(r.body, &got)
		names := map[string]bool{}
		for _, o := range got {
			names[o["name"].(string)] = o["id"] == nil
		}
		if isFolder, ok := names["folder"]; !ok || !isFolder {
			t.Errorf("listing %s: want folder as a folder entry", r.body)
		}
		if isFolder, ok := names["exists.txt"]; !ok || isFolder {
			t.Errorf("listing %s: want exists.txt as a file", r.body)
		}
		r = e.must(e.do("POST", "/object/list/b", e.auth(), `{"prefix":"folder","search":"inn"}`), 200)
		if !strings.Contains(string(r.body), `"name":"inner.txt"`) || !strings.Contains(string(r.body), `"size":1`) {
			t.Errorf("listing folder: %s", r.body)
		}
	})
	t.Run("empty and delete bucket", func(t *testing.T) {
		e.t = t
		e.must(e.do("POST", "/bucket", e.auth(), `{"id":"tmp","name":"tmp"}`), 200)
		e.must(e.do("POST", "/object/tmp/x", e.auth(), "x"), 200)
		r := e.must(e.do("POST", "/bucket/tmp/empty", e.auth(), "{}"), 200)
		if !strings.Contains(string(r.body), "Empty bucket has been queued") {
			t.Errorf("empty answered %s", r.body)
		}
		e.must(e.do("DELETE", "/bucket/tmp", e.auth(), "{}"), 200)
	})
}

// info returns GET /object/info/authenticated/b/{name} as JSON.
func (e *env) info(name string) map[string]any {
	e.t.Helper()
	r := e.must(e.do("GET", "/object/info/authenticated/b/"+name, e.auth(), ""), 200)
	var m map[string]any
	json.Unmarshal(r.body, &m)
	return m
}
