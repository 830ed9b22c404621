package faultproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultControlPath is where the HTTP control endpoint listens.
const DefaultControlPath = "/_fault"

// Options configure a Proxy.
type Options struct {
	// Flavor is whose error bodies the proxy sends (default Plain).
	Flavor Flavor
	// ControlPath is the control endpoint's path (default "/_fault"); "-"
	// disables the endpoint.
	ControlPath string
	// Transport reaches the emulator; nil means a dedicated transport that
	// ignores proxy variables and never changes content encodings.
	Transport http.RoundTripper
	// Logger receives one line per injected fault; nil discards.
	Logger *slog.Logger
}

// Proxy is an http.Handler that forwards to one target and breaks what its
// fault says. It is safe for concurrent use.
type Proxy struct {
	target  *url.URL
	opts    Options
	tr      http.RoundTripper
	log     *slog.Logger
	st      state
	closing chan struct{} // closed by Close: ends every stall
}

// New returns a proxy to target, an http(s) base URL without a path (the
// request's path and query are kept as they are), passing everything.
func New(target string, opts Options) (*Proxy, error) {
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("faultproxy: target %q is not an http(s) URL", target)
	}
	if strings.Trim(u.Path, "/") != "" || u.RawQuery != "" {
		return nil, fmt.Errorf("faultproxy: target %q must not have a path or query", target)
	}
	if err := (Fault{Flavor: opts.Flavor}).Validate(); err != nil {
		return nil, err
	}
	if opts.Flavor == "" {
		opts.Flavor = Plain
	}
	if opts.ControlPath == "" {
		opts.ControlPath = DefaultControlPath
	}
	tr := opts.Transport
	if tr == nil {
		tr = &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			DisableCompression:  true,
			MaxIdleConnsPerHost: 32,
			IdleConnTimeout:     30 * time.Second,
		}
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Proxy{target: u, opts: opts, tr: tr, log: log, closing: make(chan struct{})}, nil
}

// Close ends every stall in progress (held requests then fail or go on)
// and closes idle connections to the target. The proxy still serves.
func (p *Proxy) Close() {
	select {
	case <-p.closing:
	default:
		close(p.closing)
	}
	if t, ok := p.tr.(interface{ CloseIdleConnections() }); ok {
		t.CloseIdleConnections()
	}
}

// ServeHTTP implements http.Handler.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p.opts.ControlPath != "-" && r.URL.Path == p.opts.ControlPath {
		p.control(w, r)
		return
	}
	ru := p.take(r)
	if ru == nil {
		p.forward(w, r, nil)
		return
	}
	flavor := ru.Flavor
	if flavor == "" {
		flavor = p.opts.Flavor
	}
	switch ru.Mode {
	case Error5xx:
		p.note(r, ru)
		writeError(w, r, flavor, false, ru.Status, time.Duration(ru.RetryAfter))
	case Throttle:
		p.note(r, ru)
		after := time.Duration(ru.RetryAfter)
		if after == 0 {
			after = time.Second
		}
		writeError(w, r, flavor, true, ru.Status, after)
	case Stall:
		if ru.After == 0 {
			p.note(r, ru)
			if !p.hold(r, time.Duration(ru.For), ru.For == 0) {
				return // the client gave up, or the proxy is closing
			}
			p.forward(w, r, nil)
			return
		}
		p.forward(w, r, ru)
	default: // Reset, Flip
		p.forward(w, r, ru)
	}
}

// note counts an injected fault and logs it.
func (p *Proxy) note(r *http.Request, ru *rule) {
	p.injected(ru.Mode)
	p.log.Info("fault injected", "mode", string(ru.Mode), "direction", string(ru.dir()), "method", r.Method,
		"path", r.URL.Path, "after", ru.After)
}

func (ru *rule) dir() Direction {
	if ru.Direction == "" {
		return Response
	}
	return ru.Direction
}

// hold waits d (forever when d is 0) and reports whether the request should
// go on. With drain, the request body is read and dropped first, so that
// the server notices when the client hangs up.
func (p *Proxy) hold(r *http.Request, d time.Duration, drain bool) bool {
	if drain && r.Body != nil {
		io.Copy(io.Discard, r.Body)
	}
	var timeout <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-r.Context().Done():
		return false
	case <-p.closing:
		return false
	case <-timeout:
		return true
	}
}

// errInjectedReset ends a request body the proxy is resetting.
var errInjectedReset = errors.New("faultproxy: injected reset")

