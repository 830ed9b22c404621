package config

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/wedsync/backup-replication/shared/breaker"
	"github.com/wedsync/backup-replication/shared/policy"
)

const serviceKey = "eyJhbGciOiJIUzI1NiJ9.service-role-secret.sig"

// local is the environment the local stack gives a replicate deployment.
func local(over map[string]string) Getenv {
	m := map[string]string{
		"AWS_REGION":            "us-east-1",
		"AWS_ENDPOINT_URL":      "http://127.0.0.1:5000",
		"LANDING_BUCKET":        "ws191-landing",
		"BACKUPS_TABLE":         "ws191-backups",
		"REPLICAS_TABLE":        "ws191-replicas",
		"BREAKERS_TABLE":        "ws191-breakers",
		"PROVIDER":              "gcs",
		"SUPABASE_URL":          "http://127.0.0.1:54321",
		"SUPABASE_BUCKET":       "backups",
		"SUPABASE_SERVICE_KEY":  serviceKey,
		"S3_REPLICA_BUCKET":     "ws191-replica",
		"S3_REPLICA_REGION":     "eu-west-2",
		"GCS_BUCKET":            "ws191-offsite",
		"GCS_PROJECT":           "wedsync-backups",
		"STORAGE_EMULATOR_HOST": "127.0.0.1:4443",
	}
	for k, v := range over {
		if v == "" {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	return Map(m)
}

func TestLoadReplicateLocal(t *testing.T) {
	c, err := LoadReplicate(local(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Provider != "gcs" || c.LandingBucket != "ws191-landing" || c.Tables.Backups != "ws191-backups" ||
		c.Tables.Replicas != "ws191-replicas" || c.Concurrency != 4 || c.ResumeAbove != 32<<20 || c.LogLevel != slog.LevelInfo ||
		!c.RequireSeal {
		t.Fatalf("config %+v", c)
	}
	if c.Providers.GCS.Endpoint != "http://127.0.0.1:4443" {
		t.Errorf("GCS endpoint from STORAGE_EMULATOR_HOST: %q", c.Providers.GCS.Endpoint)
	}
	if s := c.Providers.S3; s.Endpoint != "http://127.0.0.1:5000" || !s.UsePathStyle || s.Region != "eu-west-2" {
		t.Errorf("S3 replica defaults from AWS_ENDPOINT_URL: %+v", s)
	}
	if got := strings.Join(c.Providers.Configured(), ","); got != "supabase,s3,gcs" {
		t.Errorf("configured %s", got)
	}
	for name, domain := range map[string]string{"supabase": "supabase/127.0.0.1:54321", "s3": "aws/eu-west-2", "gcs": "gcp/wedsync-backups"} {
		if p, ok := c.Policy.Provider(name); !ok || p.FailureDomain() != domain {
			t.Errorf("policy row %s: %+v", name, p)
		}
	}
	if c.Policy.Landing.Domain != "us-east-1" || c.Policy.Landing.Retained {
		t.Errorf("landing %+v", c.Policy.Landing)
	}
}

func TestLoadReplicateReportsEveryProblem(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"nothing set", map[string]string{"LANDING_BUCKET": "", "BACKUPS_TABLE": "", "REPLICAS_TABLE": "", "PROVIDER": ""},
			[]string{"LANDING_BUCKET is required", "BACKUPS_TABLE is required", "REPLICAS_TABLE is required", "PROVIDER is required"}},
		{"provider without settings", map[string]string{"PROVIDER": "s3-standby"},
			[]string{`PROVIDER "s3-standby" has no settings (set S3_STANDBY_BUCKET)`, "not in the policy table"}},
		{"unknown provider", map[string]string{"PROVIDER": "azure"}, []string{"a known provider name"}},
		{"bad values", map[string]string{"REPLICATE_CONCURRENCY": "many", "LOG_LEVEL": "loud", "LANDING_RETAINED": "maybe",
			"REPLICATE_RESUME_ABOVE": "big", "S3_REPLICA_ENDPOINT": "ftp://x", "POLICY": `{"providers":[]}`, "CREDENTIALS_TTL": "soon",
			"REPLICATE_REQUIRE_SEAL": "sometimes"},
			[]string{"REPLICATE_CONCURRENCY:", "LOG_LEVEL:", "LANDING_RETAINED:", "REPLICATE_RESUME_ABOVE:", "S3_REPLICA_ENDPOINT:", "POLICY:", "CREDENTIALS_TTL:",
				"REPLICATE_REQUIRE_SEAL:"}},
		{"supabase without key", map[string]string{"PROVIDER": "supabase", "SUPABASE_SERVICE_KEY": ""},
			[]string{"SUPABASE_SERVICE_KEY or SUPABASE_SECRET_ARN is required"}},
		{"half a key pair", map[string]string{"PROVIDER": "s3", "S3_REPLICA_ACCESS_KEY_ID": "AKID"},
			[]string{"S3_REPLICA_ACCESS_KEY_ID and S3_REPLICA_SECRET_ACCESS_KEY must be set together"}},
		{"policy without the provider", map[string]string{"POLICY": `{"providers":[{"name":"s3","role":"primary","cloud":"aws","domain":"x"}]}`},
			[]string{`PROVIDER "gcs" is not in the policy table (POLICY lists s3)`}},
		{"concurrency out of range", map[string]string{"REPLICATE_CONCURRENCY": "0"}, []string{"REPLICATE_CONCURRENCY 0 is outside 1..64"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadReplicate(local(tc.env))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestSecretsNeverPrint(t *testing.T) {
	c, err := LoadReplicate(local(map[string]string{"GCS_CREDENTIALS_JSON": `{"type":"service_account","private_key":"PRIVATE"}`,
		"S3_REPLICA_ACCESS_KEY_ID": "AKID", "S3_REPLICA_SECRET_ACCESS_KEY": "S3SECRETVALUE"}))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("config", "config", c)
	for _, out := range []string{fmt.Sprintf("%v %+v %#v", c, c, c), buf.String()} {
		for _, s := range []string{serviceKey, "PRIVATE", "S3SECRETVALUE"} {
			if strings.Contains(out, s) {
				t.Errorf("secret %q printed in %s", s, out)
			}
		}
	}
	if c.Providers.Supabase.ServiceKey.Reveal() != serviceKey {
		t.Error("secret value lost")
	}
}

func TestProvidersSelectAndStandby(t *testing.T) {
	c, err := LoadCommon(local(map[string]string{"S3_STANDBY_BUCKET": "standby", "S3_STANDBY_REGION": "us-west-2",
		"LANDING_RETAINED": "true", "LOG_LEVEL": "debug", "CREDENTIALS_TTL": "90s"}))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.Providers.Configured(), ","); got != "supabase,s3,gcs,s3-standby" {
		t.Fatalf("configured %s", got)
	}
	if p, ok := c.Policy.Provider("s3-standby"); !ok || p.Role != policy.RoleStandby || p.FailureDomain() != "aws/us-west-2" {
		t.Fatalf("standby row %+v", p)
	}
	if !c.Policy.Landing.Retained || c.LogLevel != slog.LevelDebug {
		t.Fatalf("landing %+v level %v", c.Policy.Landing, c.LogLevel)
	}
	one := c.Providers.Select("s3-standby")
	if got := strings.Join(one.Configured(), ","); got != "s3-standby" || one.Standby.Name != "s3-standby" {
		t.Fatalf("select: %s", got)
	}
	if c.Providers.CredentialsTTL != 90*time.Second || one.CredentialsTTL != 90*time.Second {
		t.Fatalf("CREDENTIALS_TTL: %s, after select %s", c.Providers.CredentialsTTL, one.CredentialsTTL)
	}
	if err := c.Policy.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestLoadAPIAndHealth(t *testing.T) {
	a, err := LoadAPI(local(map[string]string{"API_JWT_SECRET": "k", "API_JWT_ISSUER": "iss", "API_UPLOAD_URL_TTL": "20m", "API_MAX_SIZE": "5GiB"}))
	if err != nil {
		t.Fatal(err)
	}
	if a.UploadURLTTL != 20*time.Minute || a.MaxSize != 5<<30 || a.JWTIssuer != "iss" {
		t.Fatalf("api %+v", a)
	}
	if _, err := LoadAPI(local(nil)); err == nil || !strings.Contains(err.Error(), "API_JWT_ISSUER is required") ||
		!strings.Contains(err.Error(), "API_JWT_SECRET, API_JWT_SECRET_ARN or API_JWT_JWKS_URL") {
		t.Fatalf("api without auth: %v", err)
	}
	h, err := LoadHealth(local(map[string]string{"S3_QUEUE_URL": "http://q/s3", "S3_DLQ_URL": "http://q/s3-dlq", "S3_STANDBY_QUEUE_URL": "http://q/sb"}))
	if err != nil {
		t.Fatal(err)
	}
	if h.Queues["s3"].DLQURL != "http://q/s3-dlq" || h.Queues["s3-standby"].URL != "http://q/sb" || len(h.Queues) != 2 {
		t.Fatalf("queues %+v", h.Queues)
	}
	if _, err := LoadHealth(local(map[string]string{"BREAKERS_TABLE": ""})); err == nil || !strings.Contains(err.Error(), "BREAKERS_TABLE is required") {
		t.Fatalf("health without breakers: %v", err)
	}
}

// Each provider's lock settings: days or Go durations, default modes, and
// every problem named by its variable.
func TestLocks(t *testing.T) {
	c, err := LoadCommon(local(map[string]string{"S3_REPLICA_OBJECT_LOCK_RETENTION": "30d",
		"S3_STANDBY_OBJECT_LOCK_RETENTION": "36h", "S3_STANDBY_OBJECT_LOCK_MODE": "COMPLIANCE", "GCS_RETENTION": "7d"}))
	if err != nil {
		t.Fatal(err)
	}
	want := Locks{NameS3: {Mode: "GOVERNANCE", Retention: 30 * 24 * time.Hour},
		NameS3Standby: {Mode: "COMPLIANCE", Retention: 36 * time.Hour}, NameGCS: {Mode: "Unlocked", Retention: 7 * 24 * time.Hour}}
	if fmt.Sprint(c.Locks) != fmt.Sprint(want) {
		t.Fatalf("locks %v, want %v", c.Locks, want)
	}
	if c.Locks.For(NameSupabase).On() || !c.Locks.For(NameGCS).On() {
		t.Fatal("On")
	}
	if c, err := LoadCommon(local(nil)); err != nil || len(c.Locks) != 0 {
		t.Fatalf("no lock variables: %v %v", c.Locks, err)
	}
	_, err = LoadCommon(local(map[string]string{"S3_REPLICA_OBJECT_LOCK_RETENTION": "forever",
		"S3_STANDBY_OBJECT_LOCK_MODE": "GOVERNANCE", "GCS_RETENTION": "1d", "GCS_RETENTION_MODE": "Frozen"}))
	for _, w := range []string{"S3_REPLICA_OBJECT_LOCK_RETENTION:", "S3_STANDBY_OBJECT_LOCK_MODE: is set without S3_STANDBY_OBJECT_LOCK_RETENTION",
		`GCS_RETENTION_MODE: "Frozen" is not Unlocked or Locked`} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q: %v", w, err)
		}
	}
	for _, v := range []string{"0d", "-5h", "36600d", "1.5d", "999999999999999d"} {
		if _, err := LoadCommon(local(map[string]string{"GCS_RETENTION": v})); err == nil || !strings.Contains(err.Error(), "GCS_RETENTION:") {
			t.Errorf("GCS_RETENTION=%s: %v", v, err)
		}
	}
}

// The breaker settings every function shares, and replicate's waits:
// values, ranges, and each problem named by its variable.
func TestBreakersAndWaits(t *testing.T) {
	c, err := LoadReplicate(local(map[string]string{"BREAKER_TRIP_AFTER": "3", "BREAKER_TIMEOUT": "2m",
		"BREAKER_MAX_REQUESTS": "2", "BREAKER_INTERVAL": "10m", "BREAKER_TRIAL_LEASE": "5m",
		"PARK_MIN": "20s", "PARK_MAX": "5m", "VISIBILITY_BASE": "1m", "VISIBILITY_LIMIT": "6h", "REPLICATE_LEASE": "20m"}))
	if err != nil {
		t.Fatal(err)
	}
	if want := (Breakers{TripAfter: 3, Timeout: 2 * time.Minute, MaxRequests: 2, Interval: 10 * time.Minute,
		TrialLease: 5 * time.Minute}); c.Breakers != want {
		t.Fatalf("breakers %+v", c.Breakers)
	}
	s := c.Breakers.Settings("gcs", nil)
	if s.Name != "gcs" || s.Timeout != 2*time.Minute || s.MaxRequests != 2 || s.Interval != 10*time.Minute ||
		s.TrialLease != 5*time.Minute || s.ReadyToTrip == nil {
		t.Fatalf("settings %+v", s)
	}
	if s.ReadyToTrip(breaker.Counts{ConsecutiveFailures: 2}) || !s.ReadyToTrip(breaker.Counts{ConsecutiveFailures: 3}) {
		t.Fatal("ReadyToTrip does not trip at BREAKER_TRIP_AFTER")
	}
	if c.ParkMin != 20*time.Second || c.ParkMax != 5*time.Minute || c.VisibilityBase != time.Minute || c.VisibilityLimit != 6*time.Hour ||
		c.Lease != 20*time.Minute {
		t.Fatalf("waits %+v", c)
	}
	d, err := LoadReplicate(local(nil))
	if err != nil || d.Breakers != (Breakers{}) || d.ParkMin != 0 || d.VisibilityLimit != 0 {
		t.Fatalf("defaults %+v %v", d, err)
	}
	if s := d.Breakers.Settings("s3", nil); s.ReadyToTrip != nil || s.Timeout != 0 {
		t.Fatalf("default settings %+v: want shared/breaker's defaults", s)
	}
	_, err = LoadReplicate(local(map[string]string{"BREAKER_TRIP_AFTER": "0", "BREAKER_TIMEOUT": "48h",
		"BREAKER_MAX_REQUESTS": "many", "BREAKER_TRIAL_LEASE": "2h", "PARK_MAX": "20m", "VISIBILITY_LIMIT": "13h",
		"REPLICATE_LEASE": "30s"}))
	for _, w := range []string{"BREAKER_TRIP_AFTER: 0 is outside 1..1000", "BREAKER_TIMEOUT: 48h0m0s is outside",
		"BREAKER_MAX_REQUESTS:", "BREAKER_TRIAL_LEASE:", "PARK_MAX 20m0s must be at most 15m0s", "VISIBILITY_LIMIT 13h0m0s must be at most 12h0m0s",
		"REPLICATE_LEASE 30s is outside 1m..12h"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q: %v", w, err)
		}
	}
	_, err = LoadReplicate(local(map[string]string{"PARK_MIN": "2m", "PARK_MAX": "1m", "VISIBILITY_BASE": "1h", "VISIBILITY_LIMIT": "1m"}))
	for _, w := range []string{"PARK_MIN 2m0s is longer than PARK_MAX 1m0s", "VISIBILITY_BASE 1h0m0s is longer than VISIBILITY_LIMIT 1m0s"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q: %v", w, err)
		}
	}
}
