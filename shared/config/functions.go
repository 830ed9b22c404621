package config

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/wedsync/backup-replication/shared/secret"
)

// Replicate is functions/replicate's configuration. Besides Common:
//
//	PROVIDER                 the provider this deployment copies to: supabase | s3 | gcs | s3-standby (required)
//	REPLICATE_CONCURRENCY    records of one SQS batch processed at once (default 4)
//	REPLICATE_RESUME_ABOVE   size from which resumable uploads are used, e.g. 32MiB (default 32MiB)
//	QUEUE_URL                this provider's queue (informational, for logs)
//	REPLICATE_REQUIRE_SEAL   true: copy only sealed objects (sealed/{org}/{id}); a plaintext landing
//	                         event is consumed with nothing copied, the seal step owns it (default true)
//	PARK_MIN, PARK_MAX       shortest and longest wait of a message re-sent while its provider's breaker
//	                         is open (default 10s and 15m; at most 15m, SQS's longest delay)
//	VISIBILITY_BASE          visibility timeout of a failed message after its first receive, doubling with
//	VISIBILITY_LIMIT         each receive up to the limit (default 30s and 2h; at most 12h)
//	REPLICATE_LEASE          how long a delivery's claim on a copy keeps duplicate deliveries away; at
//	                         least the function's timeout (default 15m, Lambda's longest; 1m..12h)
//
// and the breaker settings of Common (BREAKER_*). Required: LANDING_BUCKET,
// BACKUPS_TABLE, REPLICAS_TABLE, PROVIDER, and PROVIDER's own settings;
// PROVIDER must be in the policy table.
type Replicate struct {
	Common
	Provider    string
	Concurrency int
	ResumeAbove int64
	QueueURL    string
	// RequireSeal is REPLICATE_REQUIRE_SEAL: providers only ever receive
	// sealed bytes (issue 8).
	RequireSeal bool
	// ParkMin and ParkMax are PARK_MIN and PARK_MAX; 0 means replicate's
	// default.
	ParkMin, ParkMax time.Duration
	// VisibilityBase and VisibilityLimit are VISIBILITY_BASE and
	// VISIBILITY_LIMIT; 0 means replicate's default.
	VisibilityBase, VisibilityLimit time.Duration
	// Lease is REPLICATE_LEASE; 0 means replicate's default.
	Lease time.Duration
}

// Limits SQS sets on the waits replicate asks for.
const (
	maxPark       = 15 * time.Minute // DelaySeconds
	maxVisibility = 12 * time.Hour   // VisibilityTimeout
)

// LoadReplicate reads and validates a replicate deployment's variables.
func LoadReplicate(getenv Getenv) (Replicate, error) {
	c, err := LoadCommon(getenv)
	r := &reader{get: getenv}
	out := Replicate{
		Common:      c,
		Provider:    r.str("PROVIDER", ""),
		Concurrency: r.int("REPLICATE_CONCURRENCY", 4),
		ResumeAbove: r.size("REPLICATE_RESUME_ABOVE", 32<<20),
		QueueURL:    r.str("QUEUE_URL", ""),
		RequireSeal: r.bool("REPLICATE_REQUIRE_SEAL", true),
		ParkMin:     r.duration("PARK_MIN", 0), ParkMax: r.duration("PARK_MAX", 0),
		VisibilityBase: r.duration("VISIBILITY_BASE", 0), VisibilityLimit: r.duration("VISIBILITY_LIMIT", 0),
		Lease: r.duration("REPLICATE_LEASE", 0),
	}
	return out, errors.Join(err, r.err(), out.Validate())
}

