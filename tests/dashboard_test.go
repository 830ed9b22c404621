package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/wedsync/backup-replication/infra/local/apiclient"
	"github.com/wedsync/backup-replication/infra/local/stack"
	"github.com/wedsync/backup-replication/shared/api"
	"github.com/wedsync/backup-replication/shared/catalog"
)

// TestDashboardInABrowser opens the dashboard that the local stack's api
// function serves in headless Chromium, uploads a backup through the HTTP
// API, and watches its sealing row reach "sealed" (from the seal function's
// backup_sealing messages, which the page must have received over its
// WebSocket), then a progress bar per provider reach 100 % and the backup
// turn PROTECTED as the stack's replicate functions copy it; then the
// socket goes away (the page polls GET /status and says so) and comes back
// (live again); then the offsite provider's server stops, and the health
// function's next rounds turn its card into an outage. It asserts only
// what the page shows, never the copies' bytes.
func TestDashboardInABrowser(t *testing.T) {
	chromium := chromiumPath(t)
	began := time.Now()
	s, tap := startDashboardStack(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	org := api.NewID(time.Now())
	token := stack.DevToken(org, time.Hour)
	client := apiclient.New(s.APIURL, token)

	// An earlier backup, already PROTECTED, for the recent list.
	first := uploadBackup(ctx, t, client, org, "Chen & Moreau — contract.pdf", liveData{seed: 1, size: 300 << 10})
	wctx, wcancel := context.WithTimeout(ctx, 3*time.Minute)
	d, err := client.Wait(wctx, first.ID, 250*time.Millisecond, apiclient.Protected, nil)
	wcancel()
	if err != nil {
		t.Fatalf("the earlier backup is %s, not PROTECTED (%s): %v; see tests/artifacts/dashboard-stack.log", d.Backup.Status, replicaSummary(d), err)
	}

	sock := newSocketSwitch(t, s.WebSocketURL)
	b := newBrowser(t, chromium)
	frames := recordSealFrames(b)
	b.do(chromedp.Navigate(s.APIURL + "/#token=" + token + "&ws=" + url.QueryEscape(sock.URL())))
	b.waitFor("the live connection", `document.getElementById('connection').dataset.state === 'live'`, 30*time.Second, nil)
	if addr, _ := eval[string](b, `location.href`); strings.Contains(addr, token) {
		t.Error("the token stays in the address bar")
	}
	b.waitFor("a card per provider and the earlier backup", `['supabase','s3','gcs'].every(p => document.getElementById('provider-' + p))
		&& document.querySelector('#recent tbody').textContent.includes('Chen & Moreau')`, 30*time.Second, nil)
	b.waitFor("every provider up", `['supabase','s3','gcs'].every(p => document.getElementById('provider-' + p).dataset.health === 'up')`,
		time.Minute, nil)

	// Upload: a bar per provider reaches 100 %, the status turns PROTECTED.
	bk := uploadBackup(ctx, t, client, org, "Ferreira & Lund — wedding photos.tar.gz", liveData{seed: 2, size: 24 << 20})
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
	// The seal step's row comes first and ends sealed, at 100 %.
	seal := fmt.Sprintf(`document.getElementById('seal-%s')`, bk.ID)
	all = append(all, fmt.Sprintf(`(%s && %s.value === 100 && %s.dataset.state === 'SEALED'
		&& /sealed/.test(document.getElementById('seal-%s-label').textContent)
		&& document.getElementById('flight-%s-bars').firstElementChild.id === 'seal-%s-row')`, seal, seal, seal, bk.ID, bk.ID, bk.ID))
	b.waitFor("the sealed row and three bars at 100 % and PROTECTED", strings.Join(all, " && ")+
		fmt.Sprintf(` && document.getElementById('status-%s').dataset.status === 'PROTECTED'`, bk.ID), 5*time.Minute, sample)
	for _, p := range liveProviders {
		t.Logf("%s: the page showed %d positions between 0 and 100 %% before 100 %%", p, len(seen[p]))
	}
	// The seal's progress reached the page over its WebSocket: positions,
	// then one "sealed" (the catalog's seal alone would not show these).
	sealing, sealed := frames.of(bk.ID)
	t.Logf("seal: the page received %d backup_sealing positions and %d sealed over its WebSocket", sealing, sealed)
	if sealed != 1 || sealing < 1 {
		t.Errorf("the page received %d sealing positions and %d sealed messages for the backup; want positions, then one sealed", sealing, sealed)
	}
	labelled, _ := eval[bool](b, fmt.Sprintf(`[...document.querySelectorAll('#flight-%s progress')].every(p => p.labels.length === 1 && p.getAttribute('aria-valuetext'))`, bk.ID))
	if !labelled {
		t.Error("a progress bar has no label or no aria-valuetext")
	}
	b.waitFor("the backup PROTECTED in the recent list", `[...document.querySelectorAll('#recent tbody tr')].some(tr =>
		tr.textContent.includes('Ferreira & Lund') && tr.textContent.includes('PROTECTED'))`, 30*time.Second, nil)

	// The socket goes away: the page says so and polls GET /status; when the
	// WebSocket API is reachable again, it is live again.
	const statusFetches = `performance.getEntriesByType('resource').filter(e => new URL(e.name).pathname === '/status').length`
	before, _ := eval[float64](b, statusFetches)
	sock.Cut()
	b.waitFor("the polling state", `document.getElementById('connection').dataset.state === 'polling'
		&& /polling/i.test(document.getElementById('connection').textContent)`, 30*time.Second, nil)
	b.waitFor("a GET /status poll while the socket is down", fmt.Sprintf(`%s > %v`, statusFetches, before), 30*time.Second, nil)
	sock.Restore()
	b.waitFor("live again after the WebSocket API came back", `document.getElementById('connection').dataset.state === 'live'`,
		time.Minute, nil)
	requireNoFunctionCrash(t, tap, crashPattern)

	// The offsite provider stops: the health function's next rounds find its
	// canary failing, and its card shows the outage.
	s.GCS.Close()
	b.waitFor("the gcs outage on its card", `document.getElementById('provider-gcs').dataset.health === 'down'
		&& /down/i.test(document.getElementById('provider-gcs-health').textContent)
		&& document.getElementById('provider-gcs-error').textContent.trim() !== 'none'
		&& document.getElementById('provider-s3').dataset.health === 'up'
		&& [...document.querySelectorAll('#alerts li')].some(li => /gcs/.test(li.textContent) && /down/i.test(li.textContent))`,
		time.Minute, nil)
	gcsError, _ := eval[string](b, `document.getElementById('provider-gcs-error').textContent`)
	t.Logf("the gcs card's last error: %s", gcsError)
	time.Sleep(300 * time.Millisecond) // let the last frame paint
	shot := b.screenshot("dashboard.png")
	t.Logf("screenshot: %s", shot)

	// The same page on a phone.
	b.do(chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile))
	if overflow, _ := eval[bool](b, `document.documentElement.scrollWidth > window.innerWidth + 1`); overflow {
		t.Error("the page scrolls sideways on a 390 px wide phone")
	}
	// The long last error is folded to three lines there, and a tap shows
	// it whole.
	fold, err := eval[string](b, `(() => {
		const f = document.querySelector('#provider-gcs-error button.fold');
		if (!f) return 'no fold: ' + document.getElementById('provider-gcs-error').textContent;
		const lh = parseFloat(getComputedStyle(f).lineHeight), closed = f.getBoundingClientRect().height;
		f.click();
		const open = f.getBoundingClientRect().height, expanded = f.getAttribute('aria-expanded');
		f.click();
		return JSON.stringify({lh, closed, open, expanded, whole: f.textContent === f.title && f.textContent.length > 90});
	})()`)
	var folded struct {
		LH, Closed, Open float64
		Expanded         string
		Whole            bool
	}
	if err != nil || jsonUnmarshal([]byte(fold), &folded) != nil {
		t.Errorf("the gcs card's long error is not folded on a phone: %s %v", fold, err)
	} else if folded.Closed > 3.5*folded.LH || folded.Open <= folded.Closed || folded.Expanded != "true" || !folded.Whole {
		t.Errorf("the gcs card's error fold: %+v; want at most 3 lines closed, the whole text taller when tapped", folded)
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
	// With a provider down, a function may report an error to its event
	// source (that is how a copy goes back to its queue); it may not crash.
	requireNoFunctionCrash(t, tap, panicPattern)
	t.Logf("the whole run took %s (stack log: tests/artifacts/dashboard-stack.log)", time.Since(began).Round(time.Second))
}

// panicPattern matches a function's panic or runtime error.
var panicPattern = regexp.MustCompile(`\bpanic\b|runtime error`)

// requireNoFunctionCrash fails the test for every line of the stack's log
// that pattern matches.
func requireNoFunctionCrash(t *testing.T, tap *logTap, pattern *regexp.Regexp) {
	t.Helper()
	for _, l := range tap.Find(pattern.MatchString) {
		t.Errorf("a function crashed: %s", truncate([]byte(l), 600))
	}
}

// uploadBackup registers a backup through the API and uploads its bytes.
func uploadBackup(ctx context.Context, t *testing.T, c *apiclient.Client, org, name string, data liveData) catalog.Backup {
	t.Helper()
	size := data.size
	created, err := c.CreateBackup(ctx, api.CreateBackupRequest{OrganizationID: org, Name: name, Size: &size,
		SHA256: data.sha256(), ContentType: "application/gzip", IdempotencyKey: api.NewID(time.Now())})
	if err != nil {
		t.Fatalf("POST /backups %q: %v", name, err)
	}
	if err := c.Upload(ctx, created.Upload, data, data.size); err != nil {
		t.Fatalf("upload %q: %v", name, err)
	}
	return created.Backup
}

// sealFrames are the backup_sealing messages the page received over its
// WebSocket, as Chromium's network domain saw the frames arrive.
type sealFrames struct {
	mu   sync.Mutex
	msgs []map[string]any
}

// recordSealFrames starts recording the backup_sealing frames the page
// receives.
func recordSealFrames(b *browser) *sealFrames {
	b.t.Helper()
	f := &sealFrames{}
	err := chromedp.Listen(b.ctx, func(ev any) {
		e, ok := ev.(*network.EventWebSocketFrameReceived)
		if !ok || e.Response == nil || e.Response.Opcode != 1 {
			return
		}
		var m map[string]any
		if json.Unmarshal(e.Response.PayloadData, &m) != nil || m["type"] != "backup_sealing" {
			return
		}
		f.mu.Lock()
		f.msgs = append(f.msgs, m)
		f.mu.Unlock()
	})
	if err != nil {
		b.t.Fatal(err)
	}
	b.do(chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, network.Enable, network.EnableParams{})
		return err
	}))
	return f
}

// of counts a backup's sealing positions and sealed messages.
func (f *sealFrames) of(id string) (sealing, sealed int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, m := range f.msgs {
		if m["backupId"] != id {
			continue
		}
		switch m["step"] {
		case "sealing":
			sealing++
		case "sealed":
			sealed++
		}
	}
	return sealing, sealed
}
