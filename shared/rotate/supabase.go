package rotate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/wedsync/backup-replication/shared/credentials"
	"github.com/wedsync/backup-replication/shared/secret"
	"github.com/wedsync/backup-replication/shared/storage"
	"github.com/wedsync/backup-replication/shared/storage/supabase"
)

// ErrNoStagedKey is createSecret's error for Supabase when no operator has
// staged a new key: Supabase has no API through which the service key can
// mint its successor, so the new key is made in the dashboard and put into
// the secret as AWSPENDING before the rotation runs.
var ErrNoStagedKey = errors.New("supabase offers no key-rotation API: create a new secret key in the Supabase dashboard " +
	"(Project Settings → API Keys), put {\"url\",\"serviceKey\"} into the secret as AWSPENDING " +
	"(aws secretsmanager put-secret-value --version-stages AWSPENDING), then rotate")

// SupabaseConfig is what the Supabase rotator needs.
type SupabaseConfig struct {
	// Provider is the bucket testSecret probes (its ServiceKey is replaced
	// by the pending key; its URL is used when the secret has none).
	Provider supabase.Config
	Probing  Probing
}

// SupabaseRotator validates, tests and promotes a service key an operator
// supplied out of band.
type SupabaseRotator struct {
	cfg SupabaseConfig
	log *slog.Logger
}

// NewSupabase returns the Supabase rotator.
func NewSupabase(cfg SupabaseConfig, log *slog.Logger) *SupabaseRotator {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &SupabaseRotator{cfg: cfg, log: log}
}

// Provider names the provider.
func (r *SupabaseRotator) Provider() string {
	if r.cfg.Provider.Name != "" {
		return r.cfg.Provider.Name
	}
	return supabase.DefaultName
}

// Create adopts the operator's staged key (its URL defaults to the current
// one); without one it fails with ErrNoStagedKey.
func (r *SupabaseRotator) Create(ctx context.Context, current, staged secret.Secret) (secret.Secret, error) {
	if staged.IsZero() {
		return "", ErrNoStagedKey
	}
	c, err := credentials.ParseSupabase(current)
	if err != nil {
		return "", err
	}
	s, err := credentials.ParseSupabase(staged)
	if err != nil {
		return "", fmt.Errorf("the staged AWSPENDING value: %w", err)
	}
	if s.URL == "" {
		s.URL = c.URL
	}
	return s.Secret(), r.Set(ctx, current, s.Secret())
}

// Set checks the pending key is a different key for the same project (a
// rotation must not move the primary copies to another project).
func (r *SupabaseRotator) Set(ctx context.Context, current, pending secret.Secret) error {
	c, err := credentials.ParseSupabase(current)
	if err != nil {
		return err
	}
	p, err := credentials.ParseSupabase(pending)
	if err != nil {
		return err
	}
	if p.ServiceKey == c.ServiceKey {
		return errors.New("the pending service key is the current one: stage a new key")
	}
	if c.URL != "" && p.URL != "" && !sameProject(c.URL, p.URL) {
		return fmt.Errorf("the pending key is for %s, the current one for %s: a rotation does not change projects", p.URL, c.URL)
	}
	return nil
}

func sameProject(a, b string) bool {
	norm := func(s string) string {
		return strings.TrimSuffix(strings.TrimRight(strings.ToLower(s), "/"), "/storage/v1")
	}
	return norm(a) == norm(b)
}

// Test probes the bucket with the pending key.
func (r *SupabaseRotator) Test(ctx context.Context, pending secret.Secret) error {
	return r.cfg.Probing.probe(ctx, func() (storage.Provider, error) {
		p, err := credentials.ParseSupabase(pending)
		if err != nil {
			return nil, err
		}
		cfg := r.cfg.Provider
		cfg.ServiceKey = p.ServiceKey
		if p.URL != "" {
			cfg.URL = p.URL
		}
		return supabase.New(cfg, nil)
	})
}

// Retire cannot revoke the previous key (no API for it either): it logs
// that an operator should, once every function has picked the new key up.
func (r *SupabaseRotator) Retire(ctx context.Context, _, _ secret.Secret) error {
	r.log.WarnContext(ctx, "revoke the previous Supabase key in the dashboard once functions use the new one (AWSPREVIOUS holds it)",
		"provider", r.Provider(), "op", "rotate")
	return nil
}
