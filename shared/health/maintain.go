package health

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/wedsync/backup-replication/shared/alert"
	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/policy"
	"github.com/wedsync/backup-replication/shared/replicate"
	"github.com/wedsync/backup-replication/shared/retention"
)

// MaintenanceReport is what the work between rounds did.
type MaintenanceReport struct {
	// Healthy are the providers that were up (not down) at the start.
	Healthy []string `json:"healthy"`
	// DeadLetters is each dead-letter queue's depth, by queue name.
	DeadLetters map[string]int `json:"deadLetters,omitempty"`
	// AtRisk is the backups AT_RISK for longer than AtRiskAlertAfter.
	AtRisk int `json:"atRisk"`
	// FailedBackups is the backups whose landed bytes failed integrity.
	FailedBackups int              `json:"failedBackups"`
	Reconcile     *ReconcileReport `json:"reconcile,omitempty"`
	Scrub         ScrubReport      `json:"scrub"`
	// Retention is what the hourly retention run did (nil: not this time).
	Retention *retention.Report `json:"retention,omitempty"`
	// AlertRetries is the incidents whose delivery was retried.
	AlertRetries int      `json:"alertRetries"`
	Errors       []string `json:"errors,omitempty"`
}

// Maintain does the work between rounds: dead-letter, at-risk and
// integrity alerts, the periodic reconcile, scrubbing, and retrying alerts
// that could not be delivered. Each part runs even when another failed.
func (h *Handler) Maintain(ctx context.Context) MaintenanceReport {
	var rep MaintenanceReport
	fail := func(what string, err error) {
		if err != nil {
			msg := what + ": " + replicate.Redact(err.Error())
			rep.Errors = append(rep.Errors, msg)
			h.log.WarnContext(ctx, "maintenance step failed", "op", "maintain", "step", what, "error", msg)
		}
	}
	var err error
	rep.Healthy, err = h.healthy(ctx)
	fail("status", err)
	rep.DeadLetters, err = h.watchDeadLetters(ctx)
	fail("dead letters", err)
	rep.AtRisk, err = h.watchAtRisk(ctx)
	fail("at risk", err)
	rep.FailedBackups, err = h.watchIntegrity(ctx)
	fail("integrity", err)
	rep.Reconcile, err = h.periodicReconcile(ctx, rep.Healthy)
	fail("reconcile", err)
	rep.Scrub, err = h.Scrub(ctx, rep.Healthy)
	fail("scrub", err)
	rep.Retention, err = h.periodicRetention(ctx)
	fail("retention", err)
	if h.d.Alerts != nil {
		rep.AlertRetries, err = h.d.Alerts.Retry(ctx)
		fail("alert retry", err)
	}
	return rep
}

