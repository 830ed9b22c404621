package replicate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/storage"
)

// run is the processing of one record for one target: the handler's own
// provider, or the standby standing in for it.
type run struct {
	h       *Handler
	tg      *target
	ev      ObjectEvent
	attempt int
	log     *slog.Logger
	b       catalog.Backup
	rep     catalog.Replica
	// note is written on the replica when it is verified ("standing in
	// for s3" on a standby's copy).
	note string
	// began is when this run's transfer began (immutable.go).
	began time.Time
}

// outcome is what became of one record.
type outcome struct {
	consumed bool   // false: report a batch item failure (or wait)
	what     string // for the log line
	bytes    int64
	err      error
	// waiting: the provider's breaker refused; the message waits (is
	// re-sent after wait) and is not counted as failed.
	waiting bool
	wait    time.Duration
	// soon: wait is an upper bound (a lease's end); the message comes
	// back sooner, later with each wait (queue.go).
	soon bool
	// verified: this run verified a copy.
	verified bool
	// landing: the landed bytes broke their declaration (backup FAILED).
	landing bool
}

// errNotAttempted is what the gate hears when no transfer outcome says
// anything about the provider; it wraps context.Canceled, which breakers
// leave uncounted.
var errNotAttempted = fmt.Errorf("replicate: transfer not attempted or not the provider's doing: %w", context.Canceled)

func retryLater(what string, err error) outcome { return outcome{what: what, err: err} }

func done(what string, bytes int64) outcome { return outcome{consumed: true, what: what, bytes: bytes} }

func (r *run) process(ctx context.Context) outcome {
	h, ev := r.h, r.ev
	b, err := h.d.Store.GetBackup(ctx, ev.BackupID)
	if errors.Is(err, catalog.ErrNotFound) {
		// The API writes the record before it hands out an upload URL, so
		// this is a stray object or a record not yet visible. Keep the
		// message: retried, then dead-lettered, never dropped.
		return retryLater("no backup record", err)
	}
	if err != nil {
		return retryLater("catalog unavailable", err)
	}
	if b.OrganizationID != ev.OrganizationID || (b.LandingKey != "" && b.LandingKey != ev.ReplicaKey()) {
		return retryLater("key does not match the backup record",
			fmt.Errorf("%w: key %q, record says organization %q key %q", errMalformed, clip(ev.Key), b.OrganizationID, b.LandingKey))
	}
	r.b = b
	switch b.Status {
	case catalog.StatusFailed:
		return done("skipped: backup failed integrity earlier", 0)
	case catalog.StatusErased:
		return done("skipped: backup erased", 0)
	}
	if out, ok := r.checkSeal(ctx); !ok {
		return out
	}
	if err := r.loadReplica(ctx); err != nil {
		return retryLater("catalog unavailable", err)
	}
	if r.verifiedAlready() {
		// A duplicate or late delivery. Settle the backup's standing anyway,
		// in case the run that verified stopped before doing so.
		if _, err := r.settle(ctx); err != nil {
			return retryLater("catalog unavailable", err)
		}
		r.expireStandby(ctx)
		return done("duplicate: already verified", 0)
	}
	obj, out, ok := r.landed(ctx)
	if !ok {
		return out
	}
	gateDone, err := r.tg.gate.Allow(ctx)
	if err != nil {
		if wait, refused := refusal(err, h.d.Now()); refused {
			return r.failover(ctx, obj, wait, err)
		}
		return retryLater("circuit breaker unreadable", err)
	}
	out = r.copy(ctx, obj, gateDone)
	if out.verified {
		r.expireStandby(ctx)
	}
	return out
}

// loadReplica reads the target's replica record, or starts a PENDING one.
func (r *run) loadReplica(ctx context.Context) error {
	rep, err := r.h.d.Store.GetReplica(ctx, r.b.ID, r.tg.name)
	switch {
	case errors.Is(err, catalog.ErrNotFound):
		rep = catalog.Replica{BackupID: r.b.ID, Provider: r.tg.name, State: catalog.ReplicaPending, Key: r.dstKey()}
	case err != nil:
		return err
	}
	r.rep = rep
	return nil
}

func (r *run) verifiedAlready() bool {
	return r.rep.State == catalog.ReplicaVerified && r.rep.VerifiedSHA256 == r.wantSHA()
}

// landed checks the source object (the landing object, or the sealed
// one) against what the copy must be and records that the backup landed;
// ok false means out says what became of the record.
func (r *run) landed(ctx context.Context) (obj LandingObject, out outcome, ok bool) {
	obj, err := r.h.d.Landing.Head(ctx, r.ev.Key)
	if err != nil {
		return obj, retryLater("landing object unreadable", err), false
	}
	what, declared := r.sourceName()
	if obj.Size != r.wantSize() {
		return obj, r.landingFailed(ctx, fmt.Sprintf("%s has %d bytes, %s %d", what, obj.Size, declared, r.wantSize())), false
	}
	if obj.SHA256 != "" && obj.SHA256 != r.wantSHA() {
		return obj, r.landingFailed(ctx, fmt.Sprintf("%s has sha256 %s, %s %s", what, obj.SHA256, declared, r.wantSHA())), false
	}
	if err := r.markLanded(ctx, obj.LastModified); err != nil {
		return obj, retryLater("catalog unavailable", err), false
	}
	return obj, outcome{}, true
}

