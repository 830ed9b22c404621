package health

import (
	"context"
	"fmt"
	"time"

	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/replicate"
	"github.com/wedsync/backup-replication/shared/storage"
)

// SealQueue is the key of the seal step's queue in Config.Queues
// (SEAL_QUEUE_URL, SEAL_DLQ_URL).
const SealQueue = "seal"

// sealing reports whether uploads go through the seal step first (its
// queue is configured): then a backup's copies can only be made once it
// is sealed, and a backup left unsealed must be sealed again, not copied.
func (h *Handler) sealing() bool {
	q, ok := h.cfg.Queues[SealQueue]
	return ok && q.URL != "" && h.d.Queues != nil
}

// reseal sends an unsealed backup's landing event to the seal queue again
// when its upload has landed more than ReconcileGrace ago: the seal event
// was lost, dead-lettered or refused while KMS was down, and without it no
// provider would ever get a copy. A backup whose upload never arrived is
// left alone (its PENDING record expires).
func (h *Handler) reseal(ctx context.Context, b catalog.Backup, now time.Time, rep *ReconcileReport) error {
	if b.Status == catalog.StatusFailed || b.Status == catalog.StatusErased {
		return nil
	}
	since := b.CreatedAt
	if b.LandedAt != nil {
		since = *b.LandedAt
	}
	if now.Sub(since) < h.cfg.ReconcileGrace {
		return nil
	}
	key := landingKey(b)
	size, etag := b.Size, ""
	if h.d.Landing != nil {
		obj, err := h.d.Landing.Head(ctx, key)
		switch {
		case storage.KindOf(err) == storage.NotFound:
			return nil // never uploaded, or already sealed and cleaned up
		case err != nil:
			return fmt.Errorf("backup %s: landing object: %w", b.ID, err)
		}
		size, etag = obj.Size, obj.ETag
	}
	log := h.log.With("backup_id", b.ID, "op", "reconcile")
	if err := h.enqueue(ctx, SealQueue, key, size, etag); err != nil {
		rep.Failed++
		log.WarnContext(ctx, "unsealed backup not queued for sealing", "error", replicate.Redact(err.Error()))
		return fmt.Errorf("backup %s: seal queue: %w", b.ID, err)
	}
	rep.Queued++
	log.InfoContext(ctx, "unsealed backup queued for sealing again", "bytes", size)
	return nil
}
