package api_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wedsync/backup-replication/shared/api"
)

// issuerKeys are an issuer's signing keys, generated for the test: two RSA
// keys (the second published only when the issuer rotates) and a P-256 key.
type issuerKeys struct {
	rsa1, rsa2 *rsa.PrivateKey
	ec         *ecdsa.PrivateKey
}

var (
	keysOnce sync.Once
	keys     issuerKeys
)

func testKeys(t *testing.T) issuerKeys {
	t.Helper()
	keysOnce.Do(func() {
		var err error
		if keys.rsa1, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if keys.rsa2, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if keys.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			panic(err)
		}
	})
	return keys
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// rsaJWK and ecJWK publish a key as Supabase's JWKS endpoint does.
func rsaJWK(kid string, k *rsa.PublicKey) map[string]any {
	return map[string]any{"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig", "key_ops": []string{"verify"}, "ext": true,
		"n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes())}
}

func ecJWK(kid string, k *ecdsa.PublicKey) map[string]any {
	raw, err := k.Bytes()
	if err != nil {
		panic(err)
	}
	return map[string]any{"kty": "EC", "kid": kid, "alg": "ES256", "crv": "P-256", "use": "sig", "key_ops": []string{"verify"},
		"ext": true, "x": b64(raw[1:33]), "y": b64(raw[33:])}
}

// jwksServer is the issuer's JWKS endpoint on loopback (a stand-in for
// https://<ref>.supabase.co/auth/v1/.well-known/jwks.json).
type jwksServer struct {
	*httptest.Server
	mu     sync.Mutex
	keys   []map[string]any
	status int
	hits   int
}

func newJWKSServer(t *testing.T, keys ...map[string]any) *jwksServer {
	s := &jwksServer{keys: keys, status: http.StatusOK}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.hits++
		if s.status != http.StatusOK {
			w.WriteHeader(s.status)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"keys": s.keys})
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) publish(keys ...map[string]any) { s.mu.Lock(); s.keys = keys; s.mu.Unlock() }
func (s *jwksServer) answer(status int)              { s.mu.Lock(); s.status = status; s.mu.Unlock() }
func (s *jwksServer) reads() int                     { s.mu.Lock(); defer s.mu.Unlock(); return s.hits }
func (s *jwksServer) url() string                    { return s.URL + "/auth/v1/.well-known/jwks.json" }

