package api

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Defaults of JWTConfig's key-set cache.
const (
	// DefaultJWKSCacheTTL matches how long Supabase's edge caches its
	// JWKS: a key published there reaches us within twice that at worst,
	// and at once when a token names it (see DefaultJWKSMinRefresh).
	DefaultJWKSCacheTTL = 10 * time.Minute
	// DefaultJWKSMinRefresh bounds the reads of the key set that tokens
	// with unknown key ids can cause: at most one a minute, so a flood of
	// forged kids cannot turn into a flood of requests to the issuer.
	DefaultJWKSMinRefresh = time.Minute
	// jwksMaxBytes bounds the key set's size.
	jwksMaxBytes = 1 << 20
	// minRSABits refuses RSA keys too short to trust.
	minRSABits = 2048
)

// checkJWKSURL accepts https URLs, and http ones to a loopback host (a
// Supabase running locally): keys fetched in the clear could be replaced
// on the way.
func checkJWKSURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return errors.New("API_JWT_JWKS_URL is not an absolute URL")
	}
	switch {
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && loopback(u.Hostname()):
		return nil
	}
	return errors.New("API_JWT_JWKS_URL must be https (http only to localhost)")
}

func loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// jwk is one usable key of the set.
type jwk struct {
	kid string
	alg string // the key's "alg", "" when it names none
	key any    // *rsa.PublicKey or *ecdsa.PublicKey (P-256)
}

// fits reports whether k may verify a token signed with alg.
func (k jwk) fits(alg string) bool {
	if k.alg != "" && k.alg != alg {
		return false
	}
	switch key := k.key.(type) {
	case *rsa.PublicKey:
		return alg == jwt.SigningMethodRS256.Alg()
	case *ecdsa.PublicKey:
		return alg == jwt.SigningMethodES256.Alg() && key.Curve == elliptic.P256()
	}
	return false
}

// jwksCache holds the issuer's key set: read on first use, again after its
// TTL, and again when a token names a key id it lacks, never more often
// than minRefresh for those (and after a failed read). A failed read keeps
// the keys it had.
type jwksCache struct {
	url        string
	client     *http.Client
	ttl        time.Duration
	minRefresh time.Duration
	now        func() time.Time

	mu      sync.Mutex // held across a read, so concurrent callers share it
	keys    []jwk
	fetched time.Time // last successful read
	tried   time.Time // last read attempted
	lastErr error
}

func newJWKSCache(cfg JWTConfig) *jwksCache {
	c := &jwksCache{url: cfg.JWKSURL, client: cfg.HTTPClient, ttl: cfg.JWKSCacheTTL, minRefresh: cfg.JWKSMinRefresh, now: cfg.Now}
	if c.client == nil {
		c.client = &http.Client{Timeout: 10 * time.Second}
	}
	if c.ttl == 0 {
		c.ttl = DefaultJWKSCacheTTL
	}
	if c.minRefresh == 0 {
		c.minRefresh = DefaultJWKSMinRefresh
	}
	return c
}

// key returns the key that may verify a token signed with alg under kid.
// Without a kid, every key of the set that fits alg is a candidate.
func (c *jwksCache) key(ctx context.Context, kid, alg string) (any, error) {
	keys, err := c.set(ctx, kid)
	if err != nil {
		return nil, err
	}
	if kid == "" {
		var set jwt.VerificationKeySet
		for _, k := range keys {
			if k.fits(alg) {
				set.Keys = append(set.Keys, k.key)
			}
		}
		if len(set.Keys) == 0 {
			return nil, fmt.Errorf("jwks: no %s key for a token without a key id", alg)
		}
		return set, nil
	}
	i := slices.IndexFunc(keys, func(k jwk) bool { return k.kid == kid })
	switch {
	case i < 0:
		return nil, fmt.Errorf("jwks: unknown key id %.64q", kid)
	case !keys[i].fits(alg):
		return nil, fmt.Errorf("jwks: key %.64q cannot verify %s", kid, alg)
	}
	return keys[i].key, nil
}