// copy claims the replica, transfers and verifies with retries, and
// records the result; gateDone hears the transfer's outcome once.
func (r *run) copy(ctx context.Context, obj LandingObject, gateDone func(error)) outcome {
	if err := r.markCopying(ctx); err != nil {
		gateDone(errNotAttempted)
		if errors.Is(err, errAlreadyVerified) {
			return done("duplicate: verified meanwhile", 0)
		}
		if out, ok := r.waitForLease(err); ok {
			return out
		}
		if errors.Is(err, catalog.ErrConflict) {
			return retryLater("another delivery is copying", err)
		}
		return retryLater("catalog unavailable", err)
	}
	r.publish(ctx, catalog.ReplicaCopying, 0, "", "")

	r.began = r.h.d.Now()
	tctx, cancel := r.transferContext(ctx)
	x, err := r.transferAndVerify(tctx, obj)
	if err != nil {
		err = r.blame(tctx, obj, x, err)
	}
	cancel()

	var bad *landingIntegrityError
	if errors.As(err, &bad) {
		gateDone(errNotAttempted) // the landing object's fault, not the provider's
		r.dropCopy(ctx)
		return r.landingFailed(ctx, bad.reason)
	}
	gateDone(err)
	rctx, rcancel := r.recordContext(ctx)
	defer rcancel()
	if err != nil {
		if storage.KindOf(err) == storage.Integrity && r.replicaUnchanged(rctx) {
			r.dropCopy(ctx)
		}
		if merr := r.markFailed(rctx, err); merr != nil {
			r.log.ErrorContext(ctx, "could not record the failed copy", "op", "catalog", "error", Redact(merr.Error()))
		}
		r.publish(rctx, catalog.ReplicaFailed, x.bytes, Redact(err.Error()), "")
		if _, serr := r.settle(rctx); serr != nil {
			r.log.WarnContext(ctx, "could not settle the backup's standing", "op", "policy", "error", Redact(serr.Error()))
		}
		return outcome{what: "copy failed", bytes: x.bytes, err: err}
	}
	if err := r.markVerified(rctx, x.evidence); err != nil {
		return outcome{what: "copied but not recorded", bytes: x.bytes, err: err}
	}
	res, err := r.settle(rctx)
	if err != nil {
		return outcome{what: "verified; standing not settled", bytes: x.bytes, err: err, verified: true}
	}
	r.publish(rctx, catalog.ReplicaVerified, x.bytes, "", res.Status)
	out := done("verified by "+x.evidence+" after "+x.method, x.bytes)
	out.verified = true
	return out
}

// landingFailed marks the backup FAILED because its landed bytes do not
// match what was declared; the message is consumed: no retry can fix it.
func (r *run) landingFailed(ctx context.Context, reason string) outcome {
	rctx, cancel := r.recordContext(ctx)
	defer cancel()
	reason = "integrity: " + reason
	r.log.ErrorContext(ctx, "landed bytes do not match the declaration; backup FAILED, nothing replicated",
		"op", "verify", "reason", reason)
	_, err := r.updateBackup(rctx, func(b *catalog.Backup) (bool, error) {
		if b.Status == catalog.StatusFailed || b.Status == catalog.StatusErased {
			return false, nil
		}
		b.Status, b.StatusReason = catalog.StatusFailed, reason
		return true, nil
	})
	if err != nil {
		return retryLater("integrity failure not recorded", err)
	}
	if r.rep.Version > 0 {
		if err := r.markFailed(rctx, storage.NewError("verify", LandingName, r.ev.Key, storage.Integrity, errors.New(reason))); err != nil {
			r.log.WarnContext(ctx, "could not record the replica as failed", "op", "catalog", "error", Redact(err.Error()))
		}
	}
	r.publish(rctx, catalog.ReplicaFailed, 0, reason, catalog.StatusFailed)
	out := done("landing integrity failure", 0)
	out.landing = true
	return out
}

// dropCopy removes whatever a failed transfer left on the provider, best
// effort: an unverified object must not pass for a copy.
func (r *run) dropCopy(ctx context.Context) {
	rctx, cancel := r.recordContext(ctx)
	defer cancel()
	if err := r.tg.p.Delete(rctx, r.dstKey()); err != nil {
		r.log.WarnContext(ctx, "could not delete an unverified copy", "op", "delete", "error", Redact(err.Error()))
	}
}

// recordContext outlives a cancelled transfer, for Reserve at most.
func (r *run) recordContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), r.h.cfg.Reserve)
}

func (r *run) publish(ctx context.Context, state catalog.ReplicaState, bytes int64, errText string, status catalog.Status) {
	r.h.d.Progress.Progress(ctx, ProgressEvent{
		BackupID: r.b.ID, OrganizationID: r.b.OrganizationID, Provider: r.tg.name, State: state,
		Bytes: bytes, Total: r.wantSize(), Attempt: r.rep.Attempts, BackupStatus: status, Error: errText, At: r.h.d.Now().UTC(),
	})
}
