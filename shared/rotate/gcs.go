package rotate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/wedsync/backup-replication/shared/credentials"
	"github.com/wedsync/backup-replication/shared/secret"
	"github.com/wedsync/backup-replication/shared/storage"
	"github.com/wedsync/backup-replication/shared/storage/gcs"
)

// KeyAdmin is the port to a service account's keys: Google's IAM API
// (IAMKeys) in production. Key ids are the last segment of a key's name.
type KeyAdmin interface {
	// CreateKey makes a key for the service account and returns its
	// credentials file.
	CreateKey(ctx context.Context, account string) (secret.Secret, error)
	// ListKeys lists the ids of the account's user-managed keys.
	ListKeys(ctx context.Context, account string) ([]string, error)
	// DeleteKey deletes one key; a key already gone is not an error.
	DeleteKey(ctx context.Context, account, keyID string) error
}

// GCSConfig is what the GCS rotator needs.
type GCSConfig struct {
	// Provider is the bucket testSecret probes (its CredentialsJSON is
	// replaced by the pending key).
	Provider gcs.Config
	// IAMEndpoint is the IAM API's base URL; empty means
	// https://iam.googleapis.com/ (tests point it at a fake).
	IAMEndpoint string
	// Admin opens the key port with a credentials file (the current key:
	// the service account manages its own keys, which needs
	// roles/iam.serviceAccountKeyAdmin on itself). Nil means IAMKeys.
	Admin   func(ctx context.Context, credentialsJSON secret.Secret) (KeyAdmin, error)
	Probing Probing
}

// GCSRotator rotates the offsite provider's service-account key. The
// service account must be dedicated to replication: every user-managed key
// of it other than the secret's current one is deleted.
type GCSRotator struct {
	cfg GCSConfig
	log *slog.Logger
}

// NewGCS returns the GCS rotator.
func NewGCS(cfg GCSConfig, log *slog.Logger) *GCSRotator {
	if cfg.Admin == nil {
		endpoint := cfg.IAMEndpoint
		cfg.Admin = func(ctx context.Context, creds secret.Secret) (KeyAdmin, error) {
			return NewIAMKeys(ctx, endpoint, creds)
		}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &GCSRotator{cfg: cfg, log: log}
}

// Provider names the provider.
func (r *GCSRotator) Provider() string {
	if r.cfg.Provider.Name != "" {
		return r.cfg.Provider.Name
	}
	return gcs.DefaultName
}

func (r *GCSRotator) account(ctx context.Context, v secret.Secret) (credentials.GCSCreds, KeyAdmin, error) {
	c, err := credentials.ParseGCS(v)
	if err != nil {
		return c, nil, err
	}
	if c.Type != "service_account" {
		return c, nil, fmt.Errorf("gcs credentials of type %q have no key to rotate (only service-account keys rotate)", c.Type)
	}
	a, err := r.cfg.Admin(ctx, c.CredentialsJSON)
	return c, a, err
}

// Create deletes the account's keys other than the current one (the
// previous rotation's, and any left by an interrupted rotation), then
// creates a new key.
func (r *GCSRotator) Create(ctx context.Context, current, _ secret.Secret) (secret.Secret, error) {
	c, admin, err := r.account(ctx, current)
	if err != nil {
		return "", err
	}
	if err := r.deleteOthers(ctx, admin, c.ClientEmail, c.PrivateKeyID); err != nil {
		return "", err
	}
	file, err := admin.CreateKey(ctx, c.ClientEmail)
	if err != nil {
		return "", err
	}
	n, err := credentials.ParseGCS(file)
	if err != nil {
		return "", fmt.Errorf("the new key: %w", err)
	}
	r.log.InfoContext(ctx, "service-account key created", "provider", r.Provider(), "op", "rotate",
		"client_email", n.ClientEmail, "private_key_id", n.PrivateKeyID)
	return n.Secret(), nil
}

// Set checks the pending key is a key of the same service account.
func (r *GCSRotator) Set(ctx context.Context, current, pending secret.Secret) error {
	c, err := credentials.ParseGCS(current)
	if err != nil {
		return err
	}
	p, err := credentials.ParseGCS(pending)
	if err != nil {
		return err
	}
	if p.ClientEmail != c.ClientEmail {
		return fmt.Errorf("the pending key belongs to %s, not %s", p.ClientEmail, c.ClientEmail)
	}
	return nil
}

// Test probes the bucket with the pending key.
func (r *GCSRotator) Test(ctx context.Context, pending secret.Secret) error {
	return r.cfg.Probing.probe(ctx, func() (storage.Provider, error) {
		c, err := credentials.ParseGCS(pending)
		if err != nil {
			return nil, err
		}
		cfg := r.cfg.Provider
		cfg.CredentialsJSON = c.CredentialsJSON
		return gcs.New(ctx, cfg, nil)
	})
}

// Retire deletes every user-managed key of the account but current's and
// previous's, calling IAM with the current key.
func (r *GCSRotator) Retire(ctx context.Context, current, previous secret.Secret) error {
	c, admin, err := r.account(ctx, current)
	if err != nil {
		return err
	}
	keep := []string{c.PrivateKeyID}
	if p, err := credentials.ParseGCS(previous); err == nil && p.ClientEmail == c.ClientEmail {
		keep = append(keep, p.PrivateKeyID)
	}
	return r.deleteOthers(ctx, admin, c.ClientEmail, keep...)
}

// deleteOthers deletes the account's keys not in keep; keep[0] (the
// current key) must be one of them, or nothing is deleted.
func (r *GCSRotator) deleteOthers(ctx context.Context, admin KeyAdmin, account string, keep ...string) error {
	ids, err := admin.ListKeys(ctx, account)
	if err != nil {
		return err
	}
	found := false
	for _, id := range ids {
		found = found || id == keep[0]
	}
	if !found {
		return errors.New("the secret's key is not among the service account's keys: refusing to delete any")
	}
	for _, id := range ids {
		if slices.Contains(keep, id) {
			continue
		}
		if err := admin.DeleteKey(ctx, account, id); err != nil {
			return err
		}
		r.log.InfoContext(ctx, "service-account key deleted", "provider", r.Provider(), "op", "rotate",
			"client_email", account, "private_key_id", id)
	}
	return nil
}
