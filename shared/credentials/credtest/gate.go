// Package credtest holds the network-edge doubles that credential tests
// need and the emulators do not provide: a gate that lets through only
// credentials that are currently valid (in front of fake-gcs-server or the
// Supabase Storage emulator), moto with IAM enforcement switched on, and a
// fake of Google's IAM service-account-key API and OAuth token endpoint.
// Nothing in our own code is replaced: providers and rotators talk HTTP to
// these as they would to the real services. For tests only.
package credtest

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
)

// Request is what a Gate saw of one request.
type Request struct {
	Method string
	Path   string
	// Credential identifies the credential the request carried (an access
	// key id, a key's id, or a fingerprint of a bearer key), "" for none.
	Credential string
	// Refused is true when the gate answered the request itself.
	Refused bool
	Status  int
}

// GateConfig says how a Gate judges requests.
type GateConfig struct {
	// Identify names the credential a request carries ("" for none).
	Identify func(*http.Request) string
	// Allow reports whether a request carrying cred may pass. A request
	// without a credential always passes (signed URLs, upload sessions).
	Allow func(cred string) bool
	// Refuse writes the provider's answer to a refused request.
	Refuse func(w http.ResponseWriter)
}

// Gate is a reverse proxy in front of an emulator that refuses requests
// whose credential is not (or no longer) allowed, and records every
// request it saw.
type Gate struct {
	// URL is the gate's base URL; point the provider at it.
	URL string

	cfg GateConfig
	srv *httptest.Server
	mu  sync.Mutex
	log []Request
}

// NewGate starts a gate in front of upstream (a base URL).
func NewGate(upstream string, cfg GateConfig) (*Gate, error) {
	u, err := url.Parse(upstream)
	if err != nil {
		return nil, err
	}
	g := &Gate{cfg: cfg}
	proxy := httputil.NewSingleHostReverseProxy(u)
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cred := cfg.Identify(r)
		rec := Request{Method: r.Method, Path: r.URL.Path, Credential: cred}
		if cred != "" && !cfg.Allow(cred) {
			rec.Refused, rec.Status = true, http.StatusUnauthorized
			g.record(rec)
			cfg.Refuse(w)
			return
		}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		proxy.ServeHTTP(sw, r)
		rec.Status = sw.status
		g.record(rec)
	}))
	g.URL = g.srv.URL
	return g, nil
}

func (g *Gate) record(r Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.log = append(g.log, r)
}

// Requests returns what the gate has seen so far, in order.
func (g *Gate) Requests() []Request {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]Request(nil), g.log...)
}

// Close stops the gate.
func (g *Gate) Close() { g.srv.Close() }

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// KeySet is a concurrent set of allowed credentials.
type KeySet struct {
	mu   sync.Mutex
	keys map[string]bool
}

// NewKeySet returns a set holding keys.
func NewKeySet(keys ...string) *KeySet {
	s := &KeySet{keys: map[string]bool{}}
	for _, k := range keys {
		s.keys[k] = true
	}
	return s
}

// Add allows key.
func (s *KeySet) Add(key string) { s.mu.Lock(); s.keys[key] = true; s.mu.Unlock() }

// Remove revokes key.
func (s *KeySet) Remove(key string) { s.mu.Lock(); delete(s.keys, key); s.mu.Unlock() }

// Has reports whether key is allowed.
func (s *KeySet) Has(key string) bool { s.mu.Lock(); defer s.mu.Unlock(); return s.keys[key] }

// Fingerprint is a short, non-reversible name for a key in test output.
func Fingerprint(key string) string {
	sum := sha256.Sum256([]byte(key))
	return "fp-" + hex.EncodeToString(sum[:6])
}

// SupabaseGate fronts the Supabase Storage emulator like a hosted
// project's API gateway that knows only the keys in keys: a request whose
// apikey (or bearer token) is not among them gets 401 "Invalid API key".
// Requests' Credential is the key's Fingerprint.
func SupabaseGate(upstream string, keys *KeySet) (*Gate, error) {
	byFP := func(fp string) bool {
		keys.mu.Lock()
		defer keys.mu.Unlock()
		for k := range keys.keys {
			if Fingerprint(k) == fp {
				return true
			}
		}
		return false
	}
	return NewGate(upstream, GateConfig{
		Identify: func(r *http.Request) string {
			k := r.Header.Get("apikey")
			if k == "" {
				k, _ = strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			}
			if k == "" {
				return ""
			}
			return Fingerprint(k)
		},
		Allow: byFP,
		Refuse: func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"message":"Invalid API key","hint":"Double check your Supabase anon or service_role API key."}`))
		},
	})
}
