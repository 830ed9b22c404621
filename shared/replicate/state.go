package replicate

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/policy"
	"github.com/wedsync/backup-replication/shared/storage"
)

// maxConflicts bounds the reread-and-retry loops of conditional writes.
const maxConflicts = 10

// errAlreadyVerified says another delivery verified the copy meanwhile.
var errAlreadyVerified = errors.New("replica verified meanwhile")

// updateBackup applies change to the backup and writes it conditionally,
// rereading and reapplying on ErrConflict. change reports whether it
// changed anything; when it did not, nothing is written.
func (r *run) updateBackup(ctx context.Context, change func(b *catalog.Backup) (bool, error)) (catalog.Backup, error) {
	store := r.h.d.Store
	b := r.b
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			var err error
			if b, err = store.GetBackup(ctx, r.b.ID); err != nil {
				return catalog.Backup{}, err
			}
		}
		changed, err := change(&b)
		if err != nil {
			return catalog.Backup{}, err
		}
		if !changed {
			r.b = b
			return b, nil
		}
		nb, err := store.UpdateBackup(ctx, b)
		if err == nil {
			r.b = nb
			return nb, nil
		}
		if !errors.Is(err, catalog.ErrConflict) || attempt+1 >= maxConflicts {
			return catalog.Backup{}, err
		}
		if err := pause(ctx, attempt); err != nil {
			return catalog.Backup{}, err
		}
	}
}

// markLanded records when the landing object appeared (its LastModified)
// and moves a PENDING backup to REPLICATING.
func (r *run) markLanded(ctx context.Context, at time.Time) error {
	if at.IsZero() {
		at = r.h.d.Now()
	}
	at = at.UTC()
	_, err := r.updateBackup(ctx, func(b *catalog.Backup) (bool, error) {
		changed := false
		if b.LandedAt == nil {
			b.LandedAt, changed = &at, true
		}
		if b.Status == catalog.StatusPending {
			b.Status, b.StatusReason, changed = catalog.StatusReplicating, "", true
		}
		return changed, nil
	})
	return err
}

// settle re-evaluates the policy on the stored replicas and records the
// backup's standing; the first PROTECTED also records ProtectedAt and the
// time from landing to protection.
func (r *run) settle(ctx context.Context) (policy.Result, error) {
	var res policy.Result
	_, err := r.updateBackup(ctx, func(b *catalog.Backup) (bool, error) {
		reps, err := r.h.d.Store.Replicas(ctx, b.ID)
		if err != nil {
			return false, err
		}
		res = policy.Evaluate(*b, reps, r.h.d.Policy)
		if b.Status == catalog.StatusFailed || b.Status == catalog.StatusErased || b.Status == catalog.StatusPending {
			return false, nil
		}
		changed := false
		if res.Status != b.Status || res.Reason != b.StatusReason {
			b.Status, b.StatusReason, changed = res.Status, res.Reason, true
		}
		if res.Status == catalog.StatusProtected && b.ProtectedAt == nil {
			now := r.h.d.Now().UTC()
			b.ProtectedAt, changed = &now, true
			if b.LandedAt != nil {
				b.TimeToProtectedMs = max(0, now.Sub(*b.LandedAt).Milliseconds())
			}
		}
		return changed, nil
	})
	if err == nil && res.Status != "" {
		r.log.InfoContext(ctx, "backup standing", "op", "policy", "status", string(res.Status), "reason", res.Reason,
			"verified", res.Verified, "domains", res.Domains, "offsite", res.Offsite)
	}
	return res, err
}

