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
//   - the landed bytes do not match the declared SHA-256: the backup becomes
//     FAILED, nothing is replicated, and the message is consumed;
//   - a provider or catalog failure: the replica is recorded FAILED (with
//     attempts and a redacted last error) and the message is returned as a
//     batch item failure, so SQS delivers it again after its visibility
//     timeout;
//   - a message that can never succeed (malformed body, key outside
//     backups/{org}/{id}, a bucket other than the landing bucket) and a
//     message whose backup record does not exist: a batch item failure
//     too, logged as such, so that the queue's redrive policy moves it to
//     the dead-letter queue after maxReceiveCount receives. Nothing is
//     dropped silently: the dead-letter queue keeps it for inspection and
//     redrive.
package replicate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/metrics"
	"github.com/wedsync/backup-replication/shared/policy"
	"github.com/wedsync/backup-replication/shared/storage"
)

// Defaults of Config.
const (
	DefaultConcurrency = 4
	DefaultResumeAbove = 32 << 20
	DefaultReserve     = 10 * time.Second
)

// Config is what one replicate deployment serves.
type Config struct {
	// Provider is the name of the provider this deployment copies to
	// ("supabase", "s3", "gcs", "s3-standby"). Required.
	Provider string
	// LandingBucket is the bucket events must come from. Required.
	LandingBucket string
	// Concurrency is how many records of a batch are processed at once.
	Concurrency int
	// ResumeAbove is the size from which a provider that can resume
	// uploads across invocations (storage.Resumer) is asked to.
	ResumeAbove int64
	// Reserve is time kept back from a transfer, before the invocation's
	// deadline, to record its outcome.
	Reserve time.Duration
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.Provider == "" {
		errs = append(errs, errors.New("replicate: provider name is empty"))
	}
	if c.LandingBucket == "" {
		errs = append(errs, errors.New("replicate: landing bucket is empty"))
	}
	if c.Concurrency < 0 || c.ResumeAbove < 0 || c.Reserve < 0 {
		errs = append(errs, errors.New("replicate: negative concurrency, resume size or reserve"))
	}
	return errors.Join(errs...)
}

// Gate is consulted before each transfer: a circuit breaker shared by every
// instance (shared/breaker's *Breaker has this method). When Allow refuses,
// the message waits in the queue and the replica is not counted as failed;
// otherwise done is called exactly once with the transfer's outcome: nil,
// the provider's error, or an error wrapping context.Canceled when nothing
// was learnt about the provider (another delivery had the replica, or the
// landing object was at fault), which a breaker should leave uncounted.
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

// Deps are the ports a Handler works through.
type Deps struct {
	Provider storage.Provider // the destination (decorators welcome)
	Landing  *Landing         // the landing bucket
	Store    catalog.Store
	Policy   policy.Table
	Logger   *slog.Logger    // JSON handler; nil: discard
	Metrics  metrics.Emitter // nil: discard
	Progress Publisher       // nil: none
	Gate     Gate            // nil: always allow
	Now      func() time.Time
}

// Handler replicates landed backups to one provider.
type Handler struct {
	cfg  Config
	d    Deps
	log  *slog.Logger
	copy storage.Copier
	res  storage.Resumer
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
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Metrics == nil {
		d.Metrics = metrics.Discard
	}
	if d.Progress == nil {
		d.Progress = nopPublisher{}
	}
	if d.Gate == nil {
		d.Gate = openGate{}
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	h := &Handler{cfg: cfg, d: d, log: d.Logger.With("provider", cfg.Provider)}
	h.copy, _ = storage.As[storage.Copier](d.Provider)
	h.res, _ = storage.As[storage.Resumer](d.Provider)
	return h, nil
}

type nopPublisher struct{}

func (nopPublisher) Progress(context.Context, ProgressEvent) {}

type openGate struct{}

func (openGate) Allow(context.Context) (func(error), error) { return func(error) {}, nil }

// Handle processes an SQS batch. It never returns an error and never
// panics: each record that must be seen again is listed in
// BatchItemFailures (the event source mapping needs
// FunctionResponseTypes: ReportBatchItemFailures).
func (h *Handler) Handle(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	var (
		mu     sync.Mutex
		failed []events.SQSBatchItemFailure
		wg     sync.WaitGroup
		sem    = make(chan struct{}, h.cfg.Concurrency)
	)
	for _, msg := range ev.Records {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if !h.handleRecord(ctx, msg) {
				mu.Lock()
				failed = append(failed, events.SQSBatchItemFailure{ItemIdentifier: msg.MessageId})
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return events.SQSEventResponse{BatchItemFailures: failed}, nil
}

// handleRecord reports whether the message is consumed.
func (h *Handler) handleRecord(ctx context.Context, msg events.SQSMessage) (consumed bool) {
	start := h.d.Now()
	attempt, _ := strconv.Atoi(msg.Attributes["ApproximateReceiveCount"])
	log := h.log.With("message_id", msg.MessageId, "attempt", attempt)
	defer func() {
		if r := recover(); r != nil {
			log.ErrorContext(ctx, "replicate panicked; message returned to the queue", "op", "replicate", "panic", Redact(fmt.Sprint(r)))
			consumed = false
		}
	}()
	ev, err := ParseEvent(msg.Body)
	if err == nil && ev.Bucket != h.cfg.LandingBucket {
		err = fmt.Errorf("%w: event from bucket %q, not the landing bucket", errMalformed, clip(ev.Bucket))
	}
	if err != nil {
		log.ErrorContext(ctx, "malformed message; returned to the queue for the dead-letter queue", "op", "parse",
			"error", Redact(err.Error()), "duration_ms", ms(h.d.Now().Sub(start)))
		h.emit("replicate", 0, h.d.Now().Sub(start), true, "")
		return false
	}
	r := &run{h: h, ev: ev, attempt: attempt, log: log.With("backup_id", ev.BackupID)}
	out := r.process(ctx)
	d := h.d.Now().Sub(start)
	level := slog.LevelInfo
	if !out.consumed {
		level = slog.LevelWarn
	}
	attrs := []any{"op", "replicate", "outcome", out.what, "bytes", out.bytes, "duration_ms", ms(d)}
	if out.err != nil {
		attrs = append(attrs, "error", Redact(out.err.Error()), "kind", storage.KindOf(out.err).String())
	}
	r.log.Log(ctx, level, "replicate "+out.what, attrs...)
	h.emit("replicate", out.bytes, d, !out.consumed, ev.BackupID)
	return out.consumed
}

func (h *Handler) emit(op string, bytes int64, d time.Duration, failed bool, backupID string) {
	m := metrics.Measurement{Provider: h.cfg.Provider, Operation: op, Count: 1, Bytes: bytes, Duration: d}
	if failed {
		m.Errors = 1
	}
	if backupID != "" {
		m.Properties = map[string]string{"backup_id": backupID}
	}
	h.d.Metrics.Emit(m)
}

func ms(d time.Duration) int64 { return d.Milliseconds() }
