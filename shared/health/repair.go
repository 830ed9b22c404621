package health

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/policy"
	"github.com/wedsync/backup-replication/shared/replicate"
	"github.com/wedsync/backup-replication/shared/storage"
)

// maxConflicts bounds the reread-and-retry loops of catalog writes.
const maxConflicts = 8

// markBroken records that scrubbing found rep (VERIFIED at rep.Version)
// missing or corrupt: the replica becomes FAILED with why, and the backup's
// standing is settled again. It reports false, and changes nothing, when
// the replica changed since it was read (a replicate run got there).
func (h *Handler) markBroken(ctx context.Context, rep catalog.Replica, kind storage.Kind, why string) (bool, error) {
	if rep.State != catalog.ReplicaVerified {
		return false, nil
	}
	rep.State, rep.LastError, rep.LastErrorKind = catalog.ReplicaFailed, replicate.Redact("scrub: "+why), kind.String()
	if _, err := h.d.Catalog.PutReplica(ctx, rep); err != nil {
		if errors.Is(err, catalog.ErrConflict) {
			return false, nil
		}
		return false, err
	}
	_, err := h.settle(ctx, rep.BackupID)
	return true, err
}

// markVerified records a copy proven here, immutable when its provider
// writes under retention (Config.Immutable); it wins over any other state.
func (h *Handler) markVerified(ctx context.Context, b catalog.Backup, provider, evidence string) error {
	for attempt := 0; ; attempt++ {
		cur, err := h.d.Catalog.GetReplica(ctx, b.ID, provider)
		if errors.Is(err, catalog.ErrNotFound) {
			cur, err = catalog.Replica{BackupID: b.ID, Provider: provider}, nil
		}
		if err != nil {
			return err
		}
		now := h.d.Now().UTC()
		sha, size := policy.CopyDigest(b)
		cur.State, cur.Key, cur.Bytes = catalog.ReplicaVerified, landingKey(b), size
		cur.VerifiedSHA256, cur.Evidence, cur.VerifiedAt = sha, evidence, &now
		cur.LastError, cur.LastErrorKind, cur.ResumeState = "", "", ""
		cur.Immutable = h.cfg.Immutable[provider] > 0
		_, err = h.d.Catalog.PutReplica(ctx, cur)
		if errors.Is(err, catalog.ErrConflict) && attempt+1 < maxConflicts {
			continue
		}
		return err
	}
}

// settle re-evaluates the 3-2-1 policy on the stored replicas and records
// the backup's standing, as the replicate function does after each copy.
// FAILED, ERASED and PENDING backups are left as they are.
func (h *Handler) settle(ctx context.Context, backupID string) (policy.Result, error) {
	for attempt := 0; ; attempt++ {
		b, err := h.d.Catalog.GetBackup(ctx, backupID)
		if err != nil {
			return policy.Result{}, err
		}
		reps, err := h.d.Catalog.Replicas(ctx, backupID)
		if err != nil {
			return policy.Result{}, err
		}
		res := policy.Evaluate(b, reps, h.d.Policy)
		switch b.Status {
		case catalog.StatusFailed, catalog.StatusErased, catalog.StatusPending:
			return res, nil
		}
		changed := res.Status != b.Status || res.Reason != b.StatusReason
		b.Status, b.StatusReason = res.Status, res.Reason
		if res.Status == catalog.StatusProtected && b.ProtectedAt == nil {
			now := h.d.Now().UTC()
			b.ProtectedAt, changed = &now, true
			if b.LandedAt != nil {
				b.TimeToProtectedMs = max(0, now.Sub(*b.LandedAt).Milliseconds())
			}
		}
		if !changed {
			return res, nil
		}
		_, err = h.d.Catalog.UpdateBackup(ctx, b)
		if errors.Is(err, catalog.ErrConflict) && attempt+1 < maxConflicts {
			continue
		}
		if err == nil {
			h.log.InfoContext(ctx, "backup standing", "backup_id", backupID, "op", "policy", "status", string(res.Status),
				"reason", res.Reason)
		}
		return res, err
	}
}

