package health

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/wedsync/backup-replication/shared/alert"
	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/policy"
	"github.com/wedsync/backup-replication/shared/replicate"
	"github.com/wedsync/backup-replication/shared/storage"
)

// ScrubReport is what one scrub run read and found.
type ScrubReport struct {
	// Checked is the copies read back; Bytes the bytes read per provider.
	Checked int              `json:"checked"`
	Bytes   map[string]int64 `json:"bytes,omitempty"`
	// Missing and Corrupt are the copies found gone or with other bytes
	// than verified; Queued and Repaired how they were put right.
	Missing  int `json:"missing"`
	Corrupt  int `json:"corrupt"`
	Queued   int `json:"queued"`
	Repaired int `json:"repaired"`
	// Unreadable is the copies a transient error kept from being checked
	// (not findings: they are read again on a later pass).
	Unreadable int `json:"unreadable"`
	// Backups is the backups visited.
	Backups int `json:"backups"`
}

// scrubStatuses are the standings whose verified copies are re-read, in
// rotation order.
var scrubStatuses = []catalog.Status{catalog.StatusProtected, catalog.StatusAtRisk, catalog.StatusReplicating}

// scrubCursor is where the rotation stopped: the marker "scrub".
type scrubCursor struct {
	Status int    `json:"s"`
	Cursor string `json:"c,omitempty"`
}

// Scrub re-reads verified copies on the healthy providers, continuing the
// rotation through the catalog where the last run stopped, until each
// provider's byte budget (ScrubBytes) is spent (the first copy that does
// not fit ends the run), ScrubMaxBackups backups are visited or a full
// pass is done. A copy is read when it fits in its
// provider's remaining budget, or when nothing was read from that provider
// yet this run (so copies larger than the budget are checked too, one per
// run). Only VERIFIED copies are read: DELETED ones (standby copies expired
// after backfill) and copies in any other state are skipped, and so is a
// copy whose record changed while it was read (deleted meanwhile). Copies
// found missing or corrupt are marked FAILED, alerted
// ("integrity:<backupId>:<provider>"), and repaired.
func (h *Handler) Scrub(ctx context.Context, healthy []string) (ScrubReport, error) {
	rep := ScrubReport{Bytes: map[string]int64{}}
	if h.cfg.ScrubBytes <= 0 {
		return rep, nil
	}
	budget := map[string]int64{}
	for _, name := range healthy {
		if h.d.Providers[name] != nil {
			budget[name] = h.cfg.ScrubBytes
		}
	}
	if len(budget) == 0 {
		return rep, nil
	}
	m, err := h.d.Store.LoadMarker(ctx, "scrub")
	if err != nil {
		return rep, err
	}
	var cur scrubCursor
	if m.Value != "" && json.Unmarshal([]byte(m.Value), &cur) != nil || cur.Status < 0 || cur.Status >= len(scrubStatuses) {
		cur = scrubCursor{}
	}
	var errs []error
	visited := map[string]bool{}
	// One backup per catalog read, so that the cursor moves exactly past
	// what was checked: a run that stops for its budget leaves the cursor
	// on the backup it could not finish, and the next run starts there.
	for passes := 0; passes < len(scrubStatuses) && ctx.Err() == nil && rep.Backups < h.cfg.ScrubMaxBackups; {
		page, err := h.d.Catalog.BackupsByStatus(ctx, scrubStatuses[cur.Status], 1, cur.Cursor)
		if err != nil {
			errs = append(errs, err)
			break
		}
		stalled := false
		for _, b := range page.Backups {
			if visited[b.ID] {
				continue // its standing changed during this run
			}
			visited[b.ID] = true
			rep.Backups++
			var err error
			if stalled, err = h.scrubBackup(ctx, b, budget, &rep); err != nil {
				errs = append(errs, err)
			}
		}
		if stalled {
			break
		}
		cur.Cursor = page.Next
		if page.Next == "" {
			cur.Status = (cur.Status + 1) % len(scrubStatuses)
			passes++
		}
	}
	val, _ := json.Marshal(cur)
	if err := h.d.Store.SaveMarker(ctx, "scrub", string(val), m.Version); err != nil && !errors.Is(err, ErrConflict) {
		errs = append(errs, err)
	}
	return rep, errors.Join(errs...)
}

