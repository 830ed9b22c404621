package replicate

import (
	"errors"
	"fmt"
	"time"

	"github.com/wedsync/backup-replication/shared/retry"
)

// Defaults of Config.
const (
	DefaultConcurrency     = 4
	DefaultResumeAbove     = 32 << 20
	DefaultReserve         = 10 * time.Second
	DefaultVisibilityBase  = 30 * time.Second
	DefaultVisibilityLimit = 2 * time.Hour
	DefaultParkMin         = 10 * time.Second
	// MaxParkDelay is SQS's longest message delay (DelaySeconds 900).
	MaxParkDelay = 15 * time.Minute
	// DefaultLease is Lambda's longest invocation: no delivery copies
	// for longer.
	DefaultLease = 15 * time.Minute
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
	// Retry is how a transfer (and its verification) is retried within
	// the invocation: transient and throttled errors only, full jitter,
	// never past the transfer's deadline. The zero Policy uses
	// retry's defaults; MaxAttempts 1 disables retries.
	Retry retry.Policy
	// QueueURL is this provider's queue. With it (and Deps.Queue) failed
	// messages get a visibility timeout growing with their receive count,
	// and messages waiting for an open breaker are re-sent with a delay
	// (see queue.go). Without it they come back after the queue's own
	// visibility timeout.
	QueueURL string
	// VisibilityBase and VisibilityLimit shape the visibility timeout of a
	// failed message: retry.VisibilityTimeout(receiveCount, base, limit).
	VisibilityBase, VisibilityLimit time.Duration
	// ParkMin is the shortest wait of a message whose provider's breaker
	// is open (or half-open with its trial slots taken); ParkMax the
	// longest (at most MaxParkDelay, SQS's limit on DelaySeconds).
	ParkMin, ParkMax time.Duration
	// RequireSeal consumes the plaintext landing object's events with
	// nothing copied: the seal step owns them, and the sealed object's
	// event (sealed/{org}/{id}) is what replicates (sealed.go). false
	// also copies plaintext landings of backups not sealed (deployments
	// without the seal step).
	RequireSeal bool
	// SealWait is how long a sealed object's event waits, rereading the
	// backup, for the seal step to record the seal it wrote; then the
	// message returns to the queue. Default DefaultSealWait.
	SealWait time.Duration
	// Lease is how long a delivery's claim on a replica (COPYING since
	// its StartedAt) keeps other deliveries of the same copy away
	// (lease.go). It must be at least the function's timeout; the claim's
	// own transfer stops before it ends. Default DefaultLease.
	Lease time.Duration
	// Immutable is, by provider name, the retention under which that
	// provider writes every copy (S3 Object Lock, GCS object retention;
	// the provider's own configuration must say the same, see
	// immutable.go). A copy verified there is recorded Immutable.
	Immutable map[string]time.Duration
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
	if c.VisibilityBase < 0 || c.VisibilityLimit < 0 || c.ParkMin < 0 || c.ParkMax < 0 || c.SealWait < 0 || c.Lease < 0 {
		errs = append(errs, errors.New("replicate: negative visibility, park, seal wait or lease duration"))
	}
	for name, d := range c.Immutable {
		if d < 0 {
			errs = append(errs, fmt.Errorf("replicate: negative retention for %s", name))
		}
	}
	if c.ParkMax > MaxParkDelay || c.ParkMin > MaxParkDelay {
		errs = append(errs, fmt.Errorf("replicate: park durations above %s (SQS's longest delay)", MaxParkDelay))
	}
	if err := c.Retry.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
