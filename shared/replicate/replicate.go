// Package replicate is the per-provider replication handler: it takes SQS
// batches of EventBridge "Object Created" events from the landing bucket,
// copies each landed backup to one provider with its SHA-256 checked on the
// fly, proves the copy with the provider's own evidence, records every step
// in the catalog with conditional writes, and re-evaluates the 3-2-1 policy.
// functions/replicate wires it to Lambda; infra/local and tests run the very
// same code.
//
// What happens to a message:
//   - copied and verified, or already verified (a duplicate): consumed;
//   - the plaintext landing object of a backup that is sealed, or of any
//     backup while Config.RequireSeal: consumed with nothing copied, the
//     sealed object's event (sealed/{org}/{id}) replicates it (sealed.go);
//   - the landed bytes do not match the declared SHA-256 (the sealed
//     object's: its recorded cipher SHA-256 and size): the backup becomes
//     FAILED, nothing is replicated, and the message is consumed;
//   - the provider's circuit breaker refuses (Gate): the provider is down,
//     so the message waits in the queue (the offline queue) without being
//     counted as failed and without touching the replica (see queue.go for
//     how it waits without dead-lettering); meanwhile, when the policy has
//     a standby, the copy goes to the standby so the backup can still reach
//     PROTECTED (failover.go), and the provider is backfilled once its
//     breaker lets transfers through again;
//   - a provider or catalog failure: retried within the invocation
//     (Config.Retry: full-jitter backoff for transient and throttled
//     errors, bounded by the time left), then the replica is recorded
//     FAILED (with attempts and a redacted last error) and the message is
//     returned as a batch item failure whose visibility timeout grows with
//     its receive count (retry.VisibilityTimeout), until the queue's
//     redrive policy dead-letters it after maxReceiveCount receives;
//   - a message that can never succeed (malformed body, key outside
//     backups/{org}/{id} and sealed/{org}/{id}, a bucket other than the
//     landing bucket) and a message whose backup record does not exist:
//     a batch item failure too, logged as such, so that the redrive
//     policy moves it to the dead-letter queue. Nothing is dropped silently: the dead-letter queue
//     keeps it for inspection and redrive.
package replicate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/metrics"
	"github.com/wedsync/backup-replication/shared/policy"
	"github.com/wedsync/backup-replication/shared/storage"
)

// Gate is consulted before each transfer: a circuit breaker shared by every
// instance (shared/breaker's *Breaker has this method). A refusal is an
// error matching breaker.ErrOpen (a *breaker.Rejection's RetryAt says when
// to come back): the message waits in the queue, the replica is not
// counted as failed, and the copy fails over to the standby. Any other
// error (the breaker's state unreadable) fails the delivery like a
// catalog error would. When Allow lets the transfer through, done is
// called exactly once with its outcome, after the retries within the
// invocation: nil, the provider's error, or an error wrapping
// context.Canceled when nothing was learnt about the provider (another
// delivery had the replica, or the landing object was at fault), which a
// breaker should leave uncounted.
type Gate interface {
	Allow(ctx context.Context) (done func(error), err error)
}

// ProgressEvent is one step of a copy, for live subscribers.
type ProgressEvent struct {
	BackupID       string               `json:"backupId"`
	OrganizationID string               `json:"organizationId"`
	Provider       string               `json:"provider"`
	State          catalog.ReplicaState `json:"state"`
	Bytes          int64                `json:"bytes"`
	Total          int64                `json:"total"`
	Attempt        int                  `json:"attempt"`
	// BackupStatus is set when the backup's standing changed.
	BackupStatus catalog.Status `json:"backupStatus,omitempty"`
	Error        string         `json:"error,omitempty"` // redacted
	At           time.Time      `json:"at"`
}

// Publisher receives progress events. It is called from the copy's read
// path and must return quickly (queue, don't post inline).
type Publisher interface {
	Progress(ctx context.Context, ev ProgressEvent)
}

// Flusher is a Publisher that can be asked to send what it holds before
// an invocation ends (shared/publish's Publisher is one).
type Flusher interface {
	Flush(ctx context.Context) error
}

