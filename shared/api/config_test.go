package api_test

import (
	"strings"
	"testing"
	"time"

	"github.com/wedsync/backup-replication/shared/api"
)

func TestLoadEnv(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	e, err := api.LoadEnv(env(nil))
	if err != nil || e.AuthMode != api.AuthModeJWT || e.VerifyTimeout != 0 {
		t.Fatalf("defaults: %+v %v", e, err)
	}
	e, err = api.LoadEnv(env(map[string]string{"API_AUTH_MODE": "dev", "API_VERIFY_TIMEOUT": "10s"}))
	if err != nil || e.AuthMode != api.AuthModeDev || e.VerifyTimeout != 10*time.Second {
		t.Fatalf("dev: %+v %v", e, err)
	}
	_, err = api.LoadEnv(env(map[string]string{"API_AUTH_MODE": "sso", "API_VERIFY_TIMEOUT": "-1s"}))
	for _, want := range []string{"API_AUTH_MODE", "API_VERIFY_TIMEOUT"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %s", err, want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	err := api.Config{PartSize: 1 << 20, MultipartThreshold: 1 << 20, UploadURLTTL: 2 * time.Hour}.Validate()
	for _, want := range []string{"API_PART_SIZE", "API_UPLOAD_URL_TTL"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %s", err, want)
		}
	}
	if err := (api.Config{}).Validate(); err != nil {
		t.Errorf("defaults invalid: %v", err)
	}
}
