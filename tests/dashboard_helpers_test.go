package tests

// What the dashboard's browser test runs on: a local stack of its own
// (every function's bootstrap under aws-lambda-rie, the WebSocket gateway,
// health on a short schedule), headless Chromium driven by chromedp, and a
// switch between the browser and the WebSocket API that can cut the socket.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/wedsync/backup-replication/infra/emulator"
	"github.com/wedsync/backup-replication/infra/local/stack"
	"github.com/wedsync/backup-replication/infra/local/wsgateway"
)

// healthEvery is how often the dashboard's stack runs the health function
// (deployed: each minute, with a second round at +30 s), so that a stopped
// provider shows as down within seconds (two failed canaries in a row).
const healthEvery = 2 * time.Second

// dashboardFunctions are the functions the browser test needs; any other
// function of the template whose folder exists runs too (a new pipeline
// step is then part of the run).
var dashboardFunctions = []string{"ApiFunction", "WsFunction", "HealthFunction",
	"ReplicateSupabaseFunction", "ReplicateS3Function", "ReplicateGcsFunction"}

// startDashboardStack starts a local stack for the browser test alone (it
// stops one of its providers, which would disturb the tests sharing
// sharedStack) and stops it at the end. Every line the functions write
// goes to the returned tap and to tests/artifacts/dashboard-stack.log.
func startDashboardStack(t *testing.T) (*stack.Stack, *logTap) {
	t.Helper()
	for _, id := range dashboardFunctions {
		if dir, ok := functionDir(t, id); !ok {
			t.Skipf("functions/%s does not exist yet; the dashboard test needs %v", dir, dashboardFunctions)
		}
	}
	tap, err := newLogTap(filepath.Join(artifactsDir(t), "dashboard-stack.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tap.Close() }) // after the stack's own cleanup (LIFO)
	start := time.Now()
	s := startStack(t, stack.Options{
		ScheduleInterval:  healthEvery,
		VisibilityTimeout: 30 * time.Second,
		WebSocket:         wsgateway.New(wsgateway.Config{Logger: slog.New(slog.NewJSONHandler(tap, nil))}),
		FunctionEnv: map[string]map[string]string{
			// One probe round per invocation, as make dev runs it; no
			// scrubbing, which would re-read every copy each round.
			"HealthFunction": {"HEALTH_SINGLE_ROUND": "true", "SCRUB_BYTES_PER_RUN": "0"},
		},
		Output: tap,
	})
	t.Logf("local stack started in %s: %s", time.Since(start).Round(time.Second), strings.Join(s.Running(), ", "))
	return s, tap
}

// chromiumPath is Debian's chromium; CHROMIUM overrides it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	p := os.Getenv("CHROMIUM")
	if p == "" {
		p = "/usr/bin/chromium"
	}
	if _, err := exec.LookPath(p); err != nil {
		emulator.Require(t, fmt.Errorf("chromium not found at %s (apt-get install chromium, or set CHROMIUM): %w", p, err))
	}
	return p
}

// browser is a headless Chromium tab (chromedp v0.23's generic API) that
// remembers what went wrong in the page: exceptions, console errors, and
// browser log errors (CSP violations among them).
type browser struct {
	t      *testing.T
	ctx    context.Context
	mu     sync.Mutex
	faults []string
}

func newBrowser(t *testing.T, path string) *browser {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1400),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	b := &browser{t: t, ctx: ctx}
	// The first call starts the browser for ctx's whole life: no timeout.
	err := chromedp.Listen(ctx, func(ev any) {
		var fault string
		switch e := ev.(type) {
		case *runtime.EventExceptionThrown:
			fault = "exception: " + e.ExceptionDetails.Text
			if e.ExceptionDetails.Exception != nil {
				fault += " " + e.ExceptionDetails.Exception.Description
			}
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.ConsoleAPICalledTypeError {
				var parts []string
				for _, a := range e.Args {
					parts = append(parts, string(a.Value)+a.Description)
				}
				fault = "console.error: " + strings.Join(parts, " ")
			}
		case *cdplog.EventEntryAdded:
			if e.Entry.Level == cdplog.EntryLevelError {
				fault = "log: " + e.Entry.Text
			}
		}
		if fault != "" {
			b.mu.Lock()
			b.faults = append(b.faults, fault)
			b.mu.Unlock()
		}
	})
	if err != nil {
		emulator.Require(t, fmt.Errorf("start chromium: %w", err))
	}
	b.do(chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		if _, err := cdp.Call(ctx, tg, cdplog.Enable, cdp.Empty{}); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, tg, runtime.Enable, cdp.Empty{})
		return err
	}))
	return b
}