// forward sends r to the target and copies the answer back, applying ru
// (a Stall with After > 0, a Reset or a Flip) to the chosen body.
func (p *Proxy) forward(w http.ResponseWriter, r *http.Request, ru *rule) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	out := r.Clone(ctx)
	out.RequestURI = ""
	out.URL.Scheme, out.URL.Host = p.target.Scheme, p.target.Host
	out.Host = r.Host // keep the Host the client signed and addressed
	removeHopHeaders(out.Header)
	out.Header.Del("Expect")
	var reqBody *bodyFault
	if r.ContentLength == 0 && len(r.TransferEncoding) == 0 {
		out.Body = nil
	} else if ru != nil && ru.dir() == Request {
		reqBody = &bodyFault{r: r.Body, p: p, ru: ru, req: r}
		out.Body = io.NopCloser(reqBody)
	}
	resp, err := p.tr.RoundTrip(out)
	if reqBody != nil && reqBody.reset {
		if resp != nil {
			resp.Body.Close()
		}
		p.abort(w)
		return
	}
	if err != nil {
		if ctx.Err() == nil {
			http.Error(w, "faultproxy: target unreachable", http.StatusBadGateway)
		}
		return
	}
	defer resp.Body.Close()
	h := w.Header()
	for k, vs := range resp.Header {
		h[k] = append([]string(nil), vs...)
	}
	removeHopHeaders(h)
	w.WriteHeader(resp.StatusCode)
	var body io.Reader = resp.Body
	var respFault *bodyFault
	if ru != nil && ru.dir() == Response {
		respFault = &bodyFault{r: resp.Body, p: p, ru: ru, req: r}
		body = respFault
	}
	rc := http.NewResponseController(w)
	buf := make([]byte, 32<<10)
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			rc.Flush()
		}
		if respFault != nil && respFault.reset {
			p.abort(w)
			return
		}
		if rerr != nil {
			if rerr != io.EOF {
				// The target broke off: break off too, so the client
				// does not take a short body for a whole one.
				p.abort(w)
			}
			return
		}
	}
}

// abort closes the client's connection at once, with a TCP RST when it
// can, so that the client sees a reset rather than a clean end.
func (p *Proxy) abort(w http.ResponseWriter) {
	// Hijack sends what was written so far (a Flush here would write a
	// status line the client should never see).
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler) // HTTP/2 or a recorder: the server drops the stream
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	conn.Close()
}

// bodyFault applies a Stall, Reset or Flip to a body as it is read.
type bodyFault struct {
	r     io.Reader
	p     *Proxy
	ru    *rule
	req   *http.Request
	n     int64 // bytes passed so far
	done  bool  // the fault has acted
	reset bool  // a Reset acted: stop here
}

func (b *bodyFault) Read(buf []byte) (int, error) {
	if b.reset {
		return 0, errInjectedReset
	}
	if !b.done && b.ru.Mode != Flip && b.n >= b.ru.After {
		return b.act()
	}
	if !b.done && b.ru.Mode != Flip {
		// Stop exactly at After so the fault acts on that boundary.
		if rem := b.ru.After - b.n; int64(len(buf)) > rem {
			buf = buf[:rem]
		}
	}
	n, err := b.r.Read(buf)
	if !b.done && b.ru.Mode == Flip && b.ru.After >= b.n && b.ru.After < b.n+int64(n) {
		buf[b.ru.After-b.n] ^= 0x01
		b.done = true
		b.p.note(b.req, b.ru)
	}
	b.n += int64(n)
	return n, err
}

// act is reached once After bytes have passed.
func (b *bodyFault) act() (int, error) {
	b.done = true
	b.p.note(b.req, b.ru)
	if b.ru.Mode == Reset {
		b.reset = true
		return 0, errInjectedReset
	}
	// Stall: hold, then go on (or fail when the client or the proxy left).
	// Holding an upload until the client gives up drains the rest of its
	// body first: only then does the server notice the client hang up.
	drain := b.ru.For == 0 && b.ru.dir() == Request
	if !b.p.hold(b.req, time.Duration(b.ru.For), drain) {
		return 0, errInjectedReset
	}
	return 0, nil
}

// hopHeaders are connection-level headers a proxy must not forward.
var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

func removeHopHeaders(h http.Header) {
	for _, f := range strings.Split(h.Get("Connection"), ",") {
		if f = strings.TrimSpace(f); f != "" {
			h.Del(f)
		}
	}
	for _, k := range hopHeaders {
		h.Del(k)
	}
}
