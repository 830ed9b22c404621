package health

import (
	"fmt"
	"time"

	"github.com/wedsync/backup-replication/shared/breaker"
	"github.com/wedsync/backup-replication/shared/replicate"
	"github.com/wedsync/backup-replication/shared/storage"
)

// Provider states as the dashboard shows them (the same words as
// shared/api's HealthUp, HealthDegraded, HealthDown).
const (
	StateUp       = "up"
	StateDegraded = "degraded"
	StateDown     = "down"
	StateUnknown  = "unknown"
)

// ProviderStatus is a provider's standing after the latest round: one
// document per provider in the health table, for the dashboard and
// GET /status.
type ProviderStatus struct {
	Provider string `json:"provider" dynamodbav:"provider"`
	// State is StateUp, StateDegraded or StateDown.
	State string `json:"state" dynamodbav:"state"`
	// Down is the decision with hysteresis: it changes only after
	// Thresholds.DownAfter failed probes (or an open breaker) and
	// Thresholds.UpAfter good ones.
	Down bool `json:"down" dynamodbav:"down"`
	// Since is when Down last changed (or the provider was first probed).
	Since time.Time `json:"since" dynamodbav:"since"`
	// CheckedAt is when the latest probe ran; LatencyMs how long it took.
	CheckedAt time.Time `json:"checkedAt" dynamodbav:"checked_at"`
	LatencyMs int64     `json:"latencyMs" dynamodbav:"latency_ms"`
	// ConsecutiveFailures and ConsecutiveSuccesses count probes.
	ConsecutiveFailures  int `json:"consecutiveFailures" dynamodbav:"consecutive_failures"`
	ConsecutiveSuccesses int `json:"consecutiveSuccesses" dynamodbav:"consecutive_successes"`
	// The latest failed probe: its step (put, get, verify, delete), error
	// kind, sanitised message and time. Kept after recovery.
	LastErrorStep string     `json:"lastErrorStep,omitempty" dynamodbav:"last_error_step,omitempty"`
	LastErrorKind string     `json:"lastErrorKind,omitempty" dynamodbav:"last_error_kind,omitempty"`
	LastError     string     `json:"lastError,omitempty" dynamodbav:"last_error,omitempty"`
	LastErrorAt   *time.Time `json:"lastErrorAt,omitempty" dynamodbav:"last_error_at,omitempty"`
	// Breaker is the shared circuit breaker's state (closed, half-open,
	// open) when the round read it; BreakerFailures its consecutive
	// failures of real transfers.
	Breaker         string `json:"breaker,omitempty" dynamodbav:"breaker,omitempty"`
	BreakerFailures uint32 `json:"breakerFailures" dynamodbav:"breaker_failures"`
	// RecoveryPending is set when the provider comes back up and cleared
	// once its dead letters are redriven and its missing copies re-queued.
	RecoveryPending bool `json:"recoveryPending,omitempty" dynamodbav:"recovery_pending,omitempty"`
	// Detail says, for a person, what is wrong (never a raw error).
	Detail string `json:"detail,omitempty" dynamodbav:"detail,omitempty"`
	// Version raises on every write; writes are conditional on it.
	Version int64 `json:"-" dynamodbav:"version"`
}

// Thresholds decide when a provider goes down and comes back.
type Thresholds struct {
	DownAfter, UpAfter int
	Slow               time.Duration
}

// Transition is what a round changed in a provider's Down decision.
type Transition int

// The transitions.
const (
	NoChange Transition = iota
	WentDown
	CameUp
)

// Observation is what one round learned about a provider.
type Observation struct {
	Probe storage.ProbeResult
	// Breaker is the breaker's state after the probe; nil when unknown.
	Breaker *breaker.Snapshot
	At      time.Time
}

// Assess folds one observation into a provider's status. It goes down
// after th.DownAfter failed probes in a row or as soon as its breaker is
// open (real transfers are failing), and comes back only after th.UpAfter
// good probes in a row with its breaker not open, so that it does not
// flap (WAL-G's aliveness: separate thresholds for dead and alive).
func Assess(prev ProviderStatus, obs Observation, th Thresholds) (ProviderStatus, Transition) {
	next := prev
	p := obs.Probe
	next.CheckedAt, next.LatencyMs = obs.At.UTC(), p.Latency.Milliseconds()
	if prev.Version == 0 && prev.Since.IsZero() {
		next.Since = obs.At.UTC()
	}
	if p.OK {
		next.ConsecutiveSuccesses++
		next.ConsecutiveFailures = 0
	} else {
		next.ConsecutiveFailures++
		next.ConsecutiveSuccesses = 0
		at := obs.At.UTC()
		next.LastErrorStep, next.LastErrorKind, next.LastError, next.LastErrorAt = p.Step, p.Kind, replicate.Redact(p.Error), &at
	}
	breakerOpen, halfOpen := false, false
	next.Breaker, next.BreakerFailures = "", 0
	if b := obs.Breaker; b != nil {
		next.Breaker, next.BreakerFailures = b.StateName, b.Counts.ConsecutiveFailures
		breakerOpen, halfOpen = b.State == breaker.StateOpen, b.State == breaker.StateHalfOpen
	}

	tr := NoChange
	switch {
	case !prev.Down && (next.ConsecutiveFailures >= th.DownAfter || breakerOpen):
		next.Down, next.Since, next.RecoveryPending, tr = true, obs.At.UTC(), false, WentDown
		// Only good probes after the fall count toward coming back.
		next.ConsecutiveSuccesses = 0
	case prev.Down && next.ConsecutiveSuccesses >= th.UpAfter && !breakerOpen:
		next.Down, next.Since, next.RecoveryPending, tr = false, obs.At.UTC(), true, CameUp
	}

	next.State, next.Detail = StateUp, ""
	switch {
	case next.Down:
		next.State = StateDown
		switch {
		case !p.OK:
			next.Detail = fmt.Sprintf("canary %s failed (%s), %d in a row", p.Step, p.Kind, next.ConsecutiveFailures)
		case breakerOpen:
			next.Detail = "circuit open: real transfers are failing"
		}
		if p.OK {
			if next.Detail != "" {
				next.Detail += "; "
			}
			next.Detail += fmt.Sprintf("recovering: %d of %d good canaries", next.ConsecutiveSuccesses, th.UpAfter)
		}
	case !p.OK:
		next.State = StateDegraded
		next.Detail = fmt.Sprintf("canary %s failed (%s)", p.Step, p.Kind)
	case halfOpen:
		next.State, next.Detail = StateDegraded, "recovering: trial transfers only"
	case th.Slow > 0 && p.Latency > th.Slow:
		next.State, next.Detail = StateDegraded, fmt.Sprintf("slow: canary took %d ms", p.Latency.Milliseconds())
	}
	return next, tr
}
