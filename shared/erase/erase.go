// Package erase erases a backup from everywhere it is kept: the
// organisation's request (DELETE /backups/{id}) and the retention policy
// both come here.
//
// The order is the promise. First the backup's wrapped data key is
// destroyed (keys.Store.Destroy): from that moment every sealed copy, on
// every provider, immutable ones included, is unreadable (crypto-shredding).
// Then the backup is marked ERASED, so nothing copies it again. Then every
// copy that can be deleted is deleted, on each provider and in the landing
// bucket (the plaintext upload and the sealed object), every version of it
// where the provider keeps versions, and a Stat proves each absent. A copy
// under object lock or retention cannot be deleted before its date: the
// receipt says "retained under lock until <date> (unreadable)". The
// receipt (catalog.Erasure) is stored on the backup record and logged as
// one audit line, without keys or URLs.
//
// Erasure is idempotent: once complete, erasing again returns the stored
// receipt; an erasure cut short (an outage) carries on where it stopped.
package erase

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/keys"
	"github.com/wedsync/backup-replication/shared/storage"
)

// LandingName is the provider name of the landing bucket in receipts.
const LandingName = "landing"

// copyTimeout bounds the erasure of one copy.
const copyTimeout = 60 * time.Second

// saveReserve is kept from the caller's deadline for storing the receipt:
// copies not erased by then are reported failed, to be finished later.
const saveReserve = 3 * time.Second

// Keys is the part of the key store erasure uses; *keys.Store implements it.
type Keys interface {
	Destroy(ctx context.Context, org, backup, by, reason string) (keys.Record, error)
}

var _ Keys = (*keys.Store)(nil)

// VersionEraser is an optional provider ability (found with storage.As):
// delete every version of key except those the provider holds under lock,
// and return when the last such lock ends (zero: nothing retained). The S3
// and GCS providers implement it; others are erased with Delete.
type VersionEraser interface {
	EraseVersions(ctx context.Context, key string) (retainedUntil time.Time, err error)
}

// Deps are what an Eraser works through.
type Deps struct {
	// Catalog holds the backups and replicas. Required.
	Catalog catalog.Store
	// Keys destroys data keys. Required.
	Keys Keys
	// Providers are the replica providers by name, as every function builds
	// them (shared/providers).
	Providers map[string]storage.Provider
	// Landing is the landing bucket as a provider; nil leaves the landing
	// objects alone and says so in the receipt (not_configured). The
	// landing bucket keeps no versions (template.yaml), so its objects are
	// erased with Delete.
	Landing storage.Provider
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives the audit line (default slog.Default()).
	Logger *slog.Logger
}

// Eraser erases backups. Build it with New.
type Eraser struct {
	d   Deps
	log *slog.Logger
}