func (b *browser) do(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatal(err)
	}
}

// eval evaluates expr in the page.
func eval[T any](b *browser, expr string) (T, error) {
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](expr))
}

// waitFor polls the page until expr is true, calling each (when not nil)
// between polls; on timeout it saves a screenshot and fails with what the
// page shows.
func (b *browser) waitFor(what, expr string, timeout time.Duration, each func()) {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if ok, err := eval[bool](b, "Boolean("+expr+")"); err == nil && ok {
			return
		}
		if each != nil {
			each()
		}
		if time.Now().After(deadline) {
			b.screenshot("dashboard-failure.png")
			text, _ := eval[string](b, `document.body.innerText`)
			b.t.Fatalf("the dashboard never showed %s within %s; it shows:\n%s\npage faults: %v", what, timeout, text, b.pageFaults())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (b *browser) screenshot(name string) string {
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return ""
	}
	path := filepath.Join(artifactsDir(b.t), name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	return path
}

func (b *browser) pageFaults() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.faults...)
}

// socketSwitch is a TCP relay that the browser reaches the WebSocket API
// through. Cut drops every connection and refuses new ones, as a network
// outage between the browser and API Gateway would; Restore lets them
// through again. The gateway itself stays up, and so does its management
// endpoint, which the functions post to directly.
type socketSwitch struct {
	ln     net.Listener
	target string // host:port of the gateway
	path   string // the gateway URL's path (its stage)
	mu     sync.Mutex
	cut    bool
	conns  map[net.Conn]struct{}
}

// newSocketSwitch relays to the WebSocket API at gatewayURL (ws://host:port/stage)
// until the test ends.
func newSocketSwitch(t *testing.T, gatewayURL string) *socketSwitch {
	t.Helper()
	u, err := url.Parse(gatewayURL)
	if err != nil || u.Host == "" {
		t.Fatalf("WebSocket API URL %q: %v", gatewayURL, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &socketSwitch{ln: ln, target: u.Host, path: u.Path, conns: map[net.Conn]struct{}{}}
	go s.serve()
	t.Cleanup(func() { ln.Close(); s.set(true) })
	return s
}

// URL is the address the browser connects to instead of the gateway's.
func (s *socketSwitch) URL() string { return "ws://" + s.ln.Addr().String() + s.path }

// Cut drops every open connection and refuses new ones; Restore relays again.
func (s *socketSwitch) Cut()     { s.set(true) }
func (s *socketSwitch) Restore() { s.set(false) }

func (s *socketSwitch) set(cut bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cut = cut
	if cut {
		for c := range s.conns {
			c.Close()
		}
	}
}

func (s *socketSwitch) serve() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		go s.relay(c)
	}
}

// track records c as open, unless the switch is cut (then it closes c).
func (s *socketSwitch) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cut {
		c.Close()
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *socketSwitch) untrack(c net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
	c.Close()
}

func (s *socketSwitch) relay(down net.Conn) {
	if !s.track(down) {
		return
	}
	defer s.untrack(down)
	up, err := net.DialTimeout("tcp", s.target, 5*time.Second)
	if err != nil || !s.track(up) {
		return
	}
	defer s.untrack(up)
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, down); done <- struct{}{} }()
	go func() { io.Copy(down, up); done <- struct{}{} }()
	<-done // either side gone: the deferred untracks close both
}
