package retention

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/wedsync/backup-replication/shared/catalog"
)

// extendCallsPerErasure bounds the lock extensions of one run to this many
// times MaxPerRun.
const extendCallsPerErasure = 4

// extension is what one run may still spend on lock extensions: calls to
// providers and replica listings read from the catalog.
type extension struct {
	calls, reads int
	failed       int
}

func (r *Runner) newExtension() *extension {
	return &extension{calls: extendCallsPerErasure * r.cfg.MaxPerRun, reads: r.cfg.ScanLimit}
}

// extend keeps the VERIFIED copies of the backups plan keeps, on the
// providers in Deps.Retainers, locked until the backup's KeepUntil: a copy
// whose recorded RetainedUntil is missing or earlier is extended and the
// date the provider reports is recorded on its replica. A copy a provider
// refuses is reported and the others go on. Past the run's bounds it sets
// CutShort; the next run carries on.
func (r *Runner) extend(ctx context.Context, plan []Decision, rep *Report, x *extension, errs *[]error) {
	if len(r.d.Retainers) == 0 {
		return
	}
	for _, d := range plan {
		if !d.Keep || d.KeepUntil.IsZero() {
			continue
		}
		if x.reads <= 0 {
			rep.CutShort = true
			return
		}
		x.reads--
		replicas, err := r.d.Catalog.Replicas(ctx, d.Backup.ID)
		if err != nil {
			*errs = append(*errs, fmt.Errorf("extend locks of %s: %w", d.Backup.ID, err))
			continue
		}
		for _, rp := range replicas {
			ret, ok := r.d.Retainers[rp.Provider]
			if !ok || rp.State != catalog.ReplicaVerified || (rp.RetainedUntil != nil && !rp.RetainedUntil.Before(d.KeepUntil)) {
				continue
			}
			if x.calls <= 0 {
				rep.CutShort = true
				return
			}
			x.calls--
			until, err := ret.RetainUntil(ctx, rp.Key, d.KeepUntil)
			if err != nil {
				x.failed++
				r.log.WarnContext(ctx, "retention: lock not extended", "op", "retain", "provider", rp.Provider,
					"backup_id", rp.BackupID, "error", err.Error())
				*errs = append(*errs, fmt.Errorf("extend lock of %s on %s: %w", rp.BackupID, rp.Provider, err))
				continue
			}
			rep.Extended++
			if err := r.recordRetained(ctx, rp, until); err != nil {
				// The lock is extended; the next run asks the provider again.
				r.log.WarnContext(ctx, "retention: extended lock not recorded", "op", "retain", "provider", rp.Provider,
					"backup_id", rp.BackupID, "error", err.Error())
			}
		}
	}
}

// recordRetained writes until as rp's RetainedUntil, conditional on rp's
// version; after a conflict it rereads the replica once and tries once
// more, unless the record already says as much or now names another copy.
func (r *Runner) recordRetained(ctx context.Context, rp catalog.Replica, until time.Time) error {
	key := rp.Key
	for attempt := 0; ; attempt++ {
		rp.RetainedUntil = &until
		_, err := r.d.Catalog.PutReplica(ctx, rp)
		if !errors.Is(err, catalog.ErrConflict) || attempt > 0 {
			return err
		}
		if rp, err = r.d.Catalog.GetReplica(ctx, rp.BackupID, rp.Provider); err != nil {
			return err
		}
		if rp.Key != key || rp.State != catalog.ReplicaVerified || (rp.RetainedUntil != nil && !rp.RetainedUntil.Before(until)) {
			return nil
		}
	}
}