// New checks d and returns an Eraser.
func New(d Deps) (*Eraser, error) {
	if d.Catalog == nil || d.Keys == nil {
		return nil, errors.New("erase: a catalog and a key store are required")
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	return &Eraser{d: d, log: d.Logger}, nil
}

// Request names the backup to erase and who asks.
type Request struct {
	OrganizationID string
	BackupID       string
	// By is who asks: the caller's subject, or "retention".
	By string
	// Reason is kept with the key's tombstone and in the receipt.
	Reason string
}

// ErrNotFound says there is no such backup in the organisation (another
// organisation's backup reads the same).
var ErrNotFound = errors.New("erase: no such backup")

// Complete reports whether b's erasure is finished: every copy deleted
// and proved absent, or retained under lock.
func Complete(b catalog.Backup) bool {
	return b.Status == catalog.StatusErased && b.Erasure != nil && b.Erasure.CompletedAt != nil
}

// Erase erases backup req.BackupID of req.OrganizationID and returns the
// backup as stored, ERASED, with its receipt in Erasure. When a copy could
// not be deleted or proved absent (an outage), the receipt says which,
// CompletedAt stays empty, and Erase returns the backup with a nil error:
// the data is already unreadable, and erasing again finishes the job. An
// error means the key could not be destroyed (nothing was deleted) or the
// receipt could not be stored.
func (e *Eraser) Erase(ctx context.Context, req Request) (catalog.Backup, error) {
	b, err := e.d.Catalog.GetBackup(ctx, req.BackupID)
	if errors.Is(err, catalog.ErrNotFound) || (err == nil && b.OrganizationID != req.OrganizationID) {
		return catalog.Backup{}, ErrNotFound
	}
	if err != nil {
		return catalog.Backup{}, err
	}
	if Complete(b) {
		return b, nil
	}
	start := e.d.Now().UTC()
	rec, err := e.d.Keys.Destroy(ctx, b.OrganizationID, b.ID, req.By, req.Reason)
	if err != nil {
		return catalog.Backup{}, fmt.Errorf("erase %s: destroy the data key: %w", b.ID, err)
	}
	receipt := b.Erasure
	if receipt == nil {
		receipt = &catalog.Erasure{RequestedBy: req.By, Reason: req.Reason, StartedAt: start, Key: catalog.KeyNone}
		if b.Seal != nil || !rec.CreatedAt.IsZero() {
			receipt.Key = catalog.KeyDestroyed
		}
		receipt.KeyDestroyedAt = rec.DestroyedAt
		if receipt.KeyDestroyedAt == nil {
			receipt.KeyDestroyedAt = &start
		}
	}
	// ERASED first: replicate, reconcile and the seal step leave it alone.
	if b, err = e.save(ctx, b, *receipt); err != nil {
		return catalog.Backup{}, err
	}
	cctx, cancel := ctx, context.CancelFunc(func() {})
	if dl, ok := ctx.Deadline(); ok {
		// Leave time to store the receipt of whatever was done.
		cctx, cancel = context.WithDeadline(ctx, dl.Add(-saveReserve))
	}
	copies := e.eraseCopies(cctx, b, receipt.Copies, receipt.Key == catalog.KeyDestroyed)
	cancel()
	receipt = b.Erasure
	receipt.Copies = copies
	done := true
	for _, c := range copies {
		done = done && c.Done()
	}
	if done {
		at := e.d.Now().UTC()
		receipt.CompletedAt = &at
	}
	if b, err = e.save(ctx, b, *receipt); err != nil {
		return catalog.Backup{}, err
	}
	e.audit(ctx, b)
	return b, nil
}

// save stores receipt on b with status ERASED, rereading on conflicts.
func (e *Eraser) save(ctx context.Context, b catalog.Backup, receipt catalog.Erasure) (catalog.Backup, error) {
	for attempt := 0; ; attempt++ {
		b.Status, b.StatusReason, b.Erasure = catalog.StatusErased, "erased: "+receipt.Reason, &receipt
		out, err := e.d.Catalog.UpdateBackup(ctx, b)
		if err == nil {
			return out, nil
		}
		if !errors.Is(err, catalog.ErrConflict) || attempt == 4 {
			return catalog.Backup{}, fmt.Errorf("erase %s: store the receipt: %w", b.ID, err)
		}
		if b, err = e.d.Catalog.GetBackup(ctx, b.ID); err != nil {
			return catalog.Backup{}, fmt.Errorf("erase %s: store the receipt: %w", b.ID, err)
		}
	}
}

// audit logs one line per erasure: who, which organisation and backup,
// the key, and each copy's outcome (provider=outcome), never a key or URL.
func (e *Eraser) audit(ctx context.Context, b catalog.Backup) {
	r := b.Erasure
	outcomes := make([]string, 0, len(r.Copies))
	for _, c := range r.Copies {
		o := c.Provider + "=" + c.Outcome
		if c.RetainedUntil != nil {
			o += "(until " + c.RetainedUntil.Format(time.DateOnly) + ")"
		}
		outcomes = append(outcomes, o)
	}
	sort.Strings(outcomes)
	e.log.InfoContext(ctx, "backup erased", "op", "erase", "audit", true, "backup_id", b.ID,
		"organization_id", b.OrganizationID, "requested_by", r.RequestedBy, "reason", r.Reason,
		"key", r.Key, "complete", r.CompletedAt != nil, "copies", strings.Join(outcomes, " "))
}
