package ws

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/wedsync/backup-replication/shared/api"
	"github.com/wedsync/backup-replication/shared/config"
	"github.com/wedsync/backup-replication/shared/secret"
)

// Settings is functions/ws's configuration: shared/config's Common
// (CONNECTIONS_TABLE, BACKUPS_TABLE, REPLICAS_TABLE, WS_ENDPOINT, AWS_*,
// LOG_LEVEL), the API's token settings (the same tokens open the API and
// the socket), and:
//
//	WS_CONNECTION_TTL     life of a connection record without $disconnect (default 2h10m)
//	WS_MAX_SUBSCRIPTIONS  subscriptions per connection (default 100)
//
// Required: CONNECTIONS_TABLE, BACKUPS_TABLE, REPLICAS_TABLE (the catalog
// client wants both), and either API_AUTH_MODE=dev or API_JWT_ISSUER with
// a key: API_JWT_SECRET or API_JWT_SECRET_ARN (HS256), API_JWT_JWKS_URL
// (RS256/ES256 keys of the issuer, e.g. Supabase Auth's
// https://<ref>.supabase.co/auth/v1/.well-known/jwks.json), or both.
//
// shared/config has no LoadWS yet; LoadSettings reads through the same
// Getenv, so moving it there later changes no variable.
type Settings struct {
	config.Common
	// Env is API_AUTH_MODE (and API_VERIFY_TIMEOUT, unused here).
	Env              api.Env
	JWTSecret        secret.Secret // API_JWT_SECRET
	JWTSecretARN     string        // API_JWT_SECRET_ARN
	JWTIssuer        string        // API_JWT_ISSUER
	JWTAudience      string        // API_JWT_AUDIENCE (default "authenticated")
	JWKSURL          string        // API_JWT_JWKS_URL
	TTL              time.Duration // WS_CONNECTION_TTL
	MaxSubscriptions int           // WS_MAX_SUBSCRIPTIONS
}

// LoadSettings reads and validates the ws function's variables, reporting
// every problem at once, each naming its variable.
func LoadSettings(getenv config.Getenv) (Settings, error) {
	c, cerr := config.LoadCommon(getenv)
	env, eerr := api.LoadEnv(getenv)
	get := func(k string) string { return strings.TrimSpace(getenv(k)) }
	s := Settings{Common: c, Env: env, JWTSecret: secret.Secret(get("API_JWT_SECRET")), JWTSecretARN: get("API_JWT_SECRET_ARN"),
		JWTIssuer: get("API_JWT_ISSUER"), JWTAudience: get("API_JWT_AUDIENCE"), JWKSURL: get("API_JWT_JWKS_URL")}
	errs := []error{cerr, eerr}
	if v := get("WS_CONNECTION_TTL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Minute || d > 48*time.Hour {
			errs = append(errs, fmt.Errorf("WS_CONNECTION_TTL: %q is not a duration between 1m and 48h", v))
		}
		s.TTL = d
	}
	if v := get("WS_MAX_SUBSCRIPTIONS"); v != "" {
		var n int
		if _, err := fmt.Sscanf(v, "%d", &n); err != nil || n < 1 || n > 10000 {
			errs = append(errs, fmt.Errorf("WS_MAX_SUBSCRIPTIONS: %q is not a number between 1 and 10000", v))
		}
		s.MaxSubscriptions = n
	}
	if s.JWTAudience == "" {
		s.JWTAudience = "authenticated"
	}
	errs = append(errs, s.Validate())
	return s, errors.Join(errs...)
}

// Validate reports every missing setting, naming variables.
func (s Settings) Validate() error {
	var errs []error
	for _, v := range []struct{ name, value string }{
		{"CONNECTIONS_TABLE", s.Tables.Connections}, {"BACKUPS_TABLE", s.Tables.Backups}, {"REPLICAS_TABLE", s.Tables.Replicas},
	} {
		if v.value == "" {
			errs = append(errs, fmt.Errorf("%s is required", v.name))
		}
	}
	if s.Env.AuthMode != api.AuthModeDev {
		if s.JWTIssuer == "" {
			errs = append(errs, errors.New("API_JWT_ISSUER is required"))
		}
		if s.JWTSecret.IsZero() && s.JWTSecretARN == "" && s.JWKSURL == "" {
			errs = append(errs, errors.New("one of API_JWT_SECRET, API_JWT_SECRET_ARN (HS256) or API_JWT_JWKS_URL (RS256/ES256) is required"))
		}
	}
	return errors.Join(errs...)
}
