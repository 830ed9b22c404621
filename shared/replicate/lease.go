package replicate

// Leases on copies (issue 4): a delivery claims a replica with one
// conditional write (markCopying: COPYING, StartedAt now, Attempts+1, on
// the replica's version) and holds the claim for Config.Lease from
// StartedAt. Another delivery of the same copy (moto sends two Object
// Created events per multipart completion, SQS delivers at least once, a
// parked message comes back) finds the claim live and waits: its message
// is parked (queue.go), not counted as failed, and the copy in progress is
// never taken over. It is parked for Config.ParkMin first, twice as long
// at each further wait, never past the lease's end (nor Config.ParkMax),
// so that it comes back soon after a short copy and seldom during a long
// one. When it comes back the copy is verified (a duplicate, consumed),
// still claimed (it waits again) or the lease has ended.
//
// A claim whose lease has ended belongs to a delivery that crashed or was
// killed: no invocation outlives the lease (Config.Lease is at least the
// function's timeout), and the holder's own transfer stops Config.Reserve
// before its lease ends (transferContext), so taking the claim over never
// overlaps it. The delivery that takes over resumes from the upload state
// the claim saved (Replica.ResumeState), when its provider can resume.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/wedsync/backup-replication/shared/catalog"
)

// leaseHeld says another delivery holds the replica's claim until until.
type leaseHeld struct {
	until time.Time
}

func (e *leaseHeld) Error() string {
	return fmt.Sprintf("another delivery is copying; its lease ends at %s", e.until.Format(time.RFC3339))
}

// leaseEnd is when rep's claim ends (zero when rep has no claim time).
func (r *run) leaseEnd(rep catalog.Replica) time.Time {
	if rep.StartedAt == nil {
		return time.Time{}
	}
	return rep.StartedAt.Add(r.h.cfg.Lease)
}

// held reports whether rep is claimed by a delivery whose lease is live.
func (r *run) held(rep catalog.Replica) (*leaseHeld, bool) {
	end := r.leaseEnd(rep)
	if rep.State != catalog.ReplicaCopying || end.IsZero() || !r.h.d.Now().Before(end) {
		return nil, false
	}
	return &leaseHeld{until: end}, true
}

// claimLost decides what a claim that lost its conditional write to
// another writer means: the copy verified meanwhile, or claimed by a live
// delivery; otherwise err as is.
func (r *run) claimLost(ctx context.Context, err error) error {
	cur, gerr := r.h.d.Store.GetReplica(ctx, r.b.ID, r.tg.name)
	if gerr != nil {
		return err
	}
	if cur.State == catalog.ReplicaVerified && cur.VerifiedSHA256 == r.wantSHA() {
		return errAlreadyVerified
	}
	if h, ok := r.held(cur); ok {
		return h
	}
	return err
}

// waitForLease is the outcome of a delivery that found the copy claimed:
// it waits, parked until the lease ends.
func (r *run) waitForLease(err error) (outcome, bool) {
	var h *leaseHeld
	if !errors.As(err, &h) {
		return outcome{}, false
	}
	return outcome{what: "another delivery is copying; waiting for it", err: err, waiting: true,
		wait: max(h.until.Sub(r.h.d.Now()), 0), soon: true}, true
}

// transferContext bounds the transfer by the claim's lease and by the
// invocation's deadline, keeping Config.Reserve of each back so that the
// outcome can still be recorded (and the lease is free when it ends).
func (r *run) transferContext(ctx context.Context) (context.Context, context.CancelFunc) {
	reserve := r.h.cfg.Reserve
	limit := time.Duration(-1)
	if end := r.leaseEnd(r.rep); !end.IsZero() {
		limit = end.Sub(r.h.d.Now()) - reserve
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) > 2*reserve && (limit < 0 || time.Until(dl)-reserve < limit) {
		limit = time.Until(dl) - reserve
	}
	if limit > 0 {
		return context.WithTimeout(ctx, limit)
	}
	return context.WithCancel(ctx)
}
