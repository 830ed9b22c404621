// Package dashboard is the operators' page: provider cards (health,
// latency, circuit breaker, last error), backups in flight with a progress
// bar per provider, the 3-2-1 status of recent backups, and recent alerts.
// It is one HTML document with its CSS and JavaScript inline, embedded with
// go:embed: no build step, no other request than the page itself (the API
// routes only GET / to it), readable on a phone, and accessible (landmarks,
// headings, labelled progress bars, a live region for what changes).
//
// The page is live from the WebSocket API (it subscribes to "*"),
// reconnects with backoff, and polls GET /status and GET /backups while the
// socket is down. It finds its token in the address's fragment (#token=…,
// which browsers never send to a server), its query string, or a sign-in
// form, and the WebSocket address in #ws=, ?ws=, or Config.WebSocketURL.
// A strict Content-Security-Policy allows exactly the inline script and
// style (by hash), same-origin fetches, and WebSocket connections.
package dashboard

import (
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"html"
	"net/http"
	"strings"
)

//go:embed page
var page embed.FS

// scripts are concatenated in this order into the page's one script.
var scripts = []string{"page/state.js", "page/render.js", "page/live.js"}

// Config is what the page is told by the server.
type Config struct {
	// WebSocketURL is the WebSocket API's address (wss://…/{stage}); empty:
	// the page takes it from its address (#ws=) or asks.
	WebSocketURL string
}

// Handler serves the dashboard with no WebSocket address configured.
func Handler() http.Handler { return New(Config{}) }

// New returns the dashboard handler. It answers GET and HEAD with the page
// (whatever the path: the API mounts it at /), anything else with 405.
func New(cfg Config) http.Handler {
	doc, csp := build(cfg)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		if r.Method == http.MethodHead {
			return
		}
		w.Write(doc)
	})
}

// build assembles the page and its Content-Security-Policy.
func build(cfg Config) ([]byte, string) {
	read := func(name string) string {
		b, err := page.ReadFile(name)
		if err != nil {
			panic("dashboard: embedded " + name + " missing: " + err.Error()) // a build mistake, caught by any test
		}
		return string(b)
	}
	var js strings.Builder
	js.WriteString("\n(() => {\n'use strict';\n")
	for _, name := range scripts {
		js.WriteString(read(name))
	}
	js.WriteString("})();\n")
	style := "\n" + read("page/style.css")
	// Neither file may close its element early.
	script := strings.ReplaceAll(js.String(), "</", `<\/`)
	style = strings.ReplaceAll(style, "</", "")
	doc := strings.NewReplacer(
		"{{WS_URL}}", html.EscapeString(cfg.WebSocketURL),
		"{{STYLE}}", style,
		"{{SCRIPT}}", script,
	).Replace(read("page/index.html"))
	csp := strings.Join([]string{
		"default-src 'none'",
		"script-src '" + hash(script) + "'",
		"style-src '" + hash(style) + "'",
		"connect-src 'self' ws: wss:",
		"img-src 'self' data:",
		"base-uri 'none'",
		"form-action 'none'",
		"frame-ancestors 'none'",
	}, "; ")
	return []byte(doc), csp
}

func hash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256-" + base64.StdEncoding.EncodeToString(sum[:])
}
