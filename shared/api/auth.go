package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Principal is who is calling: the organization every request is scoped
// to, and the subject (user id) for logs and audit.
type Principal struct {
	OrganizationID string
	Subject        string
}

// Authenticator finds the caller of a request. It returns an error (any
// error: the handler answers 401 unauthenticated and logs it) when the
// request carries no valid credentials or no valid organization.
type Authenticator interface {
	Authenticate(r *http.Request) (Principal, error)
}

// AuthenticatorFunc adapts a function to Authenticator.
type AuthenticatorFunc func(r *http.Request) (Principal, error)

// Authenticate calls f.
func (f AuthenticatorFunc) Authenticate(r *http.Request) (Principal, error) { return f(r) }

// JWTConfig configures JWTAuthenticator. Set Secret, JWKSURL or both
// (both: during a move from Supabase's legacy shared secret to asymmetric
// keys, tokens of either kind are accepted until the old ones expire).
type JWTConfig struct {
	// Secret is the HS256 shared secret (Supabase Auth: the project's
	// legacy JWT secret). At least 32 bytes when set.
	Secret []byte
	// JWKSURL is the JSON Web Key Set of an issuer that signs with RS256 or
	// ES256 (Supabase Auth with asymmetric signing keys:
	// https://<ref>.supabase.co/auth/v1/.well-known/jwks.json). https, or
	// http to a loopback host (a local Supabase).
	JWKSURL string
	// JWKSCacheTTL is how long a fetched key set is used before it is read
	// again (default DefaultJWKSCacheTTL).
	JWKSCacheTTL time.Duration
	// JWKSMinRefresh is the least time between two reads of the key set
	// that a token with an unknown key id (or a failed read) can cause
	// (default DefaultJWKSMinRefresh).
	JWKSMinRefresh time.Duration
	// HTTPClient fetches the key set (default: a client with a 10 s timeout).
	HTTPClient *http.Client
	// Issuer is the required "iss" (Supabase: https://<ref>.supabase.co/auth/v1).
	Issuer string
	// Audience is the required "aud" (Supabase: "authenticated").
	Audience string
	// Leeway tolerates clock skew on exp/nbf/iat (default 30 s).
	Leeway time.Duration
	// Now is the clock (default time.Now); the key set's cache uses it too.
	Now func() time.Time
}

// Validate reports every problem at once.
func (c JWTConfig) Validate() error {
	var errs []error
	switch {
	case len(c.Secret) == 0 && c.JWKSURL == "":
		errs = append(errs, errors.New("one of API_JWT_SECRET (at least 32 bytes) or API_JWT_JWKS_URL is required"))
	case len(c.Secret) > 0 && len(c.Secret) < 32:
		errs = append(errs, errors.New("API_JWT_SECRET must be at least 32 bytes"))
	}
	if c.JWKSURL != "" {
		if err := checkJWKSURL(c.JWKSURL); err != nil {
			errs = append(errs, err)
		}
	}
	if c.JWKSCacheTTL < 0 || c.JWKSMinRefresh < 0 {
		errs = append(errs, errors.New("JWKS cache TTL and minimum refresh must not be negative"))
	}
	if c.Issuer == "" {
		errs = append(errs, errors.New("API_JWT_ISSUER is required"))
	}
	if c.Audience == "" {
		errs = append(errs, errors.New("API_JWT_AUDIENCE is required"))
	}
	return errors.Join(errs...)
}

// JWTAuthenticator verifies "Authorization: Bearer <jwt>": signature,
// algorithm, expiry (required), not-before, issuer and audience.
//
// The algorithm decides the key, never the other way round: HS256 tokens
// are checked with the shared secret (and refused when none is
// configured); RS256 and ES256 tokens with the JWKS key their "kid" names,
// which must be an RSA key (RS256) or a P-256 key (ES256) whose own "alg",
// when it has one, is the token's. Any other algorithm, "none" included, is
// refused; so is an HS256 token whose "secret" is a published public key.
//
// The organization comes from app_metadata.org_id (Supabase Auth's
// server-controlled metadata; user_metadata is writable by the user and is
// never read), or else from a top-level organization_id claim. It must be
// a valid id. The subject is "sub".
type JWTAuthenticator struct {
	cfg    JWTConfig
	parser *jwt.Parser
	keys   *jwksCache // nil without JWKSURL
}

