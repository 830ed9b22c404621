package dashboard_test

import (
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/wedsync/backup-replication/shared/dashboard"
)

func get(t *testing.T, h http.Handler, method string) *http.Response {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	req, _ := http.NewRequest(method, srv.URL+"/", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestPageAndPolicy(t *testing.T) {
	resp := get(t, dashboard.New(dashboard.Config{WebSocketURL: `wss://x.example/live?a="><script>alert(1)</script>`}), "GET")
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	doc := string(b)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("%d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, want := range []string{`<html lang="en">`, `name="viewport"`, "<header", "<main", "<footer", "<h1>",
		`aria-live="polite"`, `<label for="token">`, `role="log"`, `id="providers"`, `id="inflight"`, `id="recent"`, `id="alerts"`} {
		if !strings.Contains(doc, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if strings.Contains(doc, `"><script>alert(1)`) || !strings.Contains(doc, `&#34;&gt;&lt;script&gt;`) {
		t.Error("the configured WebSocket URL is not escaped")
	}
	csp := resp.Header.Get("Content-Security-Policy")
	for _, tag := range []string{"script", "style"} {
		m := regexp.MustCompile(`(?s)<`+tag+`>(.*?)</`+tag+`>`).FindAllStringSubmatch(doc, -1)
		if len(m) != 1 {
			t.Fatalf("%d inline %s elements, want 1", len(m), tag)
		}
		sum := sha256.Sum256([]byte(m[0][1]))
		if want := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"; !strings.Contains(csp, tag+"-src "+want) {
			t.Errorf("CSP %q does not allow the inline %s (%s)", csp, tag, want)
		}
	}
	if !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("CSP %q is not strict", csp)
	}
}

func TestOnlyGetAndHead(t *testing.T) {
	if r := get(t, dashboard.Handler(), "HEAD"); r.StatusCode != 200 {
		t.Errorf("HEAD %d", r.StatusCode)
	}
	if r := get(t, dashboard.Handler(), "POST"); r.StatusCode != 405 || r.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST %d %q", r.StatusCode, r.Header.Get("Allow"))
	}
}