// Deps are the ports a Handler works through.
type Deps struct {
	// Provider is the destination. Decorators for logging are welcome; a
	// breaker decorator is not (the Gate is the breaker: each transfer
	// would count twice), nor a retry decorator (the handler retries
	// whole transfers itself, Config.Retry).
	Provider storage.Provider
	Landing  *Landing // the landing bucket
	Store    catalog.Store
	Policy   policy.Table
	Logger   *slog.Logger    // JSON handler; nil: discard
	Metrics  metrics.Emitter // nil: discard
	Progress Publisher       // nil: none
	Gate     Gate            // Provider's breaker; nil: always allow
	// Standby is the policy's standby provider (failover target) and
	// StandbyGate its breaker; nil Standby: no failover. Ignored when the
	// standby is Provider itself.
	Standby     storage.Provider
	StandbyGate Gate
	// Queue reaches Config.QueueURL; nil: visibility and re-sends are left
	// to the queue's defaults.
	Queue QueueAPI
	Now   func() time.Time
}

// target is one provider the handler writes to: its own, or the standby.
type target struct {
	name string
	p    storage.Provider
	copy storage.Copier
	res  storage.Resumer
	gate Gate
}

func newTarget(p storage.Provider, gate Gate) *target {
	if gate == nil {
		gate = openGate{}
	}
	t := &target{name: p.Name(), p: p, gate: gate}
	t.copy, _ = storage.As[storage.Copier](p)
	t.res, _ = storage.As[storage.Resumer](p)
	return t
}

// Handler replicates landed backups to one provider.
type Handler struct {
	cfg     Config
	d       Deps
	log     *slog.Logger
	own     *target
	standby *target // nil: no failover
}

