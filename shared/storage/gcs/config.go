package gcs

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"google.golang.org/api/option"

	"github.com/wedsync/backup-replication/shared/secret"
)

// DefaultName is the provider name the offsite copy uses.
const DefaultName = "gcs"

// DefaultChunkSize is the resumable-upload chunk the loader should set when
// nothing else is configured: 16 MiB, the Go client's and rclone's default.
// Each upload in flight buffers one chunk.
const DefaultChunkSize = 16 << 20

// chunkQuantum is the granularity GCS requires of resumable chunks.
const chunkQuantum = 256 << 10

// Config is what the GCS provider needs. The environment loader fills it
// (STORAGE_EMULATOR_HOST becomes Endpoint there); this package reads no
// environment variable itself.
type Config struct {
	// Name is the provider's name in logs, breakers and the catalog
	// ("gcs", or e.g. "gcs-standby"). Empty means DefaultName.
	Name string
	// Bucket holds the copies. Required.
	Bucket string
	// ProjectID is the Google Cloud project; needed only to create buckets,
	// which this provider never does, so it is optional and informational.
	ProjectID string
	// CredentialsJSON is a Google credentials file's content (service
	// account, external account for workload identity federation from AWS,
	// authorized user, or impersonated service account). Empty with an empty
	// Endpoint means Application Default Credentials; empty with an
	// Endpoint means no authentication (an emulator).
	CredentialsJSON Secret
	// Endpoint overrides the JSON API endpoint, e.g. an emulator's
	// "http://127.0.0.1:4443" (with or without "/storage/v1", with or
	// without a trailing slash). Empty for Google Cloud Storage itself.
	Endpoint string
	// ChunkSize is the resumable-upload chunk in bytes, a multiple of
	// 256 KiB. 0 sends each object in one request: no buffer, but no chunk
	// retry and no resumption either. The loader sets DefaultChunkSize when
	// the operator sets nothing.
	ChunkSize int
	// Retention, when positive, places an object retention on every object
	// written, until now + Retention (the bucket must have object retention
	// enabled). Retained objects cannot be deleted or overwritten before then.
	Retention time.Duration
	// RetentionMode is "Unlocked" (the default: an administrator with the
	// override permission can shorten it) or "Locked" (nobody can).
	RetentionMode string
}

// Validate reports every problem with c at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("gcs config %q: %s: %s", c.name(), field, fmt.Sprintf(format, args...)))
	}
	if c.Bucket == "" {
		bad("Bucket", "required")
	}
	if c.ChunkSize < 0 || c.ChunkSize%chunkQuantum != 0 {
		bad("ChunkSize", "%d is not 0 or a positive multiple of 256 KiB (%d)", c.ChunkSize, chunkQuantum)
	}
	if c.Endpoint != "" {
		if u, err := url.Parse(c.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("Endpoint", "%q is not an http(s) URL", c.Endpoint)
		}
	}
	if c.CredentialsJSON != "" {
		if _, err := c.credentialsType(); err != nil {
			bad("CredentialsJSON", "%v", err)
		}
	}
	if c.Retention < 0 {
		bad("Retention", "negative (%s)", c.Retention)
	}
	switch c.RetentionMode {
	case "", "Unlocked", "Locked":
	default:
		bad("RetentionMode", "%q is neither Unlocked nor Locked", c.RetentionMode)
	}
	return errors.Join(errs...)
}

// LogValue describes c for logs without its credentials.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("name", c.name()),
		slog.String("bucket", c.Bucket),
		slog.String("project_id", c.ProjectID),
		slog.String("endpoint", c.Endpoint),
		slog.Bool("credentials", c.CredentialsJSON != ""),
		slog.Int("chunk_size", c.ChunkSize),
		slog.Duration("retention", c.Retention),
	)
}

func (c Config) name() string {
	if c.Name == "" {
		return DefaultName
	}
	return c.Name
}

// credentialsType reads the "type" field of the credentials JSON; it never
// quotes the content, which is secret.
func (c Config) credentialsType() (option.CredentialsType, error) {
	var f struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal([]byte(c.CredentialsJSON.Reveal()), &f); err != nil {
		return "", errors.New("not a JSON object")
	}
	switch t := option.CredentialsType(f.Type); t {
	case option.ServiceAccount, option.AuthorizedUser, option.ExternalAccount, option.ImpersonatedServiceAccount:
		return t, nil
	}
	return "", fmt.Errorf("credentials type %q is not one of service_account, external_account, authorized_user, impersonated_service_account", f.Type)
}

// Secret is the shared redacting credential type: String, GoString,
// LogValue and MarshalText never show its value.
type Secret = secret.Secret
