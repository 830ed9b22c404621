package gcs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	sa := `{"type":"service_account","private_key":"TOPSECRET"}`
	cases := []struct {
		name string
		cfg  Config
		want []string // substrings of the joined error; none means valid
	}{
		{"minimal", Config{Bucket: "b"}, nil},
		{"emulator", Config{Bucket: "b", Endpoint: "http://127.0.0.1:4443", ChunkSize: DefaultChunkSize}, nil},
		{"credentials", Config{Bucket: "b", CredentialsJSON: Secret(sa)}, nil},
		{"external-account", Config{Bucket: "b", CredentialsJSON: `{"type":"external_account"}`}, nil},
		{"retention", Config{Bucket: "b", Retention: 30 * 24 * time.Hour, RetentionMode: "Locked"}, nil},
		{"everything-wrong", Config{
			ChunkSize:       1000,
			Endpoint:        "127.0.0.1:4443",
			CredentialsJSON: `{"type":"gdch_service_account","private_key":"TOPSECRET"}`,
			Retention:       -time.Hour,
			RetentionMode:   "Forever",
		}, []string{"Bucket: required", "ChunkSize: 1000", "Endpoint:", "CredentialsJSON:", "Retention: negative", "RetentionMode:"}},
		{"negative-chunk", Config{Bucket: "b", ChunkSize: -DefaultChunkSize}, []string{"ChunkSize"}},
		{"not-json", Config{Bucket: "b", CredentialsJSON: "TOPSECRET"}, []string{"CredentialsJSON: not a JSON object"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want errors about %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, missing %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "TOPSECRET") {
				t.Errorf("Validate() quotes the credentials: %q", err)
			}
		})
	}
}

// TestSecretsNeverPrint checks every way a config reaches a log line.
func TestSecretsNeverPrint(t *testing.T) {
	cfg := Config{Bucket: "b", CredentialsJSON: `{"type":"service_account","private_key":"TOPSECRET"}`}
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("config", "gcs", cfg, "creds", cfg.CredentialsJSON)
	js, _ := json.Marshal(cfg)
	for name, out := range map[string]string{
		"%v":        fmt.Sprintf("%v", cfg),
		"%+v":       fmt.Sprintf("%+v", cfg),
		"%#v":       fmt.Sprintf("%#v", cfg),
		"%s secret": fmt.Sprintf("%s", cfg.CredentialsJSON),
		"slog":      logs.String(),
		"json":      string(js),
	} {
		if strings.Contains(out, "TOPSECRET") {
			t.Errorf("%s prints the credentials: %s", name, out)
		}
	}
	if !strings.Contains(logs.String(), `"bucket":"b"`) {
		t.Errorf("slog output lost the non-secret fields: %s", logs.String())
	}
}

func TestJSONEndpoint(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:4443":                "http://127.0.0.1:4443/storage/v1/",
		"http://127.0.0.1:4443/":               "http://127.0.0.1:4443/storage/v1/",
		"https://storage.example/storage/v1/":  "https://storage.example/storage/v1/",
		"https://storage.example/storage/v1":   "https://storage.example/storage/v1/",
		"https://private.example/custom/path":  "https://private.example/custom/path/",
		"https://private.example/custom/path/": "https://private.example/custom/path/",
	} {
		if got := jsonEndpoint(in); got != want {
			t.Errorf("jsonEndpoint(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	_, err := New(t.Context(), Config{CredentialsJSON: "TOPSECRET"}, nil)
	if err == nil || strings.Contains(err.Error(), "TOPSECRET") {
		t.Errorf("New(invalid) = %v, want a validation error that does not quote the credentials", err)
	}
}
