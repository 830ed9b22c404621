package api

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/wedsync/backup-replication/shared/config"
	"github.com/wedsync/backup-replication/shared/keys"
)

// Env is the API's part of the environment that shared/config does not
// read (shared/config.LoadAPI reads the rest: tables, landing bucket,
// providers, POLICY, API_JWT_*, API_MAX_SIZE, API_PART_SIZE,
// API_MULTIPART_THRESHOLD, API_UPLOAD_URL_TTL, API_DOWNLOAD_URL_TTL):
//
//	API_AUTH_MODE        jwt (default) | dev — dev trusts the X-Dev-Organization header; local stacks only
//	API_VERIFY_TIMEOUT   bound on POST /backups/{id}/verify (default 25s)
//	KEYS_TABLE, KMS_KEY_ID, KMS_KEY_ALIAS_PREFIX, KMS_CREATE_ORG_KEYS
//	                     the data keys of sealed backups (config.Keys); without
//	                     KEYS_TABLE, sealed downloads and DELETE answer 501
type Env struct {
	// AuthMode is AuthModeJWT or AuthModeDev.
	AuthMode string
	// VerifyTimeout becomes Config.VerifyTimeout (0: the default).
	VerifyTimeout time.Duration
	// Keys configures the key store (nil: KEYS_TABLE is not set).
	Keys *keys.Config
}

// Auth modes of API_AUTH_MODE.
const (
	AuthModeJWT = "jwt"
	AuthModeDev = "dev"
)

// LoadEnv reads API_AUTH_MODE, API_VERIFY_TIMEOUT and the keys' variables through getenv
// (config.OS in production) and reports every problem at once, each
// naming its variable.
func LoadEnv(getenv func(string) string) (Env, error) {
	var errs []error
	e := Env{AuthMode: strings.TrimSpace(getenv("API_AUTH_MODE"))}
	switch e.AuthMode {
	case "":
		e.AuthMode = AuthModeJWT
	case AuthModeJWT, AuthModeDev:
	default:
		errs = append(errs, fmt.Errorf("API_AUTH_MODE: %q is neither jwt nor dev", e.AuthMode))
	}
	if v := strings.TrimSpace(getenv("API_VERIFY_TIMEOUT")); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 || d > 15*time.Minute {
			errs = append(errs, fmt.Errorf("API_VERIFY_TIMEOUT: %q is not a duration between 0 and 15m (e.g. 25s)", v))
		}
		e.VerifyTimeout = d
	}
	if strings.TrimSpace(getenv("KEYS_TABLE")) != "" {
		kc, err := config.Keys(config.Getenv(getenv))
		errs = append(errs, err)
		e.Keys = &kc
	}
	return e, errors.Join(errs...)
}