// New checks cfg and deps and returns a Handler.
func New(cfg Config, d Deps) (*Handler, error) {
	errs := []error{cfg.Validate()}
	if d.Provider == nil || d.Landing == nil || d.Store == nil {
		errs = append(errs, errors.New("replicate: provider, landing and store are required"))
	} else if d.Provider.Name() != cfg.Provider {
		errs = append(errs, fmt.Errorf("replicate: provider is %q, config says %q", d.Provider.Name(), cfg.Provider))
	}
	if _, ok := d.Policy.Provider(cfg.Provider); !ok {
		errs = append(errs, fmt.Errorf("replicate: provider %q is not in the policy table", cfg.Provider))
	}
	if d.Standby != nil {
		if row, ok := d.Policy.Provider(d.Standby.Name()); !ok || row.Role != policy.RoleStandby {
			errs = append(errs, fmt.Errorf("replicate: standby %q is not a standby in the policy table", d.Standby.Name()))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.ResumeAbove == 0 {
		cfg.ResumeAbove = DefaultResumeAbove
	}
	if cfg.Reserve == 0 {
		cfg.Reserve = DefaultReserve
	}
	if cfg.VisibilityBase == 0 {
		cfg.VisibilityBase = DefaultVisibilityBase
	}
	if cfg.VisibilityLimit == 0 {
		cfg.VisibilityLimit = DefaultVisibilityLimit
	}
	if cfg.ParkMin == 0 {
		cfg.ParkMin = DefaultParkMin
	}
	if cfg.ParkMax == 0 {
		cfg.ParkMax = MaxParkDelay
	}
	cfg.ParkMin = min(cfg.ParkMin, cfg.ParkMax)
	if cfg.SealWait == 0 {
		cfg.SealWait = DefaultSealWait
	}
	if cfg.Lease == 0 {
		cfg.Lease = DefaultLease
	}
	if cfg.Lease <= 2*cfg.Reserve {
		return nil, fmt.Errorf("replicate: lease %s must be longer than twice the reserve %s", cfg.Lease, cfg.Reserve)
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Metrics == nil {
		d.Metrics = metrics.Discard
	}
	if d.Progress == nil {
		d.Progress = nopPublisher{}
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	h := &Handler{cfg: cfg, d: d, log: d.Logger.With("provider", cfg.Provider), own: newTarget(d.Provider, d.Gate)}
	if d.Standby != nil && d.Standby.Name() != cfg.Provider {
		h.standby = newTarget(d.Standby, d.StandbyGate)
	}
	return h, nil
}

type nopPublisher struct{}

func (nopPublisher) Progress(context.Context, ProgressEvent) {}

type openGate struct{}

func (openGate) Allow(context.Context) (func(error), error) { return func(error) {}, nil }

// Handle processes an SQS batch. It never returns an error and never
// panics: each record that must be seen again is listed in
// BatchItemFailures (the event source mapping needs
// FunctionResponseTypes: ReportBatchItemFailures), with its visibility
// timeout set (Config.QueueURL); a record waiting for an open breaker is
// re-sent with a delay and consumed (queue.go).
func (h *Handler) Handle(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	failed := EachRecord(ev.Records, h.cfg.Concurrency, func(msg events.SQSMessage) bool {
		return h.dispose(ctx, msg, h.handleRecord(ctx, msg))
	})
	if f, ok := h.d.Progress.(Flusher); ok {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), flushWait)
		if err := f.Flush(fctx); err != nil {
			h.log.WarnContext(ctx, "progress not all sent before the invocation ended", "op", "publish", "error", Redact(err.Error()))
		}
		cancel()
	}
	return events.SQSEventResponse{BatchItemFailures: failed}, nil
}

// flushWait bounds the progress flush at the end of an invocation.
const flushWait = 2 * time.Second

// ReceiveCount is the message's ApproximateReceiveCount (1 when absent).
func ReceiveCount(msg events.SQSMessage) int {
	n, err := strconv.Atoi(msg.Attributes["ApproximateReceiveCount"])
	if err != nil || n < 1 {
		return 1
	}
	return n
}

// handleRecord processes one message and says what became of it.
func (h *Handler) handleRecord(ctx context.Context, msg events.SQSMessage) (out outcome) {
	start := h.d.Now()
	attempt := ReceiveCount(msg)
	log := h.log.With("message_id", msg.MessageId, "attempt", attempt)
	defer func() {
		if r := recover(); r != nil {
			log.ErrorContext(ctx, "replicate panicked; message returned to the queue", "op", "replicate", "panic", Redact(fmt.Sprint(r)))
			out = outcome{what: "panic"}
		}
	}()
	ev, err := ParseEvent(msg.Body)
	if err == nil && ev.Bucket != h.cfg.LandingBucket {
		err = fmt.Errorf("%w: event from bucket %q, not the landing bucket", errMalformed, clip(ev.Bucket))
	}
	if err != nil {
		log.ErrorContext(ctx, "malformed message; returned to the queue for the dead-letter queue", "op", "parse",
			"error", Redact(err.Error()), "duration_ms", ms(h.d.Now().Sub(start)))
		h.emit(h.cfg.Provider, "replicate", 0, h.d.Now().Sub(start), true, "")
		return outcome{what: "malformed", err: err}
	}
	r := &run{h: h, tg: h.own, ev: ev, attempt: attempt, log: log.With("backup_id", ev.BackupID)}
	out = r.process(ctx)
	d := h.d.Now().Sub(start)
	level := slog.LevelInfo
	if !out.consumed && !out.waiting {
		level = slog.LevelWarn
	}
	attrs := []any{"op", "replicate", "outcome", out.what, "bytes", out.bytes, "duration_ms", ms(d)}
	if out.err != nil {
		attrs = append(attrs, "error", Redact(out.err.Error()), "kind", storage.KindOf(out.err).String())
	}
	r.log.Log(ctx, level, "replicate "+out.what, attrs...)
	h.emit(h.cfg.Provider, "replicate", out.bytes, d, !out.consumed && !out.waiting, ev.BackupID)
	return out
}

func (h *Handler) emit(provider, op string, bytes int64, d time.Duration, failed bool, backupID string) {
	m := metrics.Measurement{Provider: provider, Operation: op, Count: 1, Bytes: bytes, Duration: d}
	if failed {
		m.Errors = 1
	}
	if backupID != "" {
		m.Properties = map[string]string{"backup_id": backupID}
	}
	h.d.Metrics.Emit(m)
}

func ms(d time.Duration) int64 { return d.Milliseconds() }