// repairFromCopy writes b's copy on target from another provider's
// verified copy (in download order), proves it by reading it back, and
// records it VERIFIED. It is for when the landing object is gone: the
// replicate function copies only from landing.
func (h *Handler) repairFromCopy(ctx context.Context, b catalog.Backup, target string, reps map[string]catalog.Replica) (string, error) {
	dst := h.d.Providers[target]
	if dst == nil {
		return "", fmt.Errorf("provider %s is not configured here", target)
	}
	want, size := policy.CopyDigest(b)
	if size > h.cfg.RepairMaxBytes {
		return "", fmt.Errorf("copy of %d bytes is larger than REPAIR_MAX_BYTES (%d): restore it from another copy by hand", size, h.cfg.RepairMaxBytes)
	}
	key := landingKey(b)
	var errs []error
	for _, row := range h.d.Policy.DownloadOrder() {
		r, ok := reps[row.Name]
		src := h.d.Providers[row.Name]
		if row.Name == target || !ok || src == nil || r.State != catalog.ReplicaVerified || r.VerifiedSHA256 != want {
			continue
		}
		srcKey := r.Key
		if srcKey == "" {
			srcKey = key
		}
		log := h.log.With("backup_id", b.ID, "provider", target, "op", "repair", "source", row.Name)
		if err := h.copyBetween(ctx, src, srcKey, dst, key, b); err != nil {
			errs = append(errs, fmt.Errorf("from %s: %w", row.Name, err))
			log.WarnContext(ctx, "repair from this copy failed", "error", replicate.Redact(err.Error()))
			continue
		}
		if err := h.markVerified(ctx, b, target, "sha256-readback"); err != nil {
			return "", err
		}
		if _, err := h.settle(ctx, b.ID); err != nil {
			return "", err
		}
		log.InfoContext(ctx, "copy repaired from another provider", "bytes", size)
		return "copied from " + row.Name, nil
	}
	if len(errs) == 0 {
		return "", errors.New("no verified copy on another provider to repair from")
	}
	return "", errors.Join(errs...)
}

// copyBetween streams src's object to dst (Put checks the expected
// SHA-256 on the way, so a corrupt source stores nothing), then reads the
// stored copy back and hashes it. The copy must be what every copy of b
// holds (policy.CopyDigest): the ciphertext once b is sealed, with the
// metadata replicate writes.
func (h *Handler) copyBetween(ctx context.Context, src storage.Provider, srcKey string, dst storage.Provider, key string, b catalog.Backup) error {
	want, size := policy.CopyDigest(b)
	rc, err := src.Get(ctx, srcKey, 0, -1)
	if err != nil {
		return err
	}
	opts := storage.PutOptions{SHA256: want, ContentType: b.ContentType,
		Metadata: map[string]string{"backup-id": b.ID, "organization-id": b.OrganizationID}}
	if b.Seal != nil {
		opts.ContentType, opts.Metadata["seal-format"] = "application/octet-stream", b.Seal.Format
	}
	_, err = dst.Put(ctx, key, rc, size, opts)
	rc.Close()
	if err != nil {
		return err
	}
	got, n, err := readSHA256(ctx, dst, key)
	if err != nil {
		return err
	}
	if got != want || n != size {
		return storage.NewError("verify", dst.Name(), key, storage.Integrity,
			fmt.Errorf("read back %d bytes with sha256 %s, want %d bytes with %s", n, got, size, want))
	}
	return nil
}

// readSHA256 streams key from p and returns its SHA-256 and length.
func readSHA256(ctx context.Context, p storage.Provider, key string) (string, int64, error) {
	rc, err := p.Get(ctx, key, 0, -1)
	if err != nil {
		return "", 0, err
	}
	defer rc.Close()
	hs := sha256.New()
	n, err := io.Copy(hs, rc)
	if err != nil {
		// A body that breaks off is the network's doing unless the
		// provider classified it (an Integrity error from its own check).
		kind := storage.Transient
		var se *storage.Error
		if errors.As(err, &se) {
			kind = se.Kind
		}
		return "", n, storage.NewError("get", p.Name(), key, kind, err)
	}
	return hex.EncodeToString(hs.Sum(nil)), n, nil
}