// testClock is a settable clock for token times and the key cache.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// signed makes a token for org at clock time now, signed with method and
// key under kid ("" for none); mod may change the claims.
func signed(t *testing.T, now time.Time, method jwt.SigningMethod, key any, kid, org string, mod func(jwt.MapClaims)) string {
	t.Helper()
	c := jwt.MapClaims{"iss": testIssuer, "aud": testAudience, "sub": "user-" + org, "iat": now.Unix(),
		"exp": now.Add(time.Hour).Unix(), "app_metadata": map[string]any{"org_id": org}}
	if mod != nil {
		mod(c)
	}
	tok := jwt.NewWithClaims(method, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// authenticate runs a on a request bearing tok.
func authenticate(a api.Authenticator, tok string) (api.Principal, error) {
	r, _ := http.NewRequest(http.MethodGet, "/backups", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	return a.Authenticate(r)
}

func newJWKSAuth(t *testing.T, url string, secret []byte, clock *testClock) *api.JWTAuthenticator {
	t.Helper()
	a, err := api.NewJWTAuthenticator(api.JWTConfig{JWKSURL: url, Secret: secret, Issuer: testIssuer, Audience: testAudience,
		JWKSCacheTTL: 10 * time.Minute, JWKSMinRefresh: time.Minute, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestJWKSTokens: RS256 and ES256 tokens verify against the published keys;
// expired, foreign, mis-addressed, unsigned and algorithm-confused tokens
// do not, whether or not a shared secret is configured as well.
func TestJWKSTokens(t *testing.T) {
	k := testKeys(t)
	clock := &testClock{t: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)}
	octSecret := []byte("a-symmetric-key-someone-published-in-the-set")
	srv := newJWKSServer(t, rsaJWK("rsa-1", &k.rsa1.PublicKey), ecJWK("ec-1", &k.ec.PublicKey),
		map[string]any{"kty": "oct", "kid": "oct-1", "k": b64(octSecret)})
	rsaPub, _ := x509.MarshalPKIXPublicKey(&k.rsa1.PublicKey)
	rsaPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: rsaPub})
	now := clock.Now()

	cases := []struct {
		name string
		tok  string
		ok   bool
	}{
		{"RS256", signed(t, now, jwt.SigningMethodRS256, k.rsa1, "rsa-1", "org1", nil), true},
		{"ES256", signed(t, now, jwt.SigningMethodES256, k.ec, "ec-1", "org1", nil), true},
		{"ES256 without kid", signed(t, now, jwt.SigningMethodES256, k.ec, "", "org1", nil), true},
		{"expired", signed(t, now, jwt.SigningMethodRS256, k.rsa1, "rsa-1", "org1", func(c jwt.MapClaims) {
			c["exp"] = now.Add(-time.Hour).Unix()
		}), false},
		{"no expiry", signed(t, now, jwt.SigningMethodRS256, k.rsa1, "rsa-1", "org1", func(c jwt.MapClaims) { delete(c, "exp") }), false},
		{"wrong issuer", signed(t, now, jwt.SigningMethodRS256, k.rsa1, "rsa-1", "org1", func(c jwt.MapClaims) {
			c["iss"] = "https://evil.supabase.co/auth/v1"
		}), false},
		{"wrong audience", signed(t, now, jwt.SigningMethodES256, k.ec, "ec-1", "org1", func(c jwt.MapClaims) { c["aud"] = "anon" }), false},
		{"signed by a key not in the set", signed(t, now, jwt.SigningMethodRS256, k.rsa2, "rsa-1", "org1", nil), false},
		{"RS256 naming the EC key", signed(t, now, jwt.SigningMethodRS256, k.rsa1, "ec-1", "org1", nil), false},
		{"ES256 naming the RSA key", signed(t, now, jwt.SigningMethodES256, k.ec, "rsa-1", "org1", nil), false},
		{"HS256 keyed with the RSA public key (PEM)", signed(t, now, jwt.SigningMethodHS256, rsaPEM, "rsa-1", "org1", nil), false},
		{"HS256 keyed with the RSA public key (DER)", signed(t, now, jwt.SigningMethodHS256, rsaPub, "rsa-1", "org1", nil), false},
		{"HS256 keyed with a symmetric key of the set", signed(t, now, jwt.SigningMethodHS256, octSecret, "oct-1", "org1", nil), false},
		{"alg none", signed(t, now, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "rsa-1", "org1", nil), false},
		{"PS256 with the RSA key", signed(t, now, jwt.SigningMethodPS256, k.rsa1, "rsa-1", "org1", nil), false},
		{"no organization", signed(t, now, jwt.SigningMethodRS256, k.rsa1, "rsa-1", "org1", func(c jwt.MapClaims) {
			delete(c, "app_metadata")
		}), false},
	}
	for _, mode := range []struct {
		name   string
		secret []byte
	}{{"jwks only", nil}, {"jwks and shared secret", testSecret}} {
		a := newJWKSAuth(t, srv.url(), mode.secret, clock)
		for _, c := range cases {
			p, err := authenticate(a, c.tok)
			if c.ok && (err != nil || p.OrganizationID != "org1" || p.Subject != "user-org1") {
				t.Errorf("%s, %s: %+v, %v; want org1 accepted", mode.name, c.name, p, err)
			}
			if !c.ok && err == nil {
				t.Errorf("%s, %s: accepted as %+v", mode.name, c.name, p)
			}
		}
		hs := signed(t, now, jwt.SigningMethodHS256, testSecret, "", "org1", nil)
		if _, err := authenticate(a, hs); (err == nil) != (mode.secret != nil) {
			t.Errorf("%s: HS256 with the shared secret: err %v", mode.name, err)
		}
	}
	if n := srv.reads(); n != 2 {
		t.Errorf("the key set was read %d times by two authenticators, want once each", n)
	}
}

// TestJWKSRotation: a token signed with a key the issuer has not published
// yet is refused without the key set being read more than once a minute,
// however many such tokens come; once the issuer publishes it (and the
// minute has passed), the token verifies. A key withdrawn from the set stops
// verifying at the next read, and an issuer that cannot be reached leaves
// the keys already read in use.
func TestJWKSRotation(t *testing.T) {
	k := testKeys(t)
	clock := &testClock{t: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)}
	srv := newJWKSServer(t, rsaJWK("rsa-1", &k.rsa1.PublicKey))
	a := newJWKSAuth(t, srv.url(), nil, clock)
	tok1 := func() string { return signed(t, clock.Now(), jwt.SigningMethodRS256, k.rsa1, "rsa-1", "org1", nil) }
	tok2 := func() string { return signed(t, clock.Now(), jwt.SigningMethodRS256, k.rsa2, "rsa-2", "org1", nil) }

	if _, err := authenticate(a, tok1()); err != nil {
		t.Fatalf("current key: %v", err)
	}
	for range 20 {
		if _, err := authenticate(a, tok2()); err == nil || !strings.Contains(err.Error(), "unknown key id") {
			t.Fatalf("unpublished key: err %v, want unknown key id", err)
		}
	}
	if n := srv.reads(); n != 1 {
		t.Fatalf("key set read %d times for 1 known and 20 unknown-kid tokens within a minute, want 1", n)
	}

	srv.publish(rsaJWK("rsa-1", &k.rsa1.PublicKey), rsaJWK("rsa-2", &k.rsa2.PublicKey))
	clock.Advance(30 * time.Second)
	if _, err := authenticate(a, tok2()); err == nil {
		t.Fatal("the key set was read again within a minute of the last read")
	}
	clock.Advance(31 * time.Second)
	if p, err := authenticate(a, tok2()); err != nil || p.OrganizationID != "org1" {
		t.Fatalf("rotated key once published: %+v, %v", p, err)
	}
	if _, err := authenticate(a, tok1()); err != nil {
		t.Fatalf("the old key, still published: %v", err)
	}

	// The issuer withdraws the old key; the cache's TTL passes.
	srv.publish(rsaJWK("rsa-2", &k.rsa2.PublicKey))
	clock.Advance(11 * time.Minute)
	old := tok1()
	if _, err := authenticate(a, old); err == nil {
		t.Fatal("a withdrawn key still verifies after the cache's TTL")
	}
	// The issuer goes down: keys already read keep working, and the
	// endpoint is not hammered.
	srv.answer(http.StatusServiceUnavailable)
	clock.Advance(11 * time.Minute)
	before := srv.reads()
	for range 5 {
		if _, err := authenticate(a, tok2()); err != nil {
			t.Fatalf("issuer down, known key: %v", err)
		}
	}
	if n := srv.reads() - before; n != 1 {
		t.Errorf("issuer down: %d reads for 5 tokens, want 1", n)
	}
}

// TestJWKSThroughTheAPI: the API accepts an ES256 token of the issuer's
// key set and scopes the caller to its organization; an HS256 token keyed
// with the issuer's public key is refused.
func TestJWKSThroughTheAPI(t *testing.T) {
	k := testKeys(t)
	srv := newJWKSServer(t, ecJWK("ec-1", &k.ec.PublicKey), rsaJWK("rsa-1", &k.rsa1.PublicKey))
	e := newEnv(t, func(_ *api.Config, d *api.Deps) {
		a, err := api.NewJWTAuthenticator(api.JWTConfig{JWKSURL: srv.url(), Issuer: testIssuer, Audience: testAudience})
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Prefetch(t.Context()); err != nil {
			t.Fatal(err)
		}
		d.Auth = a
	})
	rsaPub, _ := x509.MarshalPKIXPublicKey(&k.rsa1.PublicKey)
	for _, c := range []struct {
		name   string
		tok    string
		status int
	}{
		{"ES256", signed(t, time.Now(), jwt.SigningMethodES256, k.ec, "ec-1", "org1", nil), http.StatusOK},
		{"HS256 keyed with the public key", signed(t, time.Now(), jwt.SigningMethodHS256, rsaPub, "rsa-1", "org1", nil), http.StatusUnauthorized},
		{"other organization", signed(t, time.Now(), jwt.SigningMethodES256, k.ec, "ec-1", "org2", nil), http.StatusForbidden},
	} {
		req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/backups?organizationId=org1", nil)
		req.Header.Set("Authorization", "Bearer "+c.tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Errorf("%s: %d, want %d", c.name, resp.StatusCode, c.status)
		}
	}
}

// TestJWKSConfig: settings that cannot work are refused at start, each
// naming its variable; a key set that cannot be read shows at Prefetch.
func TestJWKSConfig(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  api.JWTConfig
		want string
	}{
		{"no key at all", api.JWTConfig{Issuer: "i", Audience: "a"}, "API_JWT_JWKS_URL"},
		{"plain http to another host", api.JWTConfig{JWKSURL: "http://example.supabase.co/auth/v1/.well-known/jwks.json",
			Issuer: "i", Audience: "a"}, "must be https"},
		{"relative URL", api.JWTConfig{JWKSURL: "/jwks.json", Issuer: "i", Audience: "a"}, "not an absolute URL"},
		{"short secret beside a JWKS", api.JWTConfig{JWKSURL: "https://x.supabase.co/auth/v1/.well-known/jwks.json",
			Secret: []byte("short"), Issuer: "i", Audience: "a"}, "API_JWT_SECRET"},
	} {
		if _, err := api.NewJWTAuthenticator(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want one saying %q", c.name, err, c.want)
		}
	}
	for _, c := range []struct {
		name  string
		serve func(w http.ResponseWriter)
		want  string
	}{
		{"404", func(w http.ResponseWriter) { w.WriteHeader(http.StatusNotFound) }, "HTTP 404"},
		{"not JSON", func(w http.ResponseWriter) { w.Write([]byte("<html>")) }, "not a JSON Web Key Set"},
		{"only a symmetric key", func(w http.ResponseWriter) { w.Write([]byte(`{"keys":[{"kty":"oct","kid":"k","k":"c2VjcmV0"}]}`)) },
			"no RS256 or ES256 signing key"},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { c.serve(w) }))
		a, err := api.NewJWTAuthenticator(api.JWTConfig{JWKSURL: srv.URL, Issuer: "i", Audience: "a"})
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Prefetch(t.Context()); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Prefetch: %v, want an error saying %q", c.name, err, c.want)
		}
		srv.Close()
	}
}
