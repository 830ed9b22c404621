package health

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/policy"
	"github.com/wedsync/backup-replication/shared/replicate"
	"github.com/wedsync/backup-replication/shared/storage"
)

// ReconcileReport is what one reconcile did.
type ReconcileReport struct {
	// Scanned is the backups read; Queued the copies queued for the
	// replicate function; Repaired the copies written here from another
	// provider; Failed the copies that could be neither.
	Scanned, Queued, Repaired, Failed int
	// Incomplete is true when Config.ReconcileLimit or the time ran out.
	Incomplete bool
}

// periodicStatuses are what the periodic reconcile scans: the backups
// still short of copies, and those not yet sealed (PENDING: an upload that
// landed but whose seal event was lost is found here).
var periodicStatuses = []catalog.Status{catalog.StatusAtRisk, catalog.StatusReplicating, catalog.StatusPending}

// Reconcile queues again every copy that healthy providers owe: for each
// backup in statuses (landed more than ReconcileGrace ago), each provider in
// providers whose copy is missing or FAILED gets the landing object's event
// on its queue, or, when the landing object is gone, a copy written here
// from another verified provider. Standbys owe nothing: they take copies
// only on failover, from the replicate deployment of the provider they
// stand in for (which is backfilled when it recovers), and no deployment
// reads a standby queue.
func (h *Handler) Reconcile(ctx context.Context, providers []string, statuses []catalog.Status) (ReconcileReport, error) {
	return h.reconcile(ctx, providers, statuses)
}

func (h *Handler) reconcile(ctx context.Context, providers []string, statuses []catalog.Status) (ReconcileReport, error) {
	var rep ReconcileReport
	var errs []error
	now := h.d.Now()
	for _, status := range statuses {
		cursor := ""
		for {
			if ctx.Err() != nil || rep.Scanned >= h.cfg.ReconcileLimit {
				rep.Incomplete = true
				return rep, errors.Join(append(errs, errors.New("reconcile cut short"))...)
			}
			page, err := h.d.Catalog.BackupsByStatus(ctx, status, 100, cursor)
			if err != nil {
				return rep, errors.Join(append(errs, err)...)
			}
			for _, b := range page.Backups {
				rep.Scanned++
				if h.sealing() && b.Seal == nil {
					if err := h.reseal(ctx, b, now, &rep); err != nil {
						errs = append(errs, err)
					}
					continue
				}
				if b.LandedAt == nil || now.Sub(*b.LandedAt) < h.cfg.ReconcileGrace {
					continue
				}
				if err := h.reconcileBackup(ctx, b, providers, &rep); err != nil {
					errs = append(errs, err)
				}
			}
			if page.Next == "" {
				break
			}
			cursor = page.Next
		}
	}
	if len(errs) > 5 {
		errs = append(errs[:5], fmt.Errorf("and %d more", len(errs)-5))
	}
	return rep, errors.Join(errs...)
}

func (h *Handler) reconcileBackup(ctx context.Context, b catalog.Backup, providers []string, rep *ReconcileReport) error {
	reps, err := h.replicas(ctx, b.ID)
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range providers {
		row, ok := h.d.Policy.Provider(name)
		if !ok || row.Role == policy.RoleStandby {
			continue
		}
		r, has := reps[name]
		owed := !has || r.State == catalog.ReplicaFailed
		if !owed {
			continue
		}
		how, err := h.requeue(ctx, b, name, reps)
		log := h.log.With("backup_id", b.ID, "provider", name, "op", "reconcile")
		switch {
		case err != nil:
			rep.Failed++
			errs = append(errs, fmt.Errorf("backup %s on %s: %w", b.ID, name, err))
			log.WarnContext(ctx, "missing copy not requeued", "error", replicate.Redact(err.Error()))
		case how == requeued:
			rep.Queued++
			log.InfoContext(ctx, "missing copy queued again", "bytes", b.Size)
		default:
			rep.Repaired++
			log.InfoContext(ctx, "missing copy written from another provider", "bytes", b.Size, "how", how)
		}
	}
	return errors.Join(errs...)
}

// requeued is what requeue returns when it queued the copy.
const requeued = "queued"

// requeue makes provider get a good copy of b again: the source object's
// event on the provider's queue when the source is still there (the
// replicate function rewrites the copy from it), otherwise a copy from
// another verified provider, made here. The source is the sealed object
// once b is sealed (its copies hold the ciphertext), the plaintext landing
// object before. A standby's copy is always made here: no replicate
// deployment reads a standby queue.
func (h *Handler) requeue(ctx context.Context, b catalog.Backup, provider string, reps map[string]catalog.Replica) (string, error) {
	if row, ok := h.d.Policy.Provider(provider); ok && row.Role == policy.RoleStandby {
		return h.repairFromCopy(ctx, b, provider, reps)
	}
	key := sourceKey(b)
	_, size := policy.CopyDigest(b)
	q := h.cfg.Queues[provider]
	if h.d.Landing == nil {
		return requeued, h.enqueue(ctx, provider, key, size, "")
	}
	obj, err := h.d.Landing.Head(ctx, key)
	switch {
	case err == nil && obj.Size == size && q.URL != "" && h.d.Queues != nil:
		return requeued, h.enqueue(ctx, provider, key, obj.Size, obj.ETag)
	case err == nil, storage.KindOf(err) == storage.NotFound:
		// Gone, changed, or no queue to send to: copy from a good copy.
		return h.repairFromCopy(ctx, b, provider, reps)
	}
	return "", err
}

// landingKey is b's landing key (and the key of its copies).
func landingKey(b catalog.Backup) string {
	if b.LandingKey != "" {
		return b.LandingKey
	}
	return replicate.LandingPrefix + b.OrganizationID + "/" + b.ID
}

// sourceKey is the landing bucket object b's copies are made from: the
// sealed object once b is sealed, the plaintext landing object before.
func sourceKey(b catalog.Backup) string {
	if b.Seal != nil && b.Seal.Key != "" {
		return b.Seal.Key
	}
	return landingKey(b)
}

// replicas returns b's replica records by provider.
func (h *Handler) replicas(ctx context.Context, backupID string) (map[string]catalog.Replica, error) {
	list, err := h.d.Catalog.Replicas(ctx, backupID)
	if err != nil {
		return nil, fmt.Errorf("replicas of %s: %w", backupID, err)
	}
	out := make(map[string]catalog.Replica, len(list))
	for _, r := range list {
		out[r.Provider] = r
	}
	return out, nil
}

// periodicReconcile reconciles every healthy provider once per
// ReconcileEvery across all invocations: the "reconcile" marker records
// when, and only the run whose conditional write claims it does the work.
func (h *Handler) periodicReconcile(ctx context.Context, healthy []string) (*ReconcileReport, error) {
	if h.cfg.ReconcileEvery <= 0 || len(healthy) == 0 {
		return nil, nil
	}
	m, err := h.d.Store.LoadMarker(ctx, "reconcile")
	if err != nil {
		return nil, err
	}
	now := h.d.Now()
	if last, err := time.Parse(time.RFC3339Nano, m.Value); err == nil && now.Sub(last) < h.cfg.ReconcileEvery {
		return nil, nil
	}
	if err := h.d.Store.SaveMarker(ctx, "reconcile", now.UTC().Format(time.RFC3339Nano), m.Version); err != nil {
		if errors.Is(err, ErrConflict) {
			return nil, nil // another run claimed it
		}
		return nil, err
	}
	rep, err := h.reconcile(ctx, healthy, periodicStatuses)
	return &rep, err
}
