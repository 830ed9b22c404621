// Package sealer is the seal step of issue 8: it takes SQS batches of
// EventBridge "Object Created" events of the landing bucket's backups/
// prefix and turns each landed plaintext upload into its sealed object,
// sealed/{organizationId}/{backupId} in the same bucket, which is what
// every provider copy then holds (the replicate functions are routed
// sealed/ events). functions/seal wires it to Lambda; infra/local and
// tests run the very same code.
//
// For one landed backup:
//  1. the record is read; a FAILED or ERASED backup is left alone, and a
//     backup already sealed (its sealed object present with the recorded
//     size) is a duplicate delivery: the plaintext is deleted if still
//     there, and the message consumed;
//  2. the landing object's size (and S3's SHA-256 when the client sent
//     one) must match the declaration, else the backup is FAILED;
//  3. the data key comes from keys.Create (KMS GenerateDataKey under the
//     organisation's key, wrapped copy in the keys table; idempotent);
//  4. the landing object streams through seal.Seal into a multipart upload
//     of the sealed key, sized up front by seal.SealedSize, parts of
//     Config.PartSize with Config.PartsInFlight uploading at once (memory
//     flat in object size); the plaintext's SHA-256 is computed on the way
//     and must match the declaration before the upload is completed,
//     otherwise the upload is aborted (nothing written) and the backup is
//     FAILED with the reason ("integrity: …", as replicate writes it; the
//     health function alerts on FAILED backups);
//  5. the upload completes with If-None-Match: *, so a sealed object is
//     never replaced: of two concurrent deliveries (moto sends two Object
//     Created events per multipart upload) one writes, the other returns
//     to the queue and is a duplicate next time; a sealed object left by a
//     delivery that stopped before recording it is adopted (read back,
//     decrypted, its plaintext checked) rather than replaced;
//  6. catalog.SetSeal records the sealed object (conditional, once);
//  7. the plaintext landing object is deleted, unless Config.KeepPlaintext.
//
// Failures (the landing bucket, KMS, the keys table or the catalog
// unreachable) return the message as a batch item failure with a
// visibility timeout growing with its receive count, as replicate does,
// until the queue dead-letters it; a malformed message goes the same way.
// Nothing is dropped silently and no plaintext is deleted before its
// sealed object is recorded.
//
// Live progress: with Deps.Progress (WithProgress; functions/seal wires
// shared/publish when WS_ENDPOINT is set) a seal publishes the plaintext
// read so far (every 5 % and at least 1 MiB apart, and the last byte),
// then sealed once recorded, or failed with a short reason (never an
// error's text) when the delivery ends without a recorded seal.
// Publishing never stops a seal.
//
// Logs: one line per record (op "seal", backup_id, attempt, bytes,
// duration_ms, outcome); data keys never appear in logs or errors.
package sealer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/keys"
	"github.com/wedsync/backup-replication/shared/metrics"
	"github.com/wedsync/backup-replication/shared/replicate"
)

// SealedPrefix starts every sealed key: sealed/{organizationId}/{backupId}.
const SealedPrefix = "sealed/"

// contentType of sealed objects.
const contentType = "application/octet-stream"

// SealedKey is the sealed object's key of a backup.
func SealedKey(organizationID, backupID string) string {
	return SealedPrefix + organizationID + "/" + backupID
}

// Defaults of Config.
const (
	DefaultConcurrency     = 2
	DefaultPartSize        = 16 << 20
	DefaultPartsInFlight   = 2
	DefaultReserve         = 10 * time.Second
	DefaultVisibilityBase  = 30 * time.Second
	DefaultVisibilityLimit = 2 * time.Hour
	// MinPartSize is S3's smallest part but the last.
	MinPartSize = 5 << 20
)

// Config is what the seal step does.
type Config struct {
	// LandingBucket is the bucket events must come from and the sealed
	// objects go to. Required.
	LandingBucket string
	// KeepPlaintext keeps the plaintext landing object after sealing.
	KeepPlaintext bool
	// Concurrency is how many records of a batch are sealed at once.
	Concurrency int
	// PartSize is the multipart part size of sealed objects (at least
	// MinPartSize; raised when an object would need more than 10,000
	// parts); PartsInFlight parts upload at once. Memory per record is
	// about (PartsInFlight+1) × PartSize.
	PartSize      int64
	PartsInFlight int
	// Reserve is time kept back, before the invocation's deadline, to
	// record an outcome.
	Reserve time.Duration
	// QueueURL is the seal queue; with it (and Deps.Queue) a failed
	// message's visibility timeout grows with its receive count.
	QueueURL string
	// VisibilityBase and VisibilityLimit shape that timeout
	// (retry.VisibilityTimeout).
	VisibilityBase, VisibilityLimit time.Duration
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.LandingBucket == "" {
		errs = append(errs, errors.New("sealer: landing bucket is empty"))
	}
	if c.Concurrency < 0 || c.PartsInFlight < 0 || c.Reserve < 0 || c.VisibilityBase < 0 || c.VisibilityLimit < 0 {
		errs = append(errs, errors.New("sealer: negative concurrency, parts in flight, reserve or visibility"))
	}
	if c.PartSize != 0 && c.PartSize < MinPartSize {
		errs = append(errs, fmt.Errorf("sealer: part size %d is below S3's minimum %d", c.PartSize, MinPartSize))
	}
	return errors.Join(errs...)
}

