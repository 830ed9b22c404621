package health

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/wedsync/backup-replication/shared/api"
	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/config"
	"github.com/wedsync/backup-replication/shared/erase"
	"github.com/wedsync/backup-replication/shared/keys"
	"github.com/wedsync/backup-replication/shared/retention"
	"github.com/wedsync/backup-replication/shared/storage"
)

// RetentionEvery is how often, at most, the scheduled run applies the
// retention policy, across every invocation and instance.
const RetentionEvery = time.Hour

// retentionMarker is the health table marker of the last retention run.
const retentionMarker = "retention"

// Retention applies the retention policy; *retention.Runner implements it.
type Retention interface {
	Apply(ctx context.Context) (retention.Report, error)
}

var _ Retention = (*retention.Runner)(nil)

// RetentionEnv is the retention part of the health function's
// environment: the policy (config.Retention: RETENTION_POLICY,
// RETENTION_MAX_PER_RUN) and, when a policy is set, the key store that
// erasure destroys keys in (config.Keys: KEYS_TABLE, KMS_KEY_ID, …).
type RetentionEnv struct {
	Policy retention.Config
	Keys   *keys.Config
}

// LoadRetentionEnv reads RetentionEnv through getenv; a policy without
// KEYS_TABLE is an error (erasure must destroy keys first).
func LoadRetentionEnv(getenv func(string) string) (RetentionEnv, error) {
	var re RetentionEnv
	var errs []error
	var err error
	re.Policy, err = config.Retention(config.Getenv(getenv))
	errs = append(errs, err)
	if re.Policy.Enabled() || strings.TrimSpace(getenv("KEYS_TABLE")) != "" {
		kc, err := config.Keys(config.Getenv(getenv))
		if err != nil {
			errs = append(errs, err)
		}
		re.Keys = &kc
	}
	return re, errors.Join(errs...)
}

// wireRetention builds the retention runner (nil when no policy is set):
// the key store on KMS and the keys table, an Eraser over the same
// providers and the landing bucket, and the retainers of the providers
// that write copies under lock.
func wireRetention(c config.Health, re RetentionEnv, awsCfg aws.Config, db *dynamodb.Client, cat catalog.Store,
	ps map[string]storage.Provider, logger *slog.Logger) (Retention, error) {
	if !re.Policy.Enabled() {
		logger.Info("no RETENTION_POLICY: backups are kept for ever", "op", "init")
		return nil, nil
	}
	if re.Keys == nil {
		return nil, errors.New("RETENTION_POLICY needs KEYS_TABLE: erasure destroys the data key first")
	}
	ks, err := keys.New(*re.Keys, kms.NewFromConfig(awsCfg), db)
	if err != nil {
		return nil, err
	}
	landing, err := api.LandingProvider(c.Common, awsCfg, logger)
	if err != nil {
		return nil, err
	}
	er, err := erase.New(erase.Deps{Catalog: cat, Keys: ks, Providers: ps, Landing: landing, Logger: logger})
	if err != nil {
		return nil, err
	}
	return retention.NewRunner(re.Policy, retention.Deps{Catalog: cat, Eraser: er, Logger: logger,
		Retainers: retainers(c.Locks, ps, logger)})
}

// retainers are the providers of ps whose copies are written under lock
// (config.Locks) and that can extend a lock: the retention run keeps
// their copies of kept backups locked for as long as the policy keeps
// them.
func retainers(locks config.Locks, ps map[string]storage.Provider, logger *slog.Logger) map[string]storage.Retainer {
	out := map[string]storage.Retainer{}
	for name, p := range ps {
		if !locks.For(name).On() {
			continue
		}
		r, ok := storage.As[storage.Retainer](p)
		if !ok {
			logger.Warn("copies are written under lock but the provider cannot extend it: kept backups keep their write-time lock",
				"op", "init", "provider", name)
			continue
		}
		out[name] = r
	}
	return out
}

// periodicRetention applies the retention policy once per RetentionEvery
// across all invocations: the "retention" marker records when, and only
// the run whose conditional write claims it does the work.
func (h *Handler) periodicRetention(ctx context.Context) (*retention.Report, error) {
	if h.d.Retention == nil {
		return nil, nil
	}
	m, err := h.d.Store.LoadMarker(ctx, retentionMarker)
	if err != nil {
		return nil, err
	}
	now := h.d.Now()
	if last, err := time.Parse(time.RFC3339Nano, m.Value); err == nil && now.Sub(last) < RetentionEvery {
		return nil, nil
	}
	if err := h.d.Store.SaveMarker(ctx, retentionMarker, now.UTC().Format(time.RFC3339Nano), m.Version); err != nil {
		if errors.Is(err, ErrConflict) {
			return nil, nil // another run claimed it
		}
		return nil, err
	}
	rep, err := h.d.Retention.Apply(ctx)
	return &rep, err
}
