package replicate

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/wedsync/backup-replication/shared/breaker"
	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/config"
	"github.com/wedsync/backup-replication/shared/metrics"
	"github.com/wedsync/backup-replication/shared/providers"
	"github.com/wedsync/backup-replication/shared/storage"
	"github.com/wedsync/backup-replication/shared/storage/decorate"
	"github.com/wedsync/backup-replication/shared/validate"
)

// Option adjusts what Wire builds.
type Option func(*wiring)

type wiring struct {
	cfg       []func(*Config)
	deps      []func(*Deps)
	breaker   *breaker.Settings
	onInvalid func(ctx context.Context, r validate.Result)
}

// coldStartCheck bounds the canaries Wire runs at cold start: a provider
// that does not answer in time is not refused (that is the breaker's
// business), and the function still starts within Lambda's init limit.
const coldStartCheck = 5 * time.Second

// WithConfig lets f adjust the handler's Config (tests: short waits and
// retries) before the handler is built.
func WithConfig(f func(*Config)) Option { return func(w *wiring) { w.cfg = append(w.cfg, f) } }

// WithDeps lets f adjust the ports before the handler is built.
func WithDeps(f func(*Deps)) Option { return func(w *wiring) { w.deps = append(w.deps, f) } }

// WithProgress sends live progress to p (shared/publish's Publisher, which
// cannot be built here: it imports this package).
func WithProgress(p Publisher) Option {
	return WithDeps(func(d *Deps) { d.Progress = p })
}

// WithOnInvalid calls f each time the provider this deployment writes to
// becomes unusable: its cold-start canary, or a transfer, was refused in a
// way retrying cannot fix (credentials, a missing bucket). Wire an alert
// here (shared/alert imports this package, so Wire cannot build one); the
// refusal is logged either way.
func WithOnInvalid(f func(ctx context.Context, r validate.Result)) Option {
	return func(w *wiring) { w.onInvalid = f }
}

// WithBreakerSettings is the template of the providers' breakers (Name
// and Logger are set by Wire) instead of the configuration's (BREAKER_*,
// config.Breakers); the zero Settings use shared/breaker's defaults.
// Every process sharing a breaker should use the same settings.
func WithBreakerSettings(s breaker.Settings) Option { return func(w *wiring) { w.breaker = &s } }

