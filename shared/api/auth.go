package api

import (
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

// JWTConfig configures JWTAuthenticator.
type JWTConfig struct {
	// Secret is the HS256 shared secret (Supabase Auth: the project's JWT
	// secret). At least 32 bytes.
	Secret []byte
	// Issuer is the required "iss" (Supabase: https://<ref>.supabase.co/auth/v1).
	Issuer string
	// Audience is the required "aud" (Supabase: "authenticated").
	Audience string
	// Leeway tolerates clock skew on exp/nbf/iat (default 30 s).
	Leeway time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Validate reports every problem at once.
func (c JWTConfig) Validate() error {
	var errs []error
	if len(c.Secret) < 32 {
		errs = append(errs, errors.New("API_JWT_SECRET must be at least 32 bytes"))
	}
	if c.Issuer == "" {
		errs = append(errs, errors.New("API_JWT_ISSUER is required"))
	}
	if c.Audience == "" {
		errs = append(errs, errors.New("API_JWT_AUDIENCE is required"))
	}
	return errors.Join(errs...)
}

// JWTAuthenticator verifies "Authorization: Bearer <jwt>" signed with HS256
// under a shared secret: signature, algorithm (HS256 only), expiry
// (required), not-before, issuer and audience.
//
// The organization comes from app_metadata.org_id (Supabase Auth's
// server-controlled metadata; user_metadata is writable by the user and is
// never read), or else from a top-level organization_id claim. It must be
// a valid id. The subject is "sub".
type JWTAuthenticator struct {
	cfg    JWTConfig
	parser *jwt.Parser
}

// NewJWTAuthenticator checks cfg and returns the authenticator.
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
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(cfg.Issuer),
		jwt.WithAudience(cfg.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithTimeFunc(cfg.Now),
	)
	return &JWTAuthenticator{cfg: cfg, parser: p}, nil
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
	if _, err := a.parser.ParseWithClaims(raw, &c, func(*jwt.Token) (any, error) { return a.cfg.Secret, nil }); err != nil {
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