// healthy lists the providers probed at least once and not down.
func (h *Handler) healthy(ctx context.Context) ([]string, error) {
	var out []string
	var errs []error
	for _, name := range h.cfg.Providers {
		st, err := h.d.Store.LoadStatus(ctx, name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if st.Version > 0 && !st.Down {
			out = append(out, name)
		}
	}
	return out, errors.Join(errs...)
}

// openIncidents returns the open incidents whose key starts with prefix.
func (h *Handler) openIncidents(ctx context.Context, prefix string) (map[string]alert.Incident, error) {
	out := map[string]alert.Incident{}
	if h.d.Alerts == nil {
		return out, nil
	}
	list, err := h.d.Alerts.Open(ctx, prefix)
	for _, inc := range list {
		out[inc.Key] = inc
	}
	return out, err
}

// watchDeadLetters raises "dlq_nonempty:<queue>" while a dead-letter queue
// holds messages and resolves it once the queue is empty.
func (h *Handler) watchDeadLetters(ctx context.Context) (map[string]int, error) {
	if h.d.Queues == nil {
		return nil, nil
	}
	out := map[string]int{}
	var errs []error
	for _, name := range append(slices.Clone(h.cfg.Providers), SealQueue) {
		q, ok := h.cfg.Queues[name]
		if !ok || q.DLQURL == "" {
			continue
		}
		n, err := h.depth(ctx, q.DLQURL)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		qn := queueName(q.DLQURL)
		out[qn] = n
		if h.d.Alerts == nil {
			continue
		}
		key := "dlq_nonempty:" + qn
		if n > 0 {
			_, err = h.d.Alerts.Raise(ctx, alert.Alert{Key: key, Severity: alert.Warning,
				Title: fmt.Sprintf("dead-letter queue %s holds %d messages", qn, n),
				Text:  deadLetterText(name)})
		} else {
			_, err = h.d.Alerts.Resolve(ctx, key, alert.Alert{Title: fmt.Sprintf("dead-letter queue %s is empty again", qn)})
		}
		errs = append(errs, err)
	}
	return out, errors.Join(errs...)
}

// atRiskSince is a lower bound on how long b has been AT_RISK: since it
// landed when it was never protected; otherwise since its last write
// (which is no earlier than its fall to AT_RISK), so that an alert may come
// late but never early.
func atRiskSince(b catalog.Backup) time.Time {
	if b.ProtectedAt == nil && b.LandedAt != nil {
		return *b.LandedAt
	}
	return b.UpdatedAt
}

// watchAtRisk raises "at_risk:<backupId>" for backups AT_RISK longer than
// AtRiskAlertAfter and resolves it when they are not AT_RISK any more.
func (h *Handler) watchAtRisk(ctx context.Context) (int, error) {
	if h.d.Alerts == nil {
		return 0, nil
	}
	open, err := h.openIncidents(ctx, "at_risk:")
	if err != nil {
		return 0, err
	}
	now := h.d.Now()
	seen := map[string]bool{}
	late := 0
	var errs []error
	_, err = h.eachByStatus(ctx, catalog.StatusAtRisk, func(b catalog.Backup) {
		seen[b.ID] = true
		since := atRiskSince(b)
		if now.Sub(since) < h.cfg.AtRiskAlertAfter {
			return
		}
		late++
		if _, ok := open["at_risk:"+b.ID]; ok {
			return
		}
		_, err := h.d.Alerts.Raise(ctx, alert.Alert{Key: "at_risk:" + b.ID, Severity: alert.Warning,
			Title: fmt.Sprintf("backup %s has been at risk for %s", b.ID, now.Sub(since).Round(time.Minute)),
			Text:  fmt.Sprintf("Organization %s, %q (%d bytes): %s.", b.OrganizationID, b.Name, b.Size, b.StatusReason)})
		errs = append(errs, err)
	})
	errs = append(errs, err)
	for key := range open {
		id := strings.TrimPrefix(key, "at_risk:")
		if seen[id] {
			continue
		}
		status := catalog.Status("removed")
		b, err := h.d.Catalog.GetBackup(ctx, id)
		switch {
		case err == nil:
			status = b.Status
		case !errors.Is(err, catalog.ErrNotFound):
			errs = append(errs, err)
			continue
		}
		if status == catalog.StatusAtRisk {
			continue // beyond the scan limit, or at risk again since
		}
		_, err = h.d.Alerts.Resolve(ctx, key, alert.Alert{Title: fmt.Sprintf("backup %s is no longer at risk", id),
			Text: "Its standing is now " + string(status) + "."})
		errs = append(errs, err)
	}
	return late, errors.Join(errs...)
}

// watchIntegrity raises "integrity:<backupId>:landing" for backups whose
// landed bytes failed their check (FAILED), and resolves integrity
// incidents that are over: the copy is VERIFIED again after the incident
// opened, or the backup is no longer FAILED.
func (h *Handler) watchIntegrity(ctx context.Context) (int, error) {
	if h.d.Alerts == nil {
		return 0, nil
	}
	open, err := h.openIncidents(ctx, "integrity:")
	if err != nil {
		return 0, err
	}
	var errs []error
	failed := 0
	_, err = h.eachByStatus(ctx, catalog.StatusFailed, func(b catalog.Backup) {
		failed++
		key := integrityKey(b.ID, replicate.LandingName)
		if _, ok := open[key]; ok {
			return
		}
		_, err := h.d.Alerts.Raise(ctx, alert.Alert{Key: key, Severity: alert.Critical,
			Title: fmt.Sprintf("backup %s failed its integrity check", b.ID),
			Text: fmt.Sprintf("Organization %s, %q: %s. Nothing was replicated; the organization must upload it again.",
				b.OrganizationID, b.Name, b.StatusReason)})
		errs = append(errs, err)
	})
	errs = append(errs, err)
	for key := range open {
		rest := strings.TrimPrefix(key, "integrity:")
		i := strings.LastIndex(rest, ":")
		if i < 0 {
			continue
		}
		id, provider := rest[:i], rest[i+1:]
		over, why, err := h.integrityOver(ctx, id, provider)
		if err != nil || !over {
			errs = append(errs, err)
			continue
		}
		_, err = h.d.Alerts.Resolve(ctx, key, alert.Alert{Title: fmt.Sprintf("backup %s on %s: %s", id, provider, why)})
		errs = append(errs, err)
	}
	return failed, errors.Join(errs...)
}

func (h *Handler) integrityOver(ctx context.Context, id, provider string) (bool, string, error) {
	b, err := h.d.Catalog.GetBackup(ctx, id)
	if errors.Is(err, catalog.ErrNotFound) {
		return true, "backup removed", nil
	}
	if err != nil {
		return false, "", err
	}
	if b.Status == catalog.StatusErased {
		return true, "backup erased", nil
	}
	if provider == replicate.LandingName {
		return b.Status != catalog.StatusFailed, "no longer failed", nil
	}
	r, err := h.d.Catalog.GetReplica(ctx, id, provider)
	if errors.Is(err, catalog.ErrNotFound) {
		return false, "", nil
	}
	if err != nil {
		return false, "", err
	}
	// The incident opened after the copy was marked FAILED: VERIFIED now
	// means written and verified again since.
	want, _ := policy.CopyDigest(b)
	ok := r.State == catalog.ReplicaVerified && r.VerifiedSHA256 == want
	return ok, "copy repaired and verified (" + r.Evidence + ")", nil
}

// eachByStatus calls fn for up to ScanLimit backups in status s, oldest
// first, and reports whether it saw them all.
func (h *Handler) eachByStatus(ctx context.Context, s catalog.Status, fn func(catalog.Backup)) (bool, error) {
	cursor, n := "", 0
	for n < h.cfg.ScanLimit {
		page, err := h.d.Catalog.BackupsByStatus(ctx, s, min(100, h.cfg.ScanLimit-n), cursor)
		if err != nil {
			return false, err
		}
		for _, b := range page.Backups {
			n++
			fn(b)
		}
		if page.Next == "" {
			return true, nil
		}
		cursor = page.Next
	}
	return false, nil
}

// deadLetterText says what a dead-letter queue's messages are and what to do.
func deadLetterText(name string) string {
	if name == SealQueue {
		return "Landed uploads that could not be sealed in any delivery ended here (KMS or the keys table " +
			"unavailable, malformed events): none of them can be replicated until sealed. The periodic reconcile " +
			"queues unsealed uploads for sealing again; inspect the messages, then redrive them."
	}
	return fmt.Sprintf("Copies to %s that failed every delivery ended here. When %s recovers from an outage "+
		"they are redriven automatically; otherwise inspect them (malformed events, unknown backups) and redrive them.", name, name)
}