// set returns the keys, reading them first when there are none, when they
// are older than the TTL, or when they lack kid (a non-empty kid): each
// subject to minRefresh since the last attempt, except the very first.
func (c *jwksCache) set(ctx context.Context, kid string) ([]jwk, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	stale := c.keys == nil || now.Sub(c.fetched) >= c.ttl
	missing := kid != "" && !slices.ContainsFunc(c.keys, func(k jwk) bool { return k.kid == kid })
	if (stale || missing) && (c.tried.IsZero() || now.Sub(c.tried) >= c.minRefresh) {
		c.tried = now
		keys, err := c.fetch(ctx)
		if err == nil {
			c.keys, c.fetched, c.lastErr = keys, now, nil
		} else {
			c.lastErr = err
		}
	}
	if c.keys == nil {
		if c.lastErr == nil {
			c.lastErr = errors.New("not read yet")
		}
		return nil, fmt.Errorf("jwks: no keys: %w", c.lastErr)
	}
	return c.keys, nil
}

// fetch reads and parses the key set. Keys it cannot use (symmetric ones,
// other curves and types, short RSA keys, keys not for signatures) are
// left out; a set with no usable key is an error.
func (c *jwksCache) fetch(ctx context.Context) ([]jwk, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", c.url, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", c.url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("read %s: HTTP %d", c.url, resp.StatusCode)
	}
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, jwksMaxBytes)).Decode(&doc); err != nil {
		return nil, fmt.Errorf("read %s: not a JSON Web Key Set", c.url)
	}
	var keys []jwk
	for _, raw := range doc.Keys {
		if k, ok := parseJWK(raw); ok {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("read %s: no RS256 or ES256 signing key in the set", c.url)
	}
	return keys, nil
}

// parseJWK reads one public signing key (RFC 7517/7518): RSA (n, e) or EC
// P-256 (x, y). It never keeps private or symmetric material.
func parseJWK(raw json.RawMessage) (jwk, bool) {
	var j struct {
		Kty    string   `json:"kty"`
		Kid    string   `json:"kid"`
		Alg    string   `json:"alg"`
		Use    string   `json:"use"`
		KeyOps []string `json:"key_ops"`
		N      string   `json:"n"`
		E      string   `json:"e"`
		Crv    string   `json:"crv"`
		X      string   `json:"x"`
		Y      string   `json:"y"`
	}
	if json.Unmarshal(raw, &j) != nil {
		return jwk{}, false
	}
	if (j.Use != "" && j.Use != "sig") || (j.KeyOps != nil && !slices.Contains(j.KeyOps, "verify")) {
		return jwk{}, false
	}
	out := jwk{kid: j.Kid, alg: j.Alg}
	b64 := base64.RawURLEncoding
	switch j.Kty {
	case "RSA":
		n, err1 := b64.DecodeString(j.N)
		e, err2 := b64.DecodeString(j.E)
		if err1 != nil || err2 != nil || len(e) == 0 || len(e) > 4 {
			return jwk{}, false
		}
		exp := int(new(big.Int).SetBytes(e).Int64())
		key := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: exp}
		if key.N.BitLen() < minRSABits || exp < 3 || exp%2 == 0 {
			return jwk{}, false
		}
		out.key = key
	case "EC":
		x, err1 := b64.DecodeString(j.X)
		y, err2 := b64.DecodeString(j.Y)
		if j.Crv != "P-256" || err1 != nil || err2 != nil || len(x) != 32 || len(y) != 32 {
			return jwk{}, false
		}
		key, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if err != nil { // not a point of the curve
			return jwk{}, false
		}
		out.key = key
	default: // "oct" (a shared secret must never come from a URL), OKP, …
		return jwk{}, false
	}
	return out, true
}
