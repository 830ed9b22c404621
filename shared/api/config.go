package api

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/wedsync/backup-replication/shared/secret"
)

// The API's own environment variables (the shared ones — tables, landing
// bucket, providers, POLICY — are read by shared/config):
//
//	API_AUTH_MODE            jwt (default) | dev — dev trusts X-Dev-Organization; local stacks only
//	API_JWT_SECRET           HS256 shared secret (Supabase: the project's JWT secret), ≥ 32 bytes; required in jwt mode
//	API_JWT_ISSUER           required "iss" (Supabase: https://<ref>.supabase.co/auth/v1); required in jwt mode
//	API_JWT_AUDIENCE         required "aud" (default "authenticated")
//	API_MAX_SIZE             largest backup, bytes or KiB/MiB/GiB/TiB (default 5TiB)
//	API_MULTIPART_THRESHOLD  above this size uploads are multipart (default 100MiB)
//	API_PART_SIZE            smallest multipart part (default 16MiB, at least 8MiB)
//	API_UPLOAD_URL_TTL       life of presigned upload URLs (default 15m)
//	API_DOWNLOAD_URL_TTL     life of download URLs (default 5m)
//	API_VERIFY_TIMEOUT       bound on POST /backups/{id}/verify (default 25s)

// Auth modes of API_AUTH_MODE.
const (
	AuthModeJWT = "jwt"
	AuthModeDev = "dev"
)

// Env is the API's part of the environment, read by LoadEnv.
type Env struct {
	Config Config
	// AuthMode is AuthModeJWT or AuthModeDev.
	AuthMode string
	// JWT configures the authenticator in jwt mode.
	JWT JWTSettings
}

// JWTSettings are JWTConfig as read from the environment.
type JWTSettings struct {
	Secret   secret.Secret
	Issuer   string
	Audience string
}

// Authenticator builds the authenticator e asks for.
func (e Env) Authenticator() (Authenticator, error) {
	if e.AuthMode == AuthModeDev {
		return DevAuthenticator{}, nil
	}
	return NewJWTAuthenticator(JWTConfig{Secret: []byte(e.JWT.Secret.Reveal()), Issuer: e.JWT.Issuer, Audience: e.JWT.Audience})
}

// LoadEnv reads the API_* variables through getenv (os.Getenv in
// production) and reports every problem at once, each naming its variable.
func LoadEnv(getenv func(string) string) (Env, error) {
	var errs []error
	get := func(name string) string { return strings.TrimSpace(getenv(name)) }
	size := func(name string) int64 {
		v := get(name)
		if v == "" {
			return 0
		}
		n, err := parseSize(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not a byte count (e.g. 104857600 or 100MiB)", name, v))
		}
		return n
	}
	dur := func(name string) time.Duration {
		v := get(name)
		if v == "" {
			return 0
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("%s: %q is not a positive duration (e.g. 15m)", name, v))
		}
		return d
	}
	e := Env{
		AuthMode: get("API_AUTH_MODE"),
		JWT:      JWTSettings{Secret: secret.Secret(get("API_JWT_SECRET")), Issuer: get("API_JWT_ISSUER"), Audience: get("API_JWT_AUDIENCE")},
		Config: Config{
			MaxSize: size("API_MAX_SIZE"), MultipartThreshold: size("API_MULTIPART_THRESHOLD"), PartSize: size("API_PART_SIZE"),
			UploadURLTTL: dur("API_UPLOAD_URL_TTL"), DownloadURLTTL: dur("API_DOWNLOAD_URL_TTL"), VerifyTimeout: dur("API_VERIFY_TIMEOUT"),
		},
	}
	if e.AuthMode == "" {
		e.AuthMode = AuthModeJWT
	}
	if e.JWT.Audience == "" {
		e.JWT.Audience = "authenticated"
	}
	switch e.AuthMode {
	case AuthModeJWT:
		errs = append(errs, JWTConfig{Secret: []byte(e.JWT.Secret.Reveal()), Issuer: e.JWT.Issuer, Audience: e.JWT.Audience}.Validate())
	case AuthModeDev:
	default:
		errs = append(errs, fmt.Errorf("API_AUTH_MODE: %q is neither jwt nor dev", e.AuthMode))
	}
	if len(errs) == 0 {
		errs = append(errs, e.Config.Validate())
	}
	return e, errors.Join(errs...)
}

// parseSize reads digits with an optional KiB, MiB, GiB or TiB suffix.
func parseSize(v string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		s string
		m int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}} {
		if s, ok := strings.CutSuffix(v, u.s); ok {
			v, mult = strings.TrimSpace(s), u.m
			break
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, errors.New("not a byte count")
	}
	return n * mult, nil
}