// LandingAPI is the part of the S3 client the seal step uses on the
// landing bucket; *s3.Client implements it.
type LandingAPI interface {
	HeadObject(ctx context.Context, in *s3.HeadObjectInput, opts ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, opts ...func(*s3.Options)) (*s3.DeleteObjectOutput, error)
	CreateMultipartUpload(ctx context.Context, in *s3.CreateMultipartUploadInput, opts ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error)
	UploadPart(ctx context.Context, in *s3.UploadPartInput, opts ...func(*s3.Options)) (*s3.UploadPartOutput, error)
	CompleteMultipartUpload(ctx context.Context, in *s3.CompleteMultipartUploadInput, opts ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error)
	AbortMultipartUpload(ctx context.Context, in *s3.AbortMultipartUploadInput, opts ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error)
}

var _ LandingAPI = (*s3.Client)(nil)

// Keys makes and opens backups' data keys; *keys.Store is one.
type Keys interface {
	Create(ctx context.Context, org, backup string) ([]byte, keys.Record, error)
	Open(ctx context.Context, org, backup string) ([]byte, keys.Record, error)
}

var _ Keys = (*keys.Store)(nil)

// Deps are the ports a Handler works through.
type Deps struct {
	Landing LandingAPI
	Store   catalog.SealStore
	Keys    Keys
	Logger  *slog.Logger    // JSON handler; nil: discard
	Metrics metrics.Emitter // nil: discard
	// Queue reaches Config.QueueURL; nil: the queue's own visibility.
	Queue replicate.QueueAPI
	// Progress receives live progress of each seal (sealing positions,
	// then sealed or failed); nil: none.
	Progress SealPublisher
	Now      func() time.Time
}

// Handler seals landed backups.
type Handler struct {
	cfg   Config
	d     Deps
	log   *slog.Logger
	locks keyedLock
}

// New checks cfg and deps and returns a Handler.
func New(cfg Config, d Deps) (*Handler, error) {
	errs := []error{cfg.Validate()}
	if d.Landing == nil || d.Store == nil || d.Keys == nil {
		errs = append(errs, errors.New("sealer: landing, store and keys are required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.PartSize == 0 {
		cfg.PartSize = DefaultPartSize
	}
	if cfg.PartsInFlight == 0 {
		cfg.PartsInFlight = DefaultPartsInFlight
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
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Metrics == nil {
		d.Metrics = metrics.Discard
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	return &Handler{cfg: cfg, d: d, log: d.Logger}, nil
}

// Handle seals an SQS batch. It never returns an error and never panics:
// each record that must be seen again is listed in BatchItemFailures (the
// event source mapping needs FunctionResponseTypes:
// ReportBatchItemFailures), with its visibility timeout set when
// Config.QueueURL is.
func (h *Handler) Handle(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	failed := replicate.EachRecord(ev.Records, h.cfg.Concurrency, func(msg events.SQSMessage) bool {
		return h.dispose(ctx, msg, h.handleRecord(ctx, msg))
	})
	return events.SQSEventResponse{BatchItemFailures: failed}, nil
}

// handleRecord seals one message's backup and says what became of it.
func (h *Handler) handleRecord(ctx context.Context, msg events.SQSMessage) (out outcome) {
	start := h.d.Now()
	log := h.log.With("message_id", msg.MessageId, "attempt", replicate.ReceiveCount(msg))
	defer func() {
		if r := recover(); r != nil {
			log.ErrorContext(ctx, "seal panicked; message returned to the queue", "op", "seal",
				"panic", replicate.Redact(fmt.Sprint(r)))
			out = outcome{what: "panic"}
		}
	}()
	ev, err := replicate.ParseEvent(msg.Body)
	switch {
	case err != nil:
	case ev.Bucket != h.cfg.LandingBucket:
		err = fmt.Errorf("event from bucket %q, not the landing bucket", clip(ev.Bucket))
	case !isLandingKey(ev.Key):
		err = fmt.Errorf("key %q is not an upload (%s{organizationId}/{backupId})", clip(ev.Key), replicate.LandingPrefix)
	}
	if err != nil {
		log.ErrorContext(ctx, "malformed message; returned to the queue for the dead-letter queue", "op", "parse",
			"error", replicate.Redact(err.Error()), "duration_ms", h.d.Now().Sub(start).Milliseconds())
		h.emit(0, h.d.Now().Sub(start), true, "")
		return outcome{what: "malformed", err: err}
	}
	r := &run{h: h, ev: ev, log: log.With("backup_id", ev.BackupID)}
	out = r.process(ctx)
	d := h.d.Now().Sub(start)
	level := slog.LevelInfo
	if !out.consumed {
		level = slog.LevelWarn
	}
	attrs := []any{"op", "seal", "outcome", out.what, "bytes", out.bytes, "duration_ms", d.Milliseconds()}
	if out.err != nil {
		attrs = append(attrs, "error", replicate.Redact(out.err.Error()))
	}
	r.log.Log(ctx, level, "seal "+out.what, attrs...)
	h.emit(out.bytes, d, !out.consumed, ev.BackupID)
	return out
}

func (h *Handler) emit(bytes int64, d time.Duration, failed bool, backupID string) {
	m := metrics.Measurement{Provider: replicate.LandingName, Operation: "seal", Count: 1, Bytes: bytes, Duration: d}
	if failed {
		m.Errors = 1
	}
	if backupID != "" {
		m.Properties = map[string]string{"backup_id": backupID}
	}
	h.d.Metrics.Emit(m)
}
