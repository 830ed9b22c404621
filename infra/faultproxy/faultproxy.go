// Package faultproxy is a reverse proxy to put in front of an emulator
// (moto, fake-gcs-server, the Supabase Storage emulator) so that tests can
// break the network edge on demand: answer 5xx or throttle with a body the
// real provider would send, stall, reset a connection in the middle of a
// body, or flip one byte of a body on its way up or down. Faults are set
// while requests flow, through the Go API (Proxy.Set) or, for the local
// stack, through an HTTP control endpoint on the proxy itself:
//
//	POST   /_fault  {"mode":"5xx"}                      set a fault (the body is a Fault)
//	GET    /_fault                                      the fault in force and the counters
//	DELETE /_fault                                      back to pass
//
// Nothing in our own code is mocked: providers talk to the proxy exactly as
// they would talk to the provider, and see what a failing provider would
// make them see (DESIGN.md, "Testing with real parts").
package faultproxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Mode is what the proxy does to a request that matches the fault.
type Mode string

// The modes.
const (
	// Pass forwards every request untouched.
	Pass Mode = "pass"
	// Error5xx answers at once with Fault.Status (default 503) and the
	// error body the provider would send; the request never reaches the
	// emulator.
	Error5xx Mode = "5xx"
	// Throttle answers at once with the provider's slow-down answer: S3's
	// 503 SlowDown XML, GCS's and Supabase's 429, with a Retry-After header.
	Throttle Mode = "throttle"
	// Stall holds the request: before it is forwarded (Fault.After == 0), or
	// once After bytes of the chosen body have passed. It is held for
	// Fault.For, then goes on as if nothing happened, or, when For is 0,
	// until the client gives up.
	Stall Mode = "stall"
	// Reset closes the client's connection abruptly (TCP RST) after After
	// bytes of the response body were sent, or after After bytes of the
	// request body were forwarded to the emulator (the emulator sees a
	// truncated request).
	Reset Mode = "reset"
	// Flip inverts the lowest bit of the body byte at offset After, in the
	// response or in the request as it goes to the emulator. Lengths and
	// headers are unchanged, so only a content check can notice.
	Flip Mode = "flip"
)

// Direction says which body a Stall, Reset or Flip acts on.
type Direction string

// The directions. The default is Response.
const (
	Response Direction = "response"
	Request  Direction = "request"
)

// Flavor is whose error bodies the proxy imitates.
type Flavor string

// The flavors. Plain sends a short text body.
const (
	Plain    Flavor = "plain"
	S3       Flavor = "s3"
	GCS      Flavor = "gcs"
	Supabase Flavor = "supabase"
)

// Fault describes what to break. The zero Fault (or Mode "pass") breaks
// nothing. As JSON, durations are Go duration strings ("1.5s") or whole
// milliseconds.
type Fault struct {
	Mode Mode `json:"mode"`
	// Direction is the body Stall (with After > 0), Reset and Flip act on.
	Direction Direction `json:"direction,omitempty"`
	// Methods limits the fault to these HTTP methods; empty means any.
	Methods []string `json:"methods,omitempty"`
	// Path, a regular expression, limits the fault to requests whose
	// request URI (escaped path and query) it matches; empty means any.
	Path string `json:"path,omitempty"`
	// Count limits the fault to the next Count matching requests, after
	// which the proxy passes everything; 0 means until the fault is changed.
	Count int `json:"count,omitempty"`
	// Status is the status Error5xx answers with (default 503) or Throttle
	// answers with (default: the flavor's own, 503 for S3, 429 otherwise).
	Status int `json:"status,omitempty"`
	// RetryAfter is sent as Retry-After (whole seconds, at least 1) by
	// Throttle (default 1s) and, when set, by Error5xx.
	RetryAfter Duration `json:"retryAfter,omitempty"`
	// For is how long Stall holds; 0 means until the client gives up.
	For Duration `json:"for,omitempty"`
	// After is the number of body bytes that pass before Stall, Reset or
	// Flip acts (Flip changes the byte at this offset).
	After int64 `json:"after,omitempty"`
	// Flavor overrides the proxy's flavor for this fault's error bodies.
	Flavor Flavor `json:"flavor,omitempty"`
}

// Validate reports every problem with f at once.
func (f Fault) Validate() error {
	var errs []error
	switch f.Mode {
	case "", Pass, Error5xx, Throttle, Stall, Reset, Flip:
	default:
		errs = append(errs, fmt.Errorf("faultproxy: mode %q is not pass, 5xx, throttle, stall, reset or flip", f.Mode))
	}
	switch f.Direction {
	case "", Response, Request:
	default:
		errs = append(errs, fmt.Errorf("faultproxy: direction %q is not response or request", f.Direction))
	}
	switch f.Flavor {
	case "", Plain, S3, GCS, Supabase:
	default:
		errs = append(errs, fmt.Errorf("faultproxy: flavor %q is not plain, s3, gcs or supabase", f.Flavor))
	}
	if f.Path != "" {
		if _, err := regexp.Compile(f.Path); err != nil {
			errs = append(errs, fmt.Errorf("faultproxy: path: %w", err))
		}
	}
	if f.Count < 0 || f.After < 0 || f.For < 0 || f.RetryAfter < 0 {
		errs = append(errs, errors.New("faultproxy: count, after, for and retryAfter must not be negative"))
	}
	if f.Status != 0 && (f.Status < 400 || f.Status > 599) {
		errs = append(errs, fmt.Errorf("faultproxy: status %d is not an HTTP error status", f.Status))
	}
	return errors.Join(errs...)
}

