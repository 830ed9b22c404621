package replicate

// Failover (DESIGN.md "§5"): when a provider's breaker is open at fan-out
// time, its copy goes to the standby so that the backup still reaches
// PROTECTED, and the provider's own message waits in the offline queue so
// that the provider is backfilled when it recovers. Then the standby copy
// is kept or expired by policy (policy.Table.Standby.KeepAfterBackfill).
//
// The replicate deployment of provider X does both: finding X's breaker
// open, it copies to the standby (its replica record says "standing in
// for X"), then parks X's message (queue.go). Every deployment carries the
// standby's settings; there is no standby queue. The standby copy counts
// in the 3-2-1 evaluation like any other copy, and like any other it adds
// a failure domain only when its domain is new (policy.Evaluate).
//
// Expiry: after a provider verifies its own copy, when the table says not
// to keep standby copies, the standby copy is deleted once every
// non-standby provider in the table holds its own verified copy and the
// backup is PROTECTED without the standby. The record is marked DELETED
// first (conditional on its version, so of two deployments backfilling at
// once one deletes), then the object. A standby copy still being written
// when backfill ends is not deleted then (nothing deletes what is not yet
// verified); the failover run that verifies it checks expiry once more.

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/policy"
	"github.com/wedsync/backup-replication/shared/retry"
	"github.com/wedsync/backup-replication/shared/storage"
)

// standingInPrefix starts the note on a standby's failover copy.
const standingInPrefix = "standing in for "

// failover handles a message refused by its provider's breaker: copy to
// the standby when there is one and it has no verified copy yet, then
// wait. wait is how long the breaker asked for; cause is its refusal.
func (r *run) failover(ctx context.Context, obj LandingObject, wait time.Duration, cause error) outcome {
	out := outcome{what: "provider unavailable; waiting", err: cause, waiting: true, wait: wait}
	sb := r.h.standby
	if sb == nil {
		return out
	}
	sr := &run{h: r.h, tg: sb, ev: r.ev, attempt: r.attempt, b: r.b,
		log: r.log.With("standby", sb.name), note: standingInPrefix + r.tg.name}
	so := sr.standIn(ctx, obj)
	if so.landing {
		return so // the backup is FAILED: nothing to wait for
	}
	if so.verified {
		// Backfill may have finished while this copy was being written,
		// and its expiry check then saw the standby unverified: check again
		// now that it is verified, or it would be kept for ever.
		r.expireStandby(ctx)
	}
	out.what += "; standby " + sb.name + ": " + so.what
	out.bytes = so.bytes
	return out
}

// standIn makes sure the standby holds a verified copy that names the
// provider it stands in for.
func (r *run) standIn(ctx context.Context, obj LandingObject) outcome {
	if err := r.loadReplica(ctx); err != nil {
		return retryLater("catalog unavailable", err)
	}
	if r.verifiedAlready() {
		if err := r.addNote(ctx); err != nil {
			r.log.WarnContext(ctx, "could not note the provider the standby stands in for", "op", "catalog", "error", Redact(err.Error()))
		}
		return done("holds a verified copy", 0)
	}
	gateDone, err := r.tg.gate.Allow(ctx)
	if err != nil {
		return retryLater("unavailable too", err)
	}
	return r.copy(ctx, obj, gateDone)
}

// addNote adds the provider r stands in for to the standby replica's note.
func (r *run) addNote(ctx context.Context) error {
	name := strings.TrimPrefix(r.note, standingInPrefix)
	return r.putReplica(ctx, func(rep *catalog.Replica) bool {
		if rep.State != catalog.ReplicaVerified {
			return false
		}
		names := standingInFor(rep.Note)
		if slices.Contains(names, name) {
			return false
		}
		names = append(names, name)
		slices.Sort(names)
		rep.Note = standingInPrefix + strings.Join(names, ", ")
		return true
	})
}

// standingInFor lists the providers a standby replica's note names.
func standingInFor(note string) []string {
	rest, ok := strings.CutPrefix(note, standingInPrefix)
	if !ok || rest == "" {
		return nil
	}
	return strings.Split(rest, ", ")
}

