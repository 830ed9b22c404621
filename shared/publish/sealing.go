package publish

import (
	"context"
	"time"
)

// SealProgress is where the seal step of one backup stands: its plaintext
// read and sealed so far (Step StepSealing), sealed and recorded
// (StepSealed), or not sealed (StepFailed, with Error).
type SealProgress struct {
	BackupID       string
	OrganizationID string
	// Bytes of the plaintext read so far, of Total (the declared size).
	Bytes, Total int64
	// Step is StepSealing, StepSealed or StepFailed.
	Step string
	// Error is a failure's short, redacted reason (the caller redacts).
	Error string
	At    time.Time
}

// Sealing sends backup_sealing to the backup's subscribers and its
// organization's "*" subscribers. It names no provider: the seal is not a
// copy. Positions (StepSealing) are throttled like a copy's: the first is
// sent, later ones at most every Config.Interval, the latest winning. The
// end (StepSealed at 100 %, or StepFailed) supersedes a pending position,
// is always sent, and is waited for (FinalWait at most). Another step is
// sent as it is.
func (p *Publisher) Sealing(ctx context.Context, s SealProgress) {
	m := Message{Type: TypeBackupSealing, BackupID: s.BackupID, Step: s.Step, Bytes: s.Bytes, Total: s.Total,
		Percent: percent(s.Bytes, s.Total), Timestamp: p.at(s.At)}
	switch s.Step {
	case StepSealing:
		p.mu.Lock()
		started := !p.sealing[s.BackupID]
		p.sealing[s.BackupID] = true
		p.mu.Unlock()
		p.enqueue(&item{msg: m, org: s.OrganizationID}, !started)
	case StepSealed, StepFailed:
		p.mu.Lock()
		delete(p.sealing, s.BackupID)
		p.mu.Unlock()
		if s.Step == StepSealed {
			m.Bytes, m.Percent = s.Total, 100
		} else {
			m.Error = clip(s.Error)
		}
		done := make(chan struct{})
		p.enqueue(&item{msg: m, org: s.OrganizationID, done: done}, false)
		p.wait(ctx, done)
	default:
		m.Error = clip(s.Error)
		p.enqueue(&item{msg: m, org: s.OrganizationID}, false)
	}
}
