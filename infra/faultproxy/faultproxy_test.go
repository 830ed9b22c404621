package faultproxy

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// backend is an httptest origin that answers GET with a fixed body and
// records what every request brought.
type backend struct {
	*httptest.Server
	body []byte

	mu   sync.Mutex
	seen []seen
}

type seen struct {
	method, uri, host string
	body              []byte
	bodyErr           error
}

func newBackend(t *testing.T, size int) *backend {
	t.Helper()
	b := &backend{body: make([]byte, size)}
	for i := range b.body {
		b.body[i] = byte('a' + i%26)
	}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, err := io.ReadAll(r.Body)
		b.mu.Lock()
		b.seen = append(b.seen, seen{method: r.Method, uri: r.URL.RequestURI(), host: r.Host, body: data, bodyErr: err})
		b.mu.Unlock()
		if err != nil {
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("X-Origin", "yes")
		if r.Method == http.MethodPut {
			w.WriteHeader(http.StatusOK)
			fmt.Fprintf(w, "%d", len(data))
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(b.body)))
		w.Write(b.body)
	}))
	t.Cleanup(b.Close)
	return b
}

func (b *backend) requests() []seen {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]seen(nil), b.seen...)
}

func startProxy(t *testing.T, target string, flavor Flavor) *Server {
	t.Helper()
	s, err := Start(target, Options{Flavor: flavor})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func get(t *testing.T, url string) (*http.Response, []byte, error) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

func TestPassForwardsUntouched(t *testing.T) {
	b := newBackend(t, 100_000)
	p := startProxy(t, b.URL, S3)
	resp, body, err := get(t, p.URL+"/bucket/some%20key?versionId=1&x=%2F")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || !bytes.Equal(body, b.body) || resp.Header.Get("X-Origin") != "yes" {
		t.Fatalf("status %d, %d bytes (want %d), X-Origin %q", resp.StatusCode, len(body), len(b.body), resp.Header.Get("X-Origin"))
	}
	up := make([]byte, 70_000)
	for i := range up {
		up[i] = byte(i * 7)
	}
	req, _ := http.NewRequest(http.MethodPut, p.URL+"/bucket/k", bytes.NewReader(up))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	got := b.requests()
	if len(got) != 2 {
		t.Fatalf("backend saw %d requests", len(got))
	}
	if got[0].uri != "/bucket/some%20key?versionId=1&x=%2F" {
		t.Errorf("request URI reached the backend as %q", got[0].uri)
	}
	if got[0].host != strings.TrimPrefix(p.URL, "http://") {
		t.Errorf("Host %q reached the backend; want the proxy's, as the client addressed it", got[0].host)
	}
	if !bytes.Equal(got[1].body, up) {
		t.Errorf("uploaded body changed on the way")
	}
	if s := p.Stats(); s.Requests != 2 || s.Injected != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestErrorsLookLikeTheProvider(t *testing.T) {
	b := newBackend(t, 10)
	cases := []struct {
		flavor   Flavor
		mode     Mode
		status   int
		check    func(t *testing.T, body []byte)
		wantWait bool
	}{
		{S3, Error5xx, 503, s3Code("ServiceUnavailable"), false},
		{S3, Throttle, 503, s3Code("SlowDown"), true},
		{GCS, Error5xx, 503, gcsReason(503, "backendError"), false},
		{GCS, Throttle, 429, gcsReason(429, "rateLimitExceeded"), true},
		{Supabase, Error5xx, 503, supabaseCode("503", "InternalError"), false},
		{Supabase, Throttle, 429, supabaseCode("429", "SlowDown"), true},
		{Plain, Error5xx, 503, func(*testing.T, []byte) {}, false},
	}
	for _, c := range cases {
		t.Run(string(c.flavor)+"/"+string(c.mode), func(t *testing.T) {
			p := startProxy(t, b.URL, c.flavor)
			if err := p.Set(Fault{Mode: c.mode}); err != nil {
				t.Fatal(err)
			}
			resp, body, err := get(t, p.URL+"/x")
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, c.status)
			}
			if got := resp.Header.Get("Retry-After"); (got != "") != c.wantWait {
				t.Errorf("Retry-After %q", got)
			}
			c.check(t, body)
			if p.Injected() != 1 {
				t.Errorf("injected %d, want 1", p.Injected())
			}
		})
	}
}

func s3Code(want string) func(*testing.T, []byte) {
	return func(t *testing.T, body []byte) {
		var e struct{ Code, Message string }
		if err := xml.Unmarshal(body, &e); err != nil || e.Code != want || e.Message == "" {
			t.Errorf("S3 error body %q: code %q, want %q (%v)", body, e.Code, want, err)
		}
	}
}