// scrubBackup checks b's verified copies on the providers with budget. It
// reports stalled when a copy did not fit in what was left of its
// provider's budget: the run ends there.
func (h *Handler) scrubBackup(ctx context.Context, b catalog.Backup, budget map[string]int64, rep *ScrubReport) (stalled bool, err error) {
	reps, err := h.replicas(ctx, b.ID)
	if err != nil {
		return false, err
	}
	var errs []error
	for _, row := range h.d.Policy.DownloadOrder() {
		name := row.Name
		r, ok := reps[name]
		left, healthy := budget[name]
		if !ok || !healthy || r.State != catalog.ReplicaVerified || ctx.Err() != nil {
			continue
		}
		_, want := policy.CopyDigest(b)
		size := max(r.Bytes, want)
		if size > left && rep.Bytes[name] > 0 {
			stalled = true
			continue
		}
		key := r.Key
		if key == "" {
			key = landingKey(b)
		}
		got, n, err := readSHA256(ctx, h.d.Providers[name], key)
		budget[name] -= size
		rep.Bytes[name] += max(n, 1)
		rep.Checked++
		var kind storage.Kind
		var why string
		switch {
		case err != nil && storage.KindOf(err) == storage.NotFound:
			kind, why = storage.NotFound, "the copy is missing"
		case err != nil && storage.KindOf(err) == storage.Integrity:
			kind, why = storage.Integrity, "the provider reports the copy corrupt: "+err.Error()
		case err != nil:
			rep.Unreadable++
			h.log.WarnContext(ctx, "scrub could not read a copy; it is read again later", "backup_id", b.ID, "provider", name,
				"op", "scrub", "error", replicate.Redact(err.Error()))
			continue
		case got != r.VerifiedSHA256 || n != want:
			kind, why = storage.Integrity, fmt.Sprintf("read back %d bytes with sha256 %s; verified %d bytes with %s", n, got, want, r.VerifiedSHA256)
		default:
			h.log.DebugContext(ctx, "copy intact", "backup_id", b.ID, "provider", name, "op", "scrub", "bytes", n)
			continue
		}
		// A record deleted (a standby copy expired after backfill) or
		// rewritten while the copy was read: what was read is no longer the
		// verified copy, so it is not a finding.
		switch changed, err := h.replicaChanged(ctx, r); {
		case err != nil:
			rep.Unreadable++
			h.log.WarnContext(ctx, "scrub could not re-read the copy's record; it is read again later", "backup_id", b.ID,
				"provider", name, "op", "scrub", "error", replicate.Redact(err.Error()))
			continue
		case changed:
			h.log.DebugContext(ctx, "copy changed while scrubbed; not a finding", "backup_id", b.ID, "provider", name, "op", "scrub")
			continue
		}
		if kind == storage.NotFound {
			rep.Missing++
		} else {
			rep.Corrupt++
		}
		if err := h.onFinding(ctx, b, r, kind, why, reps, rep); err != nil {
			errs = append(errs, err)
		}
	}
	return stalled, errors.Join(errs...)
}

// replicaChanged reports whether r's record is no longer the version
// scrubbing read (deleted, failed or rewritten since).
func (h *Handler) replicaChanged(ctx context.Context, r catalog.Replica) (bool, error) {
	cur, err := h.d.Catalog.GetReplica(ctx, r.BackupID, r.Provider)
	if errors.Is(err, catalog.ErrNotFound) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return cur.Version != r.Version || cur.State != catalog.ReplicaVerified, nil
}

// onFinding handles a copy found missing or corrupt: FAILED in the
// catalog, repaired (queued or copied), and one integrity alert.
func (h *Handler) onFinding(ctx context.Context, b catalog.Backup, r catalog.Replica, kind storage.Kind, why string,
	reps map[string]catalog.Replica, rep *ScrubReport) error {
	log := h.log.With("backup_id", b.ID, "provider", r.Provider, "op", "scrub")
	log.ErrorContext(ctx, "copy failed scrubbing", "kind", kind.String(), "reason", replicate.Redact(why))
	marked, err := h.markBroken(ctx, r, kind, why)
	if err != nil || !marked {
		return err
	}
	r.State = catalog.ReplicaFailed
	reps[r.Provider] = r
	how, rerr := h.requeue(ctx, b, r.Provider, reps)
	action := ""
	switch {
	case rerr != nil:
		action = "Repair failed: " + rerr.Error() + ". Reconcile tries again."
	case how == requeued:
		rep.Queued++
		action = "The copy is queued to be written again from the landing object."
	default:
		rep.Repaired++
		action = "Repaired here: " + how + ", verified by reading it back."
	}
	what := "corrupt"
	if kind == storage.NotFound {
		what = "missing"
	}
	if h.d.Alerts != nil {
		_, aerr := h.d.Alerts.Raise(ctx, alert.Alert{Key: integrityKey(b.ID, r.Provider), Severity: alert.Critical,
			Title: fmt.Sprintf("copy of backup %s on %s is %s", b.ID, r.Provider, what),
			Text:  fmt.Sprintf("Scrubbing found it: %s.\nOrganization %s, key %s.\n%s", why, b.OrganizationID, r.Key, action)})
		err = errors.Join(err, aerr)
	}
	return errors.Join(err, rerr)
}

// integrityKey is the incident key of an integrity failure of backupID's
// copy on provider ("landing": the uploaded bytes themselves).
func integrityKey(backupID, provider string) string { return "integrity:" + backupID + ":" + provider }
