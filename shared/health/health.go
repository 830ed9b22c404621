// Package health is the health function: every minute (EventBridge
// rate(1 minute)) it probes every provider twice, at +0 s and +30 s, since
// EventBridge cannot schedule more often.
//
// A round writes, reads back, verifies and deletes a canary on each
// provider (storage.Probe: the first failing step wins), reads the
// provider's shared circuit breaker (whose counts are the outcomes of real
// transfers), and folds both into the provider's status with hysteresis
// (Assess: down after 2 failed probes or an open breaker, up after 3 good
// probes). Each round keeps a history item (with TTL) and a status document
// per provider for the dashboard (Status, ProviderHealth). A provider that
// goes down raises one alert; when it comes back, one recovery alert, its
// dead-letter queue is redriven and every backup missing a copy on it is
// queued again (reconcile).
//
// Between the rounds the function looks after the backups: alerts for
// backups AT_RISK too long, non-empty dead-letter queues and integrity
// failures; a periodic reconcile; and scrubbing (the 0 of 3-2-1-1-0): a
// rotating sample of verified copies is read back within a byte budget and
// hashed, and a missing or corrupt copy is marked FAILED, alerted, and
// repaired (queued for the replicate function when the landing object is
// still there, otherwise copied here from another verified copy).
//
// functions/health wires it to Lambda; the local stack and tests run the
// very same Handler.
package health

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/wedsync/backup-replication/shared/alert"
	"github.com/wedsync/backup-replication/shared/breaker"
	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/metrics"
	"github.com/wedsync/backup-replication/shared/policy"
	"github.com/wedsync/backup-replication/shared/publish"
	"github.com/wedsync/backup-replication/shared/replicate"
	"github.com/wedsync/backup-replication/shared/storage"
)

// QueueAPI is the part of the SQS client the health function uses;
// *sqs.Client implements it.
type QueueAPI interface {
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, opts ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
	SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, opts ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error)
	ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, opts ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessageBatch(ctx context.Context, in *sqs.DeleteMessageBatchInput, opts ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error)
	GetQueueAttributes(ctx context.Context, in *sqs.GetQueueAttributesInput, opts ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
	StartMessageMoveTask(ctx context.Context, in *sqs.StartMessageMoveTaskInput, opts ...func(*sqs.Options)) (*sqs.StartMessageMoveTaskOutput, error)
}

// Deps are the ports the handler works through.
type Deps struct {
	// Providers are the providers by name, without a breaker decorator:
	// probes and scrub reads must reach a provider whose breaker is open.
	Providers map[string]storage.Provider
	// Breakers are the providers' shared circuit breakers (optional per
	// provider). Probes report to them, so a probe can close a half-open
	// breaker, and their state feeds each provider's health.
	Breakers map[string]*breaker.Breaker
	Catalog  catalog.Store
	Policy   policy.Table
	Store    *Store
	// Alerts delivers alerts; nil records nothing and logs only.
	Alerts *alert.Manager
	// Queues reaches the providers' queues; nil disables reconcile's
	// queueing, redrive and dead-letter alerts.
	Queues QueueAPI
	// Landing reads the landing bucket (repair decides between queueing
	// and copying from another provider); nil means always queue.
	Landing *replicate.Landing
	Logger  *slog.Logger    // JSON; nil discards
	Metrics metrics.Emitter // nil discards
	Now     func() time.Time
	// Live pushes each provider's status and each provider alert to the
	// dashboard's WebSocket subscribers (shared/publish); nil: no push.
	Live Live
	// Retention applies the retention policy at most once per
	// RetentionEvery (retention.go); nil: nothing expires.
	Retention Retention
}

// Live is the part of the WebSocket publisher (shared/publish) health uses.
type Live interface {
	ProviderHealth(ctx context.Context, h publish.ProviderHealth)
	Alert(ctx context.Context, a publish.Alert)
	Flush(ctx context.Context) error
}

// Handler is the health function.
type Handler struct {
	cfg Config
	d   Deps
	log *slog.Logger
	th  Thresholds
}

// New checks cfg and d and returns a Handler.
func New(cfg Config, d Deps) (*Handler, error) {
	cfg = cfg.withDefaults()
	errs := []error{cfg.Validate()}
	if d.Catalog == nil || d.Store == nil {
		errs = append(errs, errors.New("health: a catalog and a health store are required"))
	}
	for _, name := range cfg.Providers {
		if d.Providers[name] == nil {
			errs = append(errs, errors.New("health: provider "+name+" is not built"))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Metrics == nil {
		d.Metrics = metrics.Discard
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	return &Handler{cfg: cfg, d: d, log: d.Logger,
		th: Thresholds{DownAfter: cfg.DownAfter, UpAfter: cfg.UpAfter, Slow: cfg.SlowProbe}}, nil
}

// Report is what one invocation did.
type Report struct {
	Rounds      []RoundReport     `json:"rounds"`
	Maintenance MaintenanceReport `json:"maintenance"`
}

// Handle runs on the schedule: a round, the maintenance work (alerts,
// reconcile, scrub) until the second round is due, then, unless
// Config.SingleRound, the second round RoundInterval after the first. It
// never fails the invocation: every problem is logged and counted.
func (h *Handler) Handle(ctx context.Context, _ events.EventBridgeEvent) (Report, error) {
	start := h.d.Now()
	var rep Report
	rep.Rounds = append(rep.Rounds, h.Round(ctx))
	second := start.Add(h.cfg.RoundInterval)
	mctx, cancel := context.WithCancel(ctx)
	if !h.cfg.SingleRound {
		// Maintenance gives way to the second round.
		mctx, cancel = context.WithDeadline(ctx, second.Add(-time.Second))
	}
	rep.Maintenance = h.Maintain(mctx)
	cancel()
	defer h.flushLive(ctx)
	if h.cfg.SingleRound {
		return rep, nil
	}
	if dl, ok := ctx.Deadline(); ok && dl.Before(second.Add(h.cfg.ProbeTimeout+2*time.Second)) {
		h.log.WarnContext(ctx, "no time left for the second round", "op", "health")
		return rep, nil
	}
	if err := sleepUntil(ctx, second); err != nil {
		return rep, nil
	}
	rep.Rounds = append(rep.Rounds, h.Round(ctx))
	return rep, nil
}

// flushLive waits for the status pushes to leave before the function
// freezes.
func (h *Handler) flushLive(ctx context.Context) {
	if h.d.Live == nil {
		return
	}
	if err := h.d.Live.Flush(ctx); err != nil {
		h.log.WarnContext(ctx, "status push not flushed", "op", "publish", "error", err.Error())
	}
}

// sleepUntil waits until t or the end of ctx.
func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

func ms(d time.Duration) int64 { return d.Milliseconds() }
