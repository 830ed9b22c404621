package api_test

import (
	"strings"
	"testing"
	"time"

	"github.com/wedsync/backup-replication/shared/api"
)

func TestLoadEnv(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	e, err := api.LoadEnv(env(map[string]string{
		"API_JWT_SECRET": strings.Repeat("s", 32), "API_JWT_ISSUER": "https://x.supabase.co/auth/v1",
		"API_MULTIPART_THRESHOLD": "64MiB", "API_PART_SIZE": "8MiB", "API_UPLOAD_URL_TTL": "10m", "API_MAX_SIZE": "1TiB",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if e.AuthMode != api.AuthModeJWT || e.JWT.Audience != "authenticated" || e.Config.MultipartThreshold != 64<<20 ||
		e.Config.PartSize != 8<<20 || e.Config.UploadURLTTL != 10*time.Minute || e.Config.MaxSize != 1<<40 {
		t.Fatalf("env %+v", e)
	}
	if a, err := e.Authenticator(); err != nil || a == nil {
		t.Fatalf("authenticator: %v", err)
	}
	if e.JWT.Secret.String() == e.JWT.Secret.Reveal() {
		t.Fatal("secret prints")
	}
	_, err = api.LoadEnv(env(map[string]string{"API_AUTH_MODE": "sso", "API_PART_SIZE": "big", "API_UPLOAD_URL_TTL": "-1s"}))
	for _, want := range []string{"API_AUTH_MODE", "API_PART_SIZE", "API_UPLOAD_URL_TTL"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %s", err, want)
		}
	}
	_, err = api.LoadEnv(env(map[string]string{}))
	for _, want := range []string{"API_JWT_SECRET", "API_JWT_ISSUER"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("jwt mode without settings: %v lacks %s", err, want)
		}
	}
	if e, err := api.LoadEnv(env(map[string]string{"API_AUTH_MODE": "dev"})); err != nil || e.AuthMode != api.AuthModeDev {
		t.Errorf("dev mode: %v", err)
	}
	if _, err := api.LoadEnv(env(map[string]string{"API_AUTH_MODE": "dev", "API_PART_SIZE": "1MiB"})); err == nil || !strings.Contains(err.Error(), "API_PART_SIZE") {
		t.Errorf("part size below 8 MiB: %v", err)
	}
}