// NewJWTAuthenticator checks cfg and returns the authenticator. It does not
// fetch the key set; Prefetch does, and the first token otherwise.
func NewJWTAuthenticator(cfg JWTConfig) (*JWTAuthenticator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	var methods []string
	if len(cfg.Secret) > 0 {
		methods = append(methods, jwt.SigningMethodHS256.Alg())
	}
	a := &JWTAuthenticator{cfg: cfg}
	if cfg.JWKSURL != "" {
		methods = append(methods, jwt.SigningMethodRS256.Alg(), jwt.SigningMethodES256.Alg())
		a.keys = newJWKSCache(cfg)
	}
	a.parser = jwt.NewParser(
		jwt.WithValidMethods(methods),
		jwt.WithIssuer(cfg.Issuer),
		jwt.WithAudience(cfg.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithTimeFunc(cfg.Now),
	)
	return a, nil
}

// Prefetch reads the key set now, so that a wrong JWKS URL shows when a
// function starts rather than at the first request. Without a JWKS URL it
// does nothing.
func (a *JWTAuthenticator) Prefetch(ctx context.Context) error {
	if a.keys == nil {
		return nil
	}
	_, err := a.keys.set(ctx, "")
	return err
}

// keyFor returns the key that may verify t, chosen by t's algorithm.
func (a *JWTAuthenticator) keyFor(ctx context.Context) jwt.Keyfunc {
	return func(t *jwt.Token) (any, error) {
		switch alg := t.Method.Alg(); alg {
		case jwt.SigningMethodHS256.Alg():
			if len(a.cfg.Secret) == 0 {
				return nil, errors.New("HS256 tokens are not accepted (no shared secret configured)")
			}
			return a.cfg.Secret, nil
		case jwt.SigningMethodRS256.Alg(), jwt.SigningMethodES256.Alg():
			if a.keys == nil {
				return nil, fmt.Errorf("%s tokens are not accepted (no JWKS URL configured)", alg)
			}
			kid, _ := t.Header["kid"].(string)
			return a.keys.key(ctx, kid, alg)
		default:
			return nil, fmt.Errorf("algorithm %.20q is not accepted", alg)
		}
	}
}

// Claims are the JWT claims the API reads.
type Claims struct {
	jwt.RegisteredClaims
	// AppMetadata is Supabase Auth's app_metadata; org_id names the caller's
	// organization.
	AppMetadata struct {
		OrgID string `json:"org_id,omitempty"`
	} `json:"app_metadata"`
	// OrganizationID is the fallback for issuers without app_metadata.
	OrganizationID string `json:"organization_id,omitempty"`
}

// Authenticate implements Authenticator.
func (a *JWTAuthenticator) Authenticate(r *http.Request) (Principal, error) {
	raw, ok := bearer(r)
	if !ok {
		return Principal{}, errors.New("no bearer token")
	}
	var c Claims
	if _, err := a.parser.ParseWithClaims(raw, &c, a.keyFor(r.Context())); err != nil {
		return Principal{}, fmt.Errorf("jwt: %w", err)
	}
	org := c.AppMetadata.OrgID
	if org == "" {
		org = c.OrganizationID
	}
	if !ValidID(org) {
		return Principal{}, errors.New("jwt: no valid organization claim (app_metadata.org_id or organization_id)")
	}
	return Principal{OrganizationID: org, Subject: c.Subject}, nil
}

// bearer returns the token of an "Authorization: Bearer …" header.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// DevOrganizationHeader is the header DevAuthenticator trusts.
const DevOrganizationHeader = "X-Dev-Organization"

// DevAuthenticator trusts the organization named in the X-Dev-Organization
// header (subject: X-Dev-Subject, default "dev"). It checks nothing else:
// use it only on a local stack, and only when configured explicitly
// (API_AUTH_MODE=dev).
type DevAuthenticator struct{}

// Authenticate implements Authenticator.
func (DevAuthenticator) Authenticate(r *http.Request) (Principal, error) {
	org := r.Header.Get(DevOrganizationHeader)
	if !ValidID(org) {
		return Principal{}, fmt.Errorf("dev auth: %s header missing or not a valid id", DevOrganizationHeader)
	}
	sub := r.Header.Get("X-Dev-Subject")
	if sub == "" {
		sub = "dev"
	}
	return Principal{OrganizationID: org, Subject: sub}, nil
}