// expireStandby deletes the standby's copy of r's backup when the policy
// does not keep it and it is no longer needed (see the top of this file).
// Best effort: whatever fails is logged and tried again by the next
// verified copy or duplicate delivery.
func (r *run) expireStandby(ctx context.Context) {
	h := r.h
	sb := h.standby
	if sb == nil || sb == r.tg || h.d.Policy.Standby.KeepAfterBackfill {
		return
	}
	// Its own time, not the invocation's reserve: a step cut short here
	// (the record written but the answer lost) would leave a record that
	// says DELETED over a copy still stored.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), max(h.cfg.Reserve, standbyDeleteWait))
	defer cancel()
	reps, err := h.d.Store.Replicas(rctx, r.b.ID)
	if err != nil {
		r.log.WarnContext(ctx, "standby expiry: replicas unreadable", "op", "expire", "error", Redact(err.Error()))
		return
	}
	var standby *catalog.Replica
	var own []catalog.Replica
	for i, rep := range reps {
		if rep.Provider == sb.name {
			standby = &reps[i]
		} else {
			own = append(own, rep)
		}
	}
	if standby == nil || standby.State != catalog.ReplicaVerified {
		return
	}
	res := policy.Evaluate(r.b, own, h.d.Policy)
	if !res.Protected() {
		return
	}
	for _, p := range h.d.Policy.Providers {
		if p.Role != policy.RoleStandby && !slices.Contains(res.Copies, p.Name) {
			return // a provider still owes its copy: keep the standby's
		}
	}
	gone := *standby
	if gone.Key == "" {
		gone.Key = r.ev.ReplicaKey()
	}
	gone.State = catalog.ReplicaDeleted
	gone.Note = "expired after backfill (was " + standby.Note + ")"
	if standby.Note == "" {
		gone.Note = "expired after backfill"
	}
	recorded, err := h.d.Store.PutReplica(rctx, gone)
	if err != nil && !errors.Is(err, catalog.ErrConflict) {
		// The write may have happened with its answer lost: read it back.
		if got, gerr := h.d.Store.GetReplica(rctx, r.b.ID, sb.name); gerr == nil && got.State == catalog.ReplicaDeleted &&
			got.Note == gone.Note {
			recorded, err = got, nil
		}
	}
	if err != nil {
		if !errors.Is(err, catalog.ErrConflict) {
			r.log.WarnContext(ctx, "standby expiry not recorded", "op", "expire", "error", Redact(err.Error()))
		}
		return
	}
	// The delete retries: a record that says DELETED over an object that
	// is still there would never be looked at again.
	if err := retry.Do(rctx, r.h.cfg.Retry, func(ctx context.Context) error { return sb.p.Delete(ctx, gone.Key) }); err != nil &&
		!errors.Is(err, storage.ErrNotFound) {
		r.log.WarnContext(ctx, "standby copy not deleted; it stays VERIFIED for the next expiry check", "op", "delete",
			"standby", sb.name, "error", Redact(err.Error()))
		back := recorded
		back.State, back.Note = standby.State, standby.Note
		if _, perr := h.d.Store.PutReplica(rctx, back); perr != nil {
			r.log.ErrorContext(ctx, "standby copy recorded as deleted but still stored", "op", "expire", "standby", sb.name,
				"key", gone.Key, "error", Redact(perr.Error()))
		}
		return
	}
	r.log.InfoContext(ctx, "standby copy expired after backfill", "op", "expire", "standby", sb.name, "bytes", gone.Bytes)
	sr := &run{h: h, tg: sb, ev: r.ev, attempt: r.attempt, b: r.b, log: r.log, rep: recorded}
	sr.publish(rctx, catalog.ReplicaDeleted, 0, "", "")
}

// standbyDeleteWait bounds the deletion of an expired standby copy,
// retries included.
const standbyDeleteWait = 30 * time.Second
