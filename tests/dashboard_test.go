package tests

import (
	"context"
	"fmt"
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
	"github.com/wedsync/backup-replication/infra/faultproxy"
	"github.com/wedsync/backup-replication/infra/local/apiclient"
	"github.com/wedsync/backup-replication/infra/local/stack"
	"github.com/wedsync/backup-replication/shared/api"
)

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

// TestDashboardInABrowser opens the dashboard the API serves in headless
// Chromium, uploads a backup, and watches a progress bar per provider
// reach 100 % and the backup turn PROTECTED; then the socket goes away (the
// page polls GET /status and says so) and comes back (live again); then
// the offsite provider fails its probes, and its card shows the outage.
func TestDashboardInABrowser(t *testing.T) {
	chromium := chromiumPath(t)
	w := newLiveWorld(t, true)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	org := api.NewID(time.Now())
	token := stack.DevToken(org, time.Hour)
	client := apiclient.New(w.apiURL, token)

	// An earlier backup, already PROTECTED, for the recent list.
	first, err := w.upload(ctx, client, org, "Chen & Moreau — contract.pdf", liveData{seed: 1, size: 300 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.replicate(ctx, first); err != nil {
		t.Fatal(err)
	}

	b := newBrowser(t, chromium)
	b.do(chromedp.Navigate(w.apiURL + "/#token=" + token))
	b.waitFor("the live connection", `document.getElementById('connection').dataset.state === 'live'`, 30*time.Second, nil)
	if addr, _ := eval[string](b, `location.href`); strings.Contains(addr, token) {
		t.Error("the token stays in the address bar")
	}
	b.waitFor("a card per provider and the earlier backup", `['supabase','s3','gcs'].every(p => document.getElementById('provider-' + p))
		&& document.querySelector('#recent tbody').textContent.includes('Chen & Moreau')`, 30*time.Second, nil)
	w.probe(ctx)
	b.waitFor("every provider up", `['supabase','s3','gcs'].every(p => document.getElementById('provider-' + p).dataset.health === 'up')`,
		30*time.Second, nil)

	// Upload: a bar per provider reaches 100 %, the status turns PROTECTED.
	bk, err := w.upload(ctx, client, org, "Ferreira & Lund — wedding photos.tar.gz", liveData{seed: 2, size: 24 << 20})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w.replicate(ctx, bk) }()
	bar := func(p string) string { return fmt.Sprintf(`document.getElementById('progress-%s-%s')`, bk.ID, p) }
	var all []string
	for _, p := range liveProviders {
		all = append(all, fmt.Sprintf(`(%s && %s.value === 100 && %s.dataset.state === 'VERIFIED')`, bar(p), bar(p), bar(p)))
	}
	seen := map[string]map[float64]bool{}
	sample := func() {
		for _, p := range liveProviders {
			if v, err := eval[float64](b, fmt.Sprintf(`(%s || {value: -1}).value`, bar(p))); err == nil && v > 0 && v < 100 {
				if seen[p] == nil {
					seen[p] = map[float64]bool{}
				}
				seen[p][v] = true
			}
		}
	}
	b.waitFor("three bars at 100 % and PROTECTED", strings.Join(all, " && ")+
		fmt.Sprintf(` && document.getElementById('status-%s').dataset.status === 'PROTECTED'`, bk.ID), 5*time.Minute, sample)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, p := range liveProviders {
		t.Logf("%s: the page showed %d positions between 0 and 100 %% before 100 %%", p, len(seen[p]))
	}
	labelled, _ := eval[bool](b, fmt.Sprintf(`[...document.querySelectorAll('#flight-%s progress')].every(p => p.labels.length === 1 && p.getAttribute('aria-valuetext'))`, bk.ID))
	if !labelled {
		t.Error("a progress bar has no label or no aria-valuetext")
	}
	b.waitFor("the backup PROTECTED in the recent list", `[...document.querySelectorAll('#recent tbody tr')].some(tr =>
		tr.textContent.includes('Ferreira & Lund') && tr.textContent.includes('PROTECTED'))`, 30*time.Second, nil)

	// The socket goes away: the page says so and polls GET /status; when the
	// WebSocket API is back, it is live again.
	polls := w.statusPolls.Load()
	w.stopGateway()
	b.waitFor("the polling state", `document.getElementById('connection').dataset.state === 'polling'
		&& /polling/i.test(document.getElementById('connection').textContent)`, 30*time.Second, nil)
	for deadline := time.Now().Add(30 * time.Second); w.statusPolls.Load() <= polls; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the page did not poll GET /status while the socket was down")
		}
	}
	w.startGateway()
	b.waitFor("live again after the WebSocket API came back", `document.getElementById('connection').dataset.state === 'live'`,
		time.Minute, nil)

	// The offsite provider goes down: its card shows the outage.
	w.gcsProxy.Set(faultproxy.Fault{Mode: faultproxy.Error5xx, Status: 503})
	res := w.probe(ctx)
	if res["gcs"].OK || !res["s3"].OK || !res["supabase"].OK {
		t.Fatalf("probes: %+v", res)
	}
	b.waitFor("the gcs outage on its card", `document.getElementById('provider-gcs').dataset.health === 'down'
		&& /down/i.test(document.getElementById('provider-gcs-health').textContent)
		&& /canary/.test(document.getElementById('provider-gcs-error').textContent)
		&& document.getElementById('provider-s3').dataset.health === 'up'
		&& document.querySelectorAll('#alerts li').length === 1`, 30*time.Second, nil)
	time.Sleep(300 * time.Millisecond) // let the last frame paint
	shot := b.screenshot("dashboard.png")
	t.Logf("screenshot: %s", shot)

	// The same page on a phone.
	b.do(chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile))
	if overflow, _ := eval[bool](b, `document.documentElement.scrollWidth > window.innerWidth + 1`); overflow {
		t.Error("the page scrolls sideways on a 390 px wide phone")
	}
	b.screenshot("dashboard-phone.png")

	for _, f := range b.pageFaults() {
		// A dropped socket is logged by the browser itself; anything else
		// (an exception, a CSP violation) is ours.
		if strings.Contains(f, "WebSocket connection to") {
			continue
		}
		t.Errorf("page fault: %s", f)
	}
}