// markCopying claims the replica for this delivery (lease.go): one
// conditional write, not retried, so of two concurrent deliveries one
// copies and the other waits. A live claim of another delivery is a
// *leaseHeld; an ended one is taken over.
func (r *run) markCopying(ctx context.Context) error {
	rep := r.rep
	if rep.State == catalog.ReplicaVerified && rep.VerifiedSHA256 == r.wantSHA() {
		return errAlreadyVerified
	}
	if h, ok := r.held(rep); ok {
		return h
	}
	if rep.State == catalog.ReplicaCopying && rep.StartedAt != nil {
		r.log.WarnContext(ctx, "taking over a copy whose delivery stopped before its lease ended", "op", "claim",
			"claimed_at", rep.StartedAt.UTC().Format(time.RFC3339))
	}
	now := r.h.d.Now().UTC()
	rep.State, rep.Key, rep.Attempts, rep.StartedAt, rep.Bytes = catalog.ReplicaCopying, r.dstKey(), rep.Attempts+1, &now, 0
	rep.VerifiedSHA256, rep.Evidence, rep.VerifiedAt = "", "", nil
	out, err := r.h.d.Store.PutReplica(ctx, rep)
	if errors.Is(err, catalog.ErrConflict) {
		return r.claimLost(ctx, err)
	}
	if err != nil {
		return err
	}
	r.rep = out
	return nil
}

// markFailed records the failed attempt; a copy another delivery verified
// meanwhile is left alone.
func (r *run) markFailed(ctx context.Context, cause error) error {
	return r.putReplica(ctx, func(rep *catalog.Replica) bool {
		if rep.State == catalog.ReplicaVerified && rep.VerifiedSHA256 == r.wantSHA() {
			return false
		}
		rep.State = catalog.ReplicaFailed
		rep.LastError = Redact(cause.Error())
		rep.LastErrorKind = storage.KindOf(cause).String()
		return true
	})
}

// markVerified records the proven copy, immutable when its provider
// writes under retention; it wins over any concurrent state.
func (r *run) markVerified(ctx context.Context, evidence string) error {
	now := r.h.d.Now().UTC()
	until := r.retainedUntil()
	err := r.putReplica(ctx, func(rep *catalog.Replica) bool {
		rep.State, rep.Key, rep.Bytes = catalog.ReplicaVerified, r.dstKey(), r.wantSize()
		rep.VerifiedSHA256, rep.Evidence, rep.VerifiedAt = r.wantSHA(), evidence, &now
		rep.LastError, rep.LastErrorKind, rep.ResumeState, rep.Note = "", "", "", r.note
		rep.Immutable = !until.IsZero()
		return true
	})
	if err == nil && !until.IsZero() {
		r.log.InfoContext(ctx, "copy immutable", "op", "lock", "retain_until", until.Format(time.RFC3339))
	}
	return err
}

// saveResume persists a resumable upload's session so a later delivery can
// continue it. It does not retry: a conflict means another delivery owns
// the replica now, and the upload should stop.
func (r *run) saveResume(ctx context.Context, state string) error {
	rep := r.rep
	rep.ResumeState = state
	out, err := r.h.d.Store.PutReplica(ctx, rep)
	if err != nil {
		return err
	}
	r.rep = out
	return nil
}

// replicaUnchanged reports whether the stored replica is still the one this
// delivery wrote (nobody else claimed or verified it since).
func (r *run) replicaUnchanged(ctx context.Context) bool {
	cur, err := r.h.d.Store.GetReplica(ctx, r.b.ID, r.tg.name)
	return err == nil && cur.Version == r.rep.Version
}

// putReplica applies change and writes the replica conditionally, rereading
// and reapplying on ErrConflict.
func (r *run) putReplica(ctx context.Context, change func(rep *catalog.Replica) bool) error {
	rep := r.rep
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			cur, err := r.h.d.Store.GetReplica(ctx, r.b.ID, r.tg.name)
			switch {
			case errors.Is(err, catalog.ErrNotFound):
				cur = catalog.Replica{BackupID: r.b.ID, Provider: r.tg.name, Key: r.dstKey()}
			case err != nil:
				return err
			}
			rep = cur
		}
		if !change(&rep) {
			r.rep = rep
			return nil
		}
		out, err := r.h.d.Store.PutReplica(ctx, rep)
		if err == nil {
			r.rep = out
			return nil
		}
		if !errors.Is(err, catalog.ErrConflict) || attempt+1 >= maxConflicts {
			return err
		}
		if err := pause(ctx, attempt); err != nil {
			return err
		}
	}
}

// pause waits a short, jittered, growing time before a reread.
func pause(ctx context.Context, attempt int) error {
	d := time.Duration(rand.Int64N(int64(10*time.Millisecond) << min(attempt, 5)))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
