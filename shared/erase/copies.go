package erase

import (
	"context"
	"errors"
	"sort"
	"sync"
	"time"

	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/storage"
)

// target is one object to erase.
type target struct {
	provider string
	key      string
	prov     storage.Provider
	replica  *catalog.Replica // nil for the landing objects and providers without a record
	// plaintext: the uploaded bytes themselves, which no key destruction
	// makes unreadable.
	plaintext bool
	// landing: an object of the landing bucket.
	landing bool
}

// SealedKey is the landing bucket key of a backup's sealed object.
func SealedKey(org, backup string) string { return "sealed/" + org + "/" + backup }

// targets lists every object of b: each configured provider's copy and
// each copy a replica record names, and the landing bucket's plaintext
// and sealed objects, in a stable order.
func (e *Eraser) targets(ctx context.Context, b catalog.Backup) ([]target, error) {
	reps, err := e.d.Catalog.Replicas(ctx, b.ID)
	if err != nil {
		return nil, err
	}
	byName := map[string]*catalog.Replica{}
	for i := range reps {
		byName[reps[i].Provider] = &reps[i]
	}
	names := map[string]bool{}
	for n := range e.d.Providers {
		names[n] = true
	}
	for n := range byName {
		names[n] = true
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	var out []target
	for _, n := range sorted {
		t := target{provider: n, key: b.LandingKey, prov: e.d.Providers[n], replica: byName[n]}
		if t.replica != nil && t.replica.Key != "" {
			t.key = t.replica.Key
		}
		out = append(out, t)
	}
	sealed := SealedKey(b.OrganizationID, b.ID)
	if b.Seal != nil && b.Seal.Key != "" {
		sealed = b.Seal.Key
	}
	out = append(out, target{provider: LandingName, key: b.LandingKey, prov: e.d.Landing, plaintext: true, landing: true},
		target{provider: LandingName, key: sealed, prov: e.d.Landing, landing: true})
	return out, nil
}

// eraseCopies erases every target of b in parallel and returns the
// receipt of each, keeping the finished entries of an earlier attempt.
func (e *Eraser) eraseCopies(ctx context.Context, b catalog.Backup, earlier []catalog.ErasedCopy, unreadable bool) []catalog.ErasedCopy {
	ts, err := e.targets(ctx, b)
	if err != nil {
		e.log.WarnContext(ctx, "erasure could not list the copies", "op", "erase", "backup_id", b.ID, "error", err.Error())
		return append(earlier, catalog.ErasedCopy{Provider: "catalog", Outcome: catalog.ErasedFailed,
			Detail: "the replica records could not be read; erase again"})
	}
	done := map[string]catalog.ErasedCopy{}
	for _, c := range earlier {
		if c.Done() {
			done[c.Provider+"\x00"+c.Key] = c
		}
	}
	out := make([]catalog.ErasedCopy, len(ts))
	var wg sync.WaitGroup
	for i, t := range ts {
		if c, ok := done[t.provider+"\x00"+t.key]; ok {
			out[i] = c
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, copyTimeout)
			defer cancel()
			out[i] = e.eraseCopy(cctx, b, t, unreadable && !t.plaintext)
		}()
	}
	wg.Wait()
	return out
}

// eraseCopy deletes one object (every version, where the provider keeps
// versions), proves it absent with Stat, and marks its replica DELETED.
func (e *Eraser) eraseCopy(ctx context.Context, b catalog.Backup, t target, unreadable bool) catalog.ErasedCopy {
	c := catalog.ErasedCopy{Provider: t.provider, Key: t.key, Unreadable: unreadable}
	log := e.log.With("op", "erase", "backup_id", b.ID, "provider", t.provider)
	if t.prov == nil {
		c.Outcome = catalog.ErasedNotConfigured
		c.Detail = "provider not configured here: copy not deleted"
		if unreadable {
			c.Detail += " (unreadable)"
		}
		return c
	}
	_, statErr := t.prov.Stat(ctx, t.key)
	existed := statErr == nil || !errors.Is(statErr, storage.ErrNotFound)
	var until time.Time
	var err error
	versionsUnchecked := false
	ve, versioned := storage.As[VersionEraser](t.prov)
	if t.landing {
		versioned = false // the landing bucket keeps no versions (template.yaml)
	}
	if versioned {
		until, err = ve.EraseVersions(ctx, t.key)
		if err != nil && storage.KindOf(err) == storage.Unauthorized && until.IsZero() {
			// No permission to list or delete versions: delete what a
			// reader sees, and say that older versions were not checked.
			log.WarnContext(ctx, "erasing versions refused; deleting the current version only", "error", err.Error())
			err, versionsUnchecked = t.prov.Delete(ctx, t.key), true
		}
	} else {
		err = t.prov.Delete(ctx, t.key)
	}
	now := e.d.Now().UTC()
	_, after := t.prov.Stat(ctx, t.key)
	absent := errors.Is(after, storage.ErrNotFound)
	c.VerifiedAbsent = absent
	switch {
	case until.After(now):
		c.Outcome, c.RetainedUntil = catalog.ErasedRetained, &until
		c.Detail = "retained under lock until " + until.Format(time.DateOnly)
		if unreadable {
			c.Detail += " (unreadable)"
		}
	case err != nil:
		c.Outcome = catalog.ErasedFailed
		c.Detail = "delete failed (" + storage.KindOf(err).String() + "); erase again"
		log.WarnContext(ctx, "erasure of a copy failed", "error", err.Error())
	case !absent:
		c.Outcome = catalog.ErasedFailed
		c.Detail = "could not be proved absent; erase again"
		if after == nil {
			c.Detail = "still present after delete; erase again"
		}
		if after != nil {
			log.WarnContext(ctx, "erasure could not prove a copy absent", "error", after.Error())
		}
	case existed:
		c.Outcome, c.DeletedAt = catalog.ErasedDeleted, &now
	default:
		c.Outcome = catalog.ErasedAbsent
	}
	if versionsUnchecked && c.Outcome != catalog.ErasedFailed {
		c.Detail = "current version deleted; older versions not checked (listing versions was refused)"
		if unreadable {
			c.Detail += "; any left are unreadable"
		}
	}
	if t.replica != nil && (c.Outcome == catalog.ErasedDeleted || c.Outcome == catalog.ErasedAbsent) {
		e.markDeleted(ctx, *t.replica)
	}
	return c
}

// markDeleted records replica r as DELETED (best effort: the receipt on
// the backup is the record that counts).
func (e *Eraser) markDeleted(ctx context.Context, r catalog.Replica) {
	for attempt := 0; attempt < 3; attempt++ {
		if r.State == catalog.ReplicaDeleted {
			return
		}
		r.State, r.Note, r.UpdatedAt = catalog.ReplicaDeleted, "erased", e.d.Now().UTC()
		_, err := e.d.Catalog.PutReplica(ctx, r)
		if err == nil {
			return
		}
		if !errors.Is(err, catalog.ErrConflict) {
			break
		}
		if r, err = e.d.Catalog.GetReplica(ctx, r.BackupID, r.Provider); err != nil {
			break
		}
	}
	e.log.WarnContext(ctx, "erased copy's replica record not updated", "op", "erase", "backup_id", r.BackupID, "provider", r.Provider)
}