// Duration is a time.Duration that reads JSON as a Go duration string or
// as whole milliseconds, and writes a string.
type Duration time.Duration

// MarshalJSON writes the duration as a string such as "1.5s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads "1.5s" or 1500 (milliseconds).
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("duration %q: %w", s, err)
		}
		*d = Duration(v)
		return nil
	}
	ms, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return fmt.Errorf("duration %s is neither a string like \"2s\" nor whole milliseconds", b)
	}
	*d = Duration(time.Duration(ms) * time.Millisecond)
	return nil
}

// Stats counts what the proxy has seen and done since it started.
type Stats struct {
	// Requests is every proxied request (control requests excluded).
	Requests int64 `json:"requests"`
	// Matched is the requests the fault in force applied to.
	Matched int64 `json:"matched"`
	// Injected is the faults that took effect: an error answered, a stall
	// begun, a connection reset, a byte flipped. A Reset or Flip whose body
	// was shorter than After matched but injected nothing.
	Injected int64 `json:"injected"`
	// ByMode is Injected by mode.
	ByMode map[Mode]int64 `json:"byMode"`
	// Remaining is how many more requests the fault applies to (0 when its
	// Count was 0 or it is used up).
	Remaining int `json:"remaining"`
}

// rule is a Fault prepared for matching.
type rule struct {
	Fault
	path *regexp.Regexp
}

func (r *rule) matches(req *http.Request) bool {
	if len(r.Methods) > 0 {
		ok := false
		for _, m := range r.Methods {
			if strings.EqualFold(m, req.Method) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return r.path == nil || r.path.MatchString(req.URL.RequestURI())
}

// state is the proxy's mutable part.
type state struct {
	mu        sync.Mutex
	rule      *rule // nil: pass
	remaining int
	stats     Stats
}

// Set puts f in force for the requests that follow (requests in flight keep
// the fault they were given).
func (p *Proxy) Set(f Fault) error {
	if err := f.Validate(); err != nil {
		return err
	}
	var r *rule
	if f.Mode != "" && f.Mode != Pass {
		r = &rule{Fault: f}
		if f.Path != "" {
			r.path = regexp.MustCompile(f.Path)
		}
	}
	p.st.mu.Lock()
	defer p.st.mu.Unlock()
	p.st.rule, p.st.remaining = r, f.Count
	return nil
}

// Pass removes the fault in force.
func (p *Proxy) Pass() { p.Set(Fault{Mode: Pass}) }

// Fault returns the fault in force (Mode "pass" when none).
func (p *Proxy) Fault() Fault {
	p.st.mu.Lock()
	defer p.st.mu.Unlock()
	if p.st.rule == nil {
		return Fault{Mode: Pass}
	}
	return p.st.rule.Fault
}

// Stats returns the counters.
func (p *Proxy) Stats() Stats {
	p.st.mu.Lock()
	defer p.st.mu.Unlock()
	s := p.st.stats
	s.ByMode = make(map[Mode]int64, len(p.st.stats.ByMode))
	for k, v := range p.st.stats.ByMode {
		s.ByMode[k] = v
	}
	s.Remaining = 0
	if p.st.rule != nil && p.st.rule.Count > 0 {
		s.Remaining = p.st.remaining
	}
	return s
}

// Injected is Stats().Injected.
func (p *Proxy) Injected() int64 { return p.Stats().Injected }

// take counts req and returns the rule that applies to it, if any, using
// up one of a counted fault's requests.
func (p *Proxy) take(req *http.Request) *rule {
	p.st.mu.Lock()
	defer p.st.mu.Unlock()
	p.st.stats.Requests++
	r := p.st.rule
	if r == nil || !r.matches(req) {
		return nil
	}
	if r.Count > 0 {
		p.st.remaining--
		if p.st.remaining <= 0 {
			p.st.rule = nil
		}
	}
	p.st.stats.Matched++
	return r
}

// injected records that a fault of mode m took effect.
func (p *Proxy) injected(m Mode) {
	p.st.mu.Lock()
	defer p.st.mu.Unlock()
	p.st.stats.Injected++
	if p.st.stats.ByMode == nil {
		p.st.stats.ByMode = map[Mode]int64{}
	}
	p.st.stats.ByMode[m]++
}