func gcsReason(code int, reason string) func(*testing.T, []byte) {
	return func(t *testing.T, body []byte) {
		var e struct {
			Error struct {
				Code   int
				Errors []struct{ Reason string }
			}
		}
		if err := json.Unmarshal(body, &e); err != nil || e.Error.Code != code || len(e.Error.Errors) != 1 || e.Error.Errors[0].Reason != reason {
			t.Errorf("GCS error body %s (%v)", body, err)
		}
	}
}

func supabaseCode(status, code string) func(*testing.T, []byte) {
	return func(t *testing.T, body []byte) {
		var e map[string]string
		if err := json.Unmarshal(body, &e); err != nil || e["statusCode"] != status || e["code"] != code {
			t.Errorf("Supabase error body %s (%v)", body, err)
		}
	}
}

func TestMatchingAndCount(t *testing.T) {
	b := newBackend(t, 10)
	p := startProxy(t, b.URL, S3)
	if err := p.Set(Fault{Mode: Error5xx, Status: 500, Methods: []string{"put"}, Path: "^/bucket/backups/", Count: 2}); err != nil {
		t.Fatal(err)
	}
	do := func(method, path string) int {
		req, _ := http.NewRequest(method, p.URL+path, strings.NewReader("x"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := do(http.MethodGet, "/bucket/backups/a"); s != 200 {
		t.Errorf("GET matched a PUT-only fault: %d", s)
	}
	if s := do(http.MethodPut, "/bucket/_health/a"); s != 200 {
		t.Errorf("PUT outside the path matched: %d", s)
	}
	if s := do(http.MethodPut, "/bucket/backups/a"); s != 500 {
		t.Errorf("first matching PUT: %d, want 500", s)
	}
	if r := p.Stats().Remaining; r != 1 {
		t.Errorf("remaining %d, want 1", r)
	}
	if s := do(http.MethodPut, "/bucket/backups/b"); s != 500 {
		t.Errorf("second matching PUT: %d, want 500", s)
	}
	if s := do(http.MethodPut, "/bucket/backups/c"); s != 200 {
		t.Errorf("third matching PUT after a count of 2: %d, want 200", s)
	}
	st := p.Stats()
	if st.Injected != 2 || st.ByMode[Error5xx] != 2 || st.Matched != 2 || st.Requests != 5 {
		t.Errorf("stats %+v", st)
	}
	if p.Fault().Mode != Pass {
		t.Errorf("fault still in force after its count: %+v", p.Fault())
	}
}

func TestControlEndpoint(t *testing.T) {
	b := newBackend(t, 10)
	p := startProxy(t, b.URL, S3)
	post := func(body string) (int, ControlState) {
		resp, err := http.Post(p.URL+DefaultControlPath, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var cs ControlState
		json.NewDecoder(resp.Body).Decode(&cs)
		return resp.StatusCode, cs
	}
	if code, cs := post(`{"mode":"throttle","retryAfter":"3s","count":1}`); code != 200 || cs.Fault.Mode != Throttle {
		t.Fatalf("set: %d %+v", code, cs)
	}
	resp, _, _ := get(t, p.URL+"/x")
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "3" {
		t.Errorf("throttled answer %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	resp, _, _ = get(t, p.URL+DefaultControlPath)
	var cs ControlState
	resp2, _ := http.Get(p.URL + DefaultControlPath)
	json.NewDecoder(resp2.Body).Decode(&cs)
	resp2.Body.Close()
	if resp.StatusCode != 200 || cs.Stats.Injected != 1 || cs.Fault.Mode != Pass {
		t.Errorf("state after the one counted fault: %+v", cs)
	}
	for _, bad := range []string{`{"mode":"explode"}`, `{"mode":"5xx","colour":"red"}`, `{"mode":"stall","for":"soon"}`, `{"mode":"5xx","path":"("}`} {
		if code, _ := post(bad); code != 400 {
			t.Errorf("%s: %d, want 400", bad, code)
		}
	}
	post(`{"mode":"5xx","for":1500}`)
	if f := p.Fault(); time.Duration(f.For) != 1500*time.Millisecond {
		t.Errorf("for: %v", time.Duration(f.For))
	}
	req, _ := http.NewRequest(http.MethodDelete, p.URL+DefaultControlPath, nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("delete: %v", err)
	}
	if resp, _, _ := get(t, p.URL+"/x"); resp.StatusCode != 200 {
		t.Errorf("after DELETE: %d", resp.StatusCode)
	}
}

func TestTargetDown(t *testing.T) {
	b := newBackend(t, 10)
	p := startProxy(t, b.URL, S3)
	b.Close()
	if resp, _, err := get(t, p.URL+"/x"); err != nil || resp.StatusCode != http.StatusBadGateway {
		t.Errorf("unreachable target: %v", err)
	}
	if _, err := New("ftp://x", Options{}); err == nil {
		t.Error("ftp target accepted")
	}
	if _, err := New("http://127.0.0.1:1/base", Options{}); err == nil {
		t.Error("target with a path accepted")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for i := 0; i < 200; i++ {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("condition not reached")
}