// Wire builds the Handler a replicate deployment runs, from its loaded
// configuration and an AWS configuration (endpoint already applied):
//   - the configured provider, with a logging decorator (one line per
//     provider operation); no retry decorator (the handler retries whole
//     transfers, Config.Retry) and no breaker decorator (the breaker is the
//     Gate, consulted once per transfer);
//   - the standby, when the policy table has one other than this provider
//     and its settings are present (S3_STANDBY_*), for failover;
//   - the breakers' settings from BREAKER_* (config.Breakers; the same in
//     every function sharing them), park and visibility waits from
//     PARK_* and VISIBILITY_*, the copy lease from REPLICATE_LEASE;
//   - the provider's Gate: a validate.Guard, whose canary runs now
//     (bounded by coldStartCheck) and which refuses work while the
//     provider's credentials or bucket are unusable, like an open breaker
//     (the message waits, the copy fails over), in front of the provider's
//     shared circuit breaker on the BREAKERS_TABLE, when it is set;
//   - the standby's Gate: its shared breaker, when BREAKERS_TABLE is set
//     (no canary: a replicate role may write only the standby's backups/
//     prefix);
//   - its queue (QUEUE_URL), when set, for visibility timeouts and waits;
//   - Config.Immutable from the providers' lock settings (config.Locks:
//     S3_*_OBJECT_LOCK_*, GCS_RETENTION*), which providers.Build must
//     apply to the providers alike (immutable.go);
//   - the landing bucket reader, the DynamoDB catalog, the policy table,
//     JSON logs to logger and EMF metrics to metricsOut.
//
// functions/replicate and the local stack call it alike; opts adjust the
// result (WithProgress for live progress).
func Wire(ctx context.Context, cfg config.Replicate, awsCfg aws.Config, logger *slog.Logger, metricsOut io.Writer, opts ...Option) (*Handler, error) {
	var w wiring
	for _, o := range opts {
		o(&w)
	}
	names := []string{cfg.Provider}
	standby := ""
	if sb, ok := cfg.Policy.StandbyProvider(); ok && sb.Name != cfg.Provider && cfg.Providers.Has(sb.Name) {
		standby = sb.Name
		names = append(names, standby)
	}
	ps, err := providers.Build(ctx, cfg.Providers.Select(names...), awsCfg, logger)
	if err != nil {
		return nil, err
	}
	p, ok := ps[cfg.Provider]
	if !ok {
		return nil, fmt.Errorf("replicate: provider %q was not built", cfg.Provider)
	}
	db := dynamodb.NewFromConfig(awsCfg)
	store, err := catalog.NewDynamo(db, catalog.Config{BackupsTable: cfg.Tables.Backups, ReplicasTable: cfg.Tables.Replicas})
	if err != nil {
		return nil, err
	}
	landing := s3.NewFromConfig(awsCfg, func(o *s3.Options) { o.UsePathStyle = cfg.AWS.EndpointURL != "" })
	d := Deps{
		Provider: logged(p, logger),
		Landing:  NewLanding(landing, cfg.LandingBucket, cfg.AWS.EndpointURL),
		Store:    store,
		Policy:   cfg.Policy,
		Logger:   logger,
		Metrics:  metrics.NewEMF(metricsOut),
	}
	if standby != "" {
		d.Standby = logged(ps[standby], logger)
	}
	var ownBreaker, standbyBreaker *breaker.Breaker
	if cfg.Tables.Breakers != "" {
		bs, err := breaker.NewDynamoStore(db, cfg.Tables.Breakers)
		if err != nil {
			return nil, err
		}
		tmpl := cfg.Breakers.Settings("", logger)
		if w.breaker != nil {
			tmpl = *w.breaker
		}
		if ownBreaker, err = newBreaker(bs, tmpl, cfg.Provider, logger); err != nil {
			return nil, err
		}
		if standby != "" {
			if standbyBreaker, err = newBreaker(bs, tmpl, standby, logger); err != nil {
				return nil, err
			}
		}
	}
	d.Gate = w.guard(ctx, p, ownBreaker, logger)
	if standbyBreaker != nil {
		d.StandbyGate = standbyBreaker
	}
	if cfg.QueueURL != "" {
		d.Queue = sqs.NewFromConfig(awsCfg)
	}
	for _, f := range w.deps {
		f(&d)
	}
	c := Config{Provider: cfg.Provider, LandingBucket: cfg.LandingBucket, Concurrency: cfg.Concurrency,
		ResumeAbove: cfg.ResumeAbove, QueueURL: cfg.QueueURL, RequireSeal: cfg.RequireSeal,
		ParkMin: cfg.ParkMin, ParkMax: cfg.ParkMax, VisibilityBase: cfg.VisibilityBase, VisibilityLimit: cfg.VisibilityLimit,
		Lease:     cfg.Lease,
		Immutable: map[string]time.Duration{}}
	for _, name := range names {
		if l := cfg.Locks.For(name); l.On() {
			c.Immutable[name] = l.Retention
		}
	}
	for _, f := range w.cfg {
		f(&c)
	}
	return New(c, d)
}

// guard checks p now (bounded by coldStartCheck) and returns its Gate: a
// validate.Guard in front of p's breaker (nil: none).
func (w *wiring) guard(ctx context.Context, p storage.Provider, next *breaker.Breaker, logger *slog.Logger) Gate {
	cctx, cancel := context.WithTimeout(ctx, coldStartCheck)
	defer cancel()
	gc := validate.GuardConfig{Logger: logger, OnInvalid: w.onInvalid}
	if next != nil {
		gc.Next = next
	}
	g := validate.NewGuard(cctx, p, gc)
	if r := g.Result(); r.Usable() {
		logger.InfoContext(ctx, "provider checked at cold start", "provider", r.Provider, "op", "validate",
			"ok", r.OK, "step", r.Step, "kind", r.Kind, "duration_ms", r.LatencyMs)
	}
	return g
}

func logged(p storage.Provider, logger *slog.Logger) storage.Provider {
	return decorate.Chain(p, decorate.Logging(logger, nil))
}

func newBreaker(store breaker.Store, s breaker.Settings, name string, logger *slog.Logger) (*breaker.Breaker, error) {
	s.Name = name
	if s.Logger == nil {
		s.Logger = logger
	}
	return breaker.New(store, s)
}
