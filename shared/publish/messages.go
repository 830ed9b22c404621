package publish

import (
	"context"
	"math"
	"time"
	"unicode/utf8"

	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/replicate"
)

// Message types.
const (
	TypeBackupProgress = "backup_progress"
	TypeReplicaState   = "replica_state"
	TypeBackupStatus   = "backup_status"
	TypeProviderHealth = "provider_health"
	TypeAlert          = "alert"
	// TypeBackupSealing is the seal step's progress: a backup's plaintext
	// being sealed before any provider copy starts (see Sealing).
	TypeBackupSealing = "backup_sealing"
)

// Steps of backup_progress.
const (
	StepCopying  = "copying"
	StepVerified = "verified"
	StepFailed   = "failed"
)

// Steps of backup_sealing (and StepFailed).
const (
	StepSealing = "sealing"
	StepSealed  = "sealed"
)

// Message is what a subscriber receives, as JSON.
type Message struct {
	Type     string `json:"type"`
	BackupID string `json:"backupId,omitempty"`
	Provider string `json:"provider,omitempty"`
	// State is the replica's state (backup_progress, replica_state) or the
	// provider's health: up, degraded, down (provider_health).
	State string `json:"state,omitempty"`
	// Status is the backup's 3-2-1 standing (backup_status).
	Status string `json:"status,omitempty"`
	// Reason says why a status is not PROTECTED, when known.
	Reason string `json:"reason,omitempty"`
	// Step is backup_progress's step: copying, verified or failed; or
	// backup_sealing's: sealing, sealed or failed.
	Step    string  `json:"step,omitempty"`
	Bytes   int64   `json:"bytes"`
	Total   int64   `json:"total"`
	Percent float64 `json:"percent"`
	Attempt int     `json:"attempt,omitempty"`
	// Error is a failure's redacted text (replicate redacts before
	// publishing; the health function must too).
	Error     string `json:"error,omitempty"`
	LatencyMs *int64 `json:"latencyMs,omitempty"`
	Breaker   string `json:"breaker,omitempty"`
	// Severity and Text are an alert's.
	Severity  string    `json:"severity,omitempty"`
	Text      string    `json:"message,omitempty"`
	Timestamp time.Time `json:"timestamp"`
}

var _ replicate.Publisher = (*Publisher)(nil)

// Progress implements replicate.Publisher. A copy's start becomes
// replica_state COPYING; its positions backup_progress (throttled); its
// end backup_progress (verified or failed), replica_state and, when the
// backup's standing changed, backup_status — sent in that order, and
// waited for (FinalWait at most).
func (p *Publisher) Progress(ctx context.Context, ev replicate.ProgressEvent) {
	at := ev.At
	if at.IsZero() {
		at = p.d.Now().UTC()
	}
	base := Message{BackupID: ev.BackupID, Provider: ev.Provider, State: string(ev.State), Bytes: ev.Bytes,
		Total: ev.Total, Attempt: ev.Attempt, Timestamp: at}
	key := ev.BackupID + "|" + ev.Provider
	send := func(m Message, throttled bool, done chan struct{}) {
		p.enqueue(&item{msg: m, org: ev.OrganizationID, done: done}, throttled)
	}
	switch ev.State {
	case catalog.ReplicaCopying:
		p.mu.Lock()
		started := !p.copying[key]
		p.copying[key] = true
		p.mu.Unlock()
		prog := base
		prog.Type, prog.Step, prog.Percent = TypeBackupProgress, StepCopying, percent(ev.Bytes, ev.Total)
		if started {
			st := base
			st.Type = TypeReplicaState
			send(st, false, nil)
		}
		send(prog, !started, nil)
	case catalog.ReplicaVerified, catalog.ReplicaFailed:
		p.mu.Lock()
		delete(p.copying, key)
		p.mu.Unlock()
		prog := base
		prog.Type, prog.Error = TypeBackupProgress, clip(ev.Error)
		if ev.State == catalog.ReplicaVerified {
			prog.Step, prog.Bytes, prog.Percent = StepVerified, ev.Total, 100
		} else {
			prog.Step, prog.Percent = StepFailed, percent(ev.Bytes, ev.Total)
		}
		st := base
		st.Type, st.Error = TypeReplicaState, clip(ev.Error)
		send(prog, false, nil)
		done := make(chan struct{})
		if ev.BackupStatus != "" {
			send(st, false, nil)
			send(Message{Type: TypeBackupStatus, BackupID: ev.BackupID, Status: string(ev.BackupStatus), Timestamp: at},
				false, done)
		} else {
			send(st, false, done)
		}
		p.wait(ctx, done)
	default:
		st := base
		st.Type = TypeReplicaState
		send(st, false, nil)
	}
}

// BackupStatus is a backup's changed standing.
type BackupStatus struct {
	OrganizationID string
	BackupID       string
	Status         catalog.Status
	Reason         string
	At             time.Time
}

// BackupStatus sends backup_status to the backup's subscribers and its
// organization's "*" subscribers.
func (p *Publisher) BackupStatus(ctx context.Context, s BackupStatus) {
	p.enqueue(&item{org: s.OrganizationID, msg: Message{Type: TypeBackupStatus, BackupID: s.BackupID, Status: string(s.Status),
		Reason: clip(s.Reason), Timestamp: p.at(s.At)}}, false)
}

// ProviderHealth is one provider's health as the health function saw it.
type ProviderHealth struct {
	Provider string
	State    string // up, degraded, down
	Breaker  string // closed, half-open, open
	Latency  time.Duration
	// LastError is the redacted text of the last failure ("" when up).
	LastError string
	At        time.Time
}

// ProviderHealth sends provider_health to every "*" subscriber.
func (p *Publisher) ProviderHealth(ctx context.Context, h ProviderHealth) {
	ms := h.Latency.Milliseconds()
	p.enqueue(&item{msg: Message{Type: TypeProviderHealth, Provider: h.Provider, State: h.State, Breaker: h.Breaker,
		LatencyMs: &ms, Error: clip(h.LastError), Timestamp: p.at(h.At)}}, false)
}

// Alert is something an operator should act on.
type Alert struct {
	Severity string // info, warning, critical
	Provider string // when it is about a provider
	// OrganizationID and BackupID, when it is about a backup; the alert
	// then goes to that backup's subscribers and its organization's "*".
	OrganizationID string
	BackupID       string
	Text           string
	At             time.Time
}

// Alert sends an alert: about a backup to its subscribers and its
// organization's "*" subscribers, otherwise to every "*" subscriber.
func (p *Publisher) Alert(ctx context.Context, a Alert) {
	p.enqueue(&item{org: a.OrganizationID, msg: Message{Type: TypeAlert, Severity: a.Severity, Provider: a.Provider,
		BackupID: a.BackupID, Text: clip(a.Text), Timestamp: p.at(a.At)}}, false)
}

func (p *Publisher) at(t time.Time) time.Time {
	if t.IsZero() {
		return p.d.Now().UTC()
	}
	return t.UTC()
}

// percent is bytes/total in percent with one decimal, rounded down (100
// only once every byte is there); an empty backup is 0 until verified.
func percent(bytes, total int64) float64 {
	if total <= 0 {
		return 0
	}
	return math.Floor(float64(min(bytes, total))*1000/float64(total)) / 10
}

// clip shortens free text to maxText bytes on a rune boundary.
func clip(s string) string {
	if len(s) <= maxText {
		return s
	}
	s = s[:maxText]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}