// Validate reports every missing or inconsistent setting, naming variables.
func (c Replicate) Validate() error {
	errs := []error{require("LANDING_BUCKET", c.LandingBucket, "BACKUPS_TABLE", c.Tables.Backups,
		"REPLICAS_TABLE", c.Tables.Replicas, "PROVIDER", c.Provider)}
	if c.Provider != "" {
		if !c.Providers.Has(c.Provider) {
			errs = append(errs, fmt.Errorf("PROVIDER %q has no settings (set %s)", c.Provider, bucketVar(c.Provider)))
		}
		if _, ok := c.Policy.Provider(c.Provider); !ok {
			errs = append(errs, fmt.Errorf("PROVIDER %q is not in the policy table (POLICY lists %s)", c.Provider,
				strings.Join(c.Policy.Names(), ", ")))
		}
	}
	errs = append(errs, c.Providers.Select(c.Provider).Validate())
	if c.Concurrency < 1 || c.Concurrency > 64 {
		errs = append(errs, fmt.Errorf("REPLICATE_CONCURRENCY %d is outside 1..64", c.Concurrency))
	}
	if c.ParkMin > maxPark || c.ParkMax > maxPark {
		errs = append(errs, fmt.Errorf("PARK_MIN %s and PARK_MAX %s must be at most %s (SQS's longest delay)", c.ParkMin, c.ParkMax, maxPark))
	}
	if c.ParkMin > 0 && c.ParkMax > 0 && c.ParkMin > c.ParkMax {
		errs = append(errs, fmt.Errorf("PARK_MIN %s is longer than PARK_MAX %s", c.ParkMin, c.ParkMax))
	}
	if c.VisibilityBase > maxVisibility || c.VisibilityLimit > maxVisibility {
		errs = append(errs, fmt.Errorf("VISIBILITY_BASE %s and VISIBILITY_LIMIT %s must be at most %s (SQS's longest visibility timeout)",
			c.VisibilityBase, c.VisibilityLimit, maxVisibility))
	}
	if c.Lease != 0 && (c.Lease < time.Minute || c.Lease > 12*time.Hour) {
		errs = append(errs, fmt.Errorf("REPLICATE_LEASE %s is outside 1m..12h", c.Lease))
	}
	if c.VisibilityBase > 0 && c.VisibilityLimit > 0 && c.VisibilityBase > c.VisibilityLimit {
		errs = append(errs, fmt.Errorf("VISIBILITY_BASE %s is longer than VISIBILITY_LIMIT %s", c.VisibilityBase, c.VisibilityLimit))
	}
	return errors.Join(errs...)
}

func bucketVar(provider string) string {
	switch provider {
	case NameSupabase:
		return "SUPABASE_BUCKET"
	case NameS3:
		return "S3_REPLICA_BUCKET"
	case NameS3Standby:
		return "S3_STANDBY_BUCKET"
	case NameGCS:
		return "GCS_BUCKET"
	}
	return "a known provider name: supabase, s3, gcs, s3-standby"
}

// API is functions/api's configuration. Besides Common:
//
//	API_JWT_SECRET            HS256 key for bearer tokens (local; a secret)
//	API_JWT_SECRET_ARN        or: Secrets Manager secret holding it
//	API_JWT_ISSUER            required iss claim
//	API_JWT_AUDIENCE          required aud claim
//	API_JWT_JWKS_URL          JWKS for RS256/ES256 tokens (instead of a shared key)
//	ALLOWED_ORIGIN            CORS origin of the dashboard / app
//	API_MAX_SIZE              largest backup accepted, e.g. 5GiB (0: the API's default)
//	API_PART_SIZE             multipart part size (0: default)
//	API_MULTIPART_THRESHOLD   size from which uploads go in parts (0: default)
//	API_UPLOAD_URL_TTL        life of presigned upload URLs, e.g. 15m (0: default)
//	API_DOWNLOAD_URL_TTL      life of download URLs (0: default)
//
// Required: LANDING_BUCKET, BACKUPS_TABLE, REPLICAS_TABLE, an issuer, and a
// key (API_JWT_SECRET, API_JWT_SECRET_ARN or API_JWT_JWKS_URL).
type API struct {
	Common
	JWTSecret          secret.Secret
	JWTSecretARN       string
	JWTIssuer          string
	JWTAudience        string
	JWKSURL            string
	AllowedOrigin      string
	MaxSize            int64
	PartSize           int64
	MultipartThreshold int64
	UploadURLTTL       time.Duration
	DownloadURLTTL     time.Duration
	// WebSocketURL (WS_URL) is the WebSocket API's client address
	// (wss://…/{stage}) that the dashboard connects to; empty: the page
	// takes it from its own address or asks.
	WebSocketURL string
}

