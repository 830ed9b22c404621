package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/erase"
	"github.com/wedsync/backup-replication/shared/keys"
)

// DefaultEraseTimeout bounds DELETE /backups/{id}, under API Gateway's
// 30 s. Copies not erased in time are reported failed (the key is already
// destroyed); DELETE again, or the health function's retention run,
// finishes them.
const DefaultEraseTimeout = 25 * time.Second

// KeyOpener releases sealed backups' data keys; *keys.Store implements it.
type KeyOpener interface {
	Open(ctx context.Context, org, backup string) ([]byte, keys.Record, error)
}

// Eraser erases a backup everywhere; *erase.Eraser implements it.
type Eraser interface {
	Erase(ctx context.Context, req erase.Request) (catalog.Backup, error)
}

var (
	_ KeyOpener = (*keys.Store)(nil)
	_ Eraser    = (*erase.Eraser)(nil)
)

// ErasureReason is the reason recorded for erasures the organization asks
// for through DELETE /backups/{id}.
const ErasureReason = "requested by the organization"

// ErasureResponse is the answer to DELETE /backups/{id}: 200 when every
// copy is deleted and proved absent or retained under lock (unreadable),
// 202 when a copy could not be reached yet (DELETE again to finish).
type ErasureResponse struct {
	BackupID string          `json:"backupId"`
	Status   catalog.Status  `json:"status"`
	Complete bool            `json:"complete"`
	Erasure  catalog.Erasure `json:"erasure"`
}

func (h *Handler) deleteBackup(w http.ResponseWriter, r *http.Request, p Principal) *apiError {
	own, aerr := h.ownBackup(r, p)
	if aerr != nil {
		return aerr
	}
	id := own.ID
	if h.deps.Eraser == nil {
		return errorf(http.StatusNotImplemented, CodeNotConfigured, "erasure is not configured on this deployment")
	}
	ctx, cancel := context.WithTimeout(r.Context(), DefaultEraseTimeout)
	defer cancel()
	by := p.Subject
	if by == "" {
		by = "organization " + p.OrganizationID
	}
	b, err := h.deps.Eraser.Erase(ctx, erase.Request{OrganizationID: p.OrganizationID, BackupID: id, By: by, Reason: ErasureReason})
	if errors.Is(err, erase.ErrNotFound) {
		return errNotFound
	}
	if err != nil {
		return h.internal(ctx, "erase", err, "backup_id", id)
	}
	status := http.StatusOK
	if !erase.Complete(b) {
		status = http.StatusAccepted
	}
	writeJSON(w, status, ErasureResponse{BackupID: b.ID, Status: b.Status, Complete: erase.Complete(b), Erasure: *b.Erasure})
	return nil
}