// LoadAPI reads and validates the API's variables.
func LoadAPI(getenv Getenv) (API, error) {
	c, err := LoadCommon(getenv)
	r := &reader{get: getenv}
	out := API{
		Common:             c,
		JWTSecret:          r.secret("API_JWT_SECRET"),
		JWTSecretARN:       r.str("API_JWT_SECRET_ARN", ""),
		JWTIssuer:          r.str("API_JWT_ISSUER", ""),
		JWTAudience:        r.str("API_JWT_AUDIENCE", ""),
		JWKSURL:            r.url("API_JWT_JWKS_URL"),
		AllowedOrigin:      r.str("ALLOWED_ORIGIN", ""),
		MaxSize:            r.size("API_MAX_SIZE", 0),
		PartSize:           r.size("API_PART_SIZE", 0),
		MultipartThreshold: r.size("API_MULTIPART_THRESHOLD", 0),
		UploadURLTTL:       r.duration("API_UPLOAD_URL_TTL", 0),
		DownloadURLTTL:     r.duration("API_DOWNLOAD_URL_TTL", 0),
		WebSocketURL:       r.str("WS_URL", ""),
	}
	return out, errors.Join(err, r.err(), out.Validate())
}

// Validate reports every missing setting, naming variables.
func (c API) Validate() error {
	errs := []error{require("LANDING_BUCKET", c.LandingBucket, "BACKUPS_TABLE", c.Tables.Backups,
		"REPLICAS_TABLE", c.Tables.Replicas, "API_JWT_ISSUER", c.JWTIssuer)}
	if c.JWTSecret.IsZero() && c.JWTSecretARN == "" && c.JWKSURL == "" {
		errs = append(errs, errors.New("one of API_JWT_SECRET, API_JWT_SECRET_ARN or API_JWT_JWKS_URL is required"))
	}
	errs = append(errs, c.Providers.Validate())
	return errors.Join(errs...)
}

// Queue is one provider's queue and dead-letter queue.
type Queue struct {
	URL    string // {PROVIDER}_QUEUE_URL, e.g. S3_QUEUE_URL
	DLQURL string // {PROVIDER}_DLQ_URL
}

// Health is functions/health's configuration. Besides Common:
//
//	ALERT_TOPIC_ARN      SNS topic for alerts
//	ALERT_WEBHOOK_URL    Slack-compatible webhook (a secret: the URL carries a token)
//	SUPABASE_QUEUE_URL, S3_QUEUE_URL, GCS_QUEUE_URL, S3_STANDBY_QUEUE_URL   provider queues (reconcile)
//	SUPABASE_DLQ_URL,   S3_DLQ_URL,   GCS_DLQ_URL,   S3_STANDBY_DLQ_URL     their dead-letter queues (redrive)
//
// Required: BACKUPS_TABLE, REPLICAS_TABLE, BREAKERS_TABLE.
type Health struct {
	Common
	AlertTopicARN   string
	AlertWebhookURL secret.Secret
	// Queues by provider name.
	Queues map[string]Queue
}

// LoadHealth reads and validates the health function's variables.
func LoadHealth(getenv Getenv) (Health, error) {
	c, err := LoadCommon(getenv)
	r := &reader{get: getenv}
	out := Health{Common: c, AlertTopicARN: r.str("ALERT_TOPIC_ARN", ""),
		AlertWebhookURL: r.secret("ALERT_WEBHOOK_URL"), Queues: map[string]Queue{}}
	// "seal" is the seal step's queue (SEAL_QUEUE_URL, SEAL_DLQ_URL).
	for _, name := range []string{NameSupabase, NameS3, NameGCS, NameS3Standby, "seal"} {
		prefix := strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
		q := Queue{URL: r.str(prefix+"_QUEUE_URL", ""), DLQURL: r.str(prefix+"_DLQ_URL", "")}
		if q != (Queue{}) {
			out.Queues[name] = q
		}
	}
	return out, errors.Join(err, r.err(), out.Validate())
}

// Validate reports every missing setting, naming variables.
func (c Health) Validate() error {
	return errors.Join(require("BACKUPS_TABLE", c.Tables.Backups, "REPLICAS_TABLE", c.Tables.Replicas,
		"BREAKERS_TABLE", c.Tables.Breakers), c.Providers.Validate())
}
