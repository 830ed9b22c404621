package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"sync"

	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/policy"
	"github.com/wedsync/backup-replication/shared/storage"
)

// Verification codes of one copy.
const (
	VerifyMismatch      = "sha256_mismatch"
	VerifySizeMismatch  = "size_mismatch"
	VerifyMissing       = "missing"
	VerifyReadFailed    = "read_failed"
	VerifyNotConfigured = "provider_not_configured"
)

// CopyCheck is the outcome of re-reading one copy.
type CopyCheck struct {
	Provider string `json:"provider"`
	OK       bool   `json:"ok"`
	SHA256   string `json:"sha256,omitempty"`
	Bytes    int64  `json:"bytes"`
	// Error is one of the Verify* codes when OK is false.
	Error string `json:"error,omitempty"`
	// Kind is the storage error kind of a failed read.
	Kind string `json:"kind,omitempty"`
	// MarkedFailed says this check turned a VERIFIED replica FAILED.
	MarkedFailed bool `json:"markedFailed,omitempty"`
}

// VerifyReport is the answer to POST /backups/{id}/verify.
type VerifyReport struct {
	BackupID string `json:"backupId"`
	SHA256   string `json:"sha256"`
	Size     int64  `json:"size"`
	// CipherSHA256 is set when the backup is sealed: every copy must then
	// hash to it (the copies hold ciphertext), not to SHA256.
	CipherSHA256 string        `json:"cipherSha256,omitempty"`
	Copies       []CopyCheck   `json:"copies"`
	Policy       policy.Result `json:"policy"`
}

// verifiable replica states: a copy exists (or should) on the provider.
func verifiable(s catalog.ReplicaState) bool {
	return s == catalog.ReplicaVerified || s == catalog.ReplicaFailed || s == catalog.ReplicaCopying
}

func (h *Handler) verify(w http.ResponseWriter, r *http.Request, p Principal) *apiError {
	b, aerr := h.ownBackup(r, p)
	if aerr != nil {
		return aerr
	}
	if b.Status == catalog.StatusPending || b.Status == catalog.StatusErased {
		return errorf(http.StatusConflict, CodeNotLanded, "this backup has no copies to verify (status "+string(b.Status)+")")
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.VerifyTimeout)
	defer cancel()
	reps, err := h.deps.Store.Replicas(ctx, b.ID)
	if err != nil {
		return h.internal(ctx, "replicas", err, "backup_id", b.ID)
	}
	var todo []catalog.Replica
	for _, rep := range reps {
		if verifiable(rep.State) {
			todo = append(todo, rep)
		}
	}
	checks := make([]CopyCheck, len(todo))
	var wg sync.WaitGroup
	for i, rep := range todo {
		wg.Add(1)
		go func() {
			defer wg.Done()
			checks[i] = h.checkCopy(ctx, b, rep)
		}()
	}
	wg.Wait()

	changed := false
	for i, rep := range todo {
		c := &checks[i]
		if c.OK || rep.State != catalog.ReplicaVerified || (c.Error != VerifyMismatch && c.Error != VerifySizeMismatch && c.Error != VerifyMissing) {
			continue
		}
		ok, err := h.markFailed(ctx, rep, c.Error)
		if err != nil {
			return h.internal(ctx, "mark_replica_failed", err, "backup_id", b.ID, "provider", rep.Provider)
		}
		c.MarkedFailed, changed = ok, changed || ok
	}
	res, aerr := h.reevaluate(ctx, b, changed)
	if aerr != nil {
		return aerr
	}
	rep := VerifyReport{BackupID: b.ID, SHA256: b.SHA256, Size: b.Size, Copies: checks, Policy: res}
	if b.Seal != nil {
		rep.CipherSHA256 = b.Seal.CipherSHA256
	}
	writeJSON(w, http.StatusOK, rep)
	return nil
}

// checkCopy reads one copy to its end and compares it with the size and
// SHA-256 every copy must have (copyDigest: the sealed object's once the
// backup is sealed, the declared ones before).
func (h *Handler) checkCopy(ctx context.Context, b catalog.Backup, rep catalog.Replica) CopyCheck {
	c := CopyCheck{Provider: rep.Provider}
	prov, ok := h.deps.Providers[rep.Provider]
	if !ok {
		c.Error = VerifyNotConfigured
		return c
	}
	key := rep.Key
	if key == "" {
		key = b.LandingKey
	}
	log := h.log.With("backup_id", b.ID, "provider", rep.Provider, "op", "verify")
	wantSHA, wantSize := copyDigest(b)
	rc, err := prov.Get(ctx, key, 0, -1)
	if err == nil {
		hash := sha256.New()
		c.Bytes, err = io.Copy(hash, rc)
		rc.Close()
		c.SHA256 = hex.EncodeToString(hash.Sum(nil))
	}
	switch {
	case errors.Is(err, storage.ErrNotFound):
		c.Error, c.SHA256, c.Bytes = VerifyMissing, "", 0
	case err != nil:
		c.Error, c.Kind = VerifyReadFailed, storage.KindOf(err).String()
		if ctx.Err() != nil {
			c.Kind = storage.Transient.String()
		}
		c.SHA256 = ""
		log.WarnContext(ctx, "verify read failed", "bytes", c.Bytes, "error", err.Error())
	case c.Bytes != wantSize:
		c.Error = VerifySizeMismatch
	case c.SHA256 != wantSHA:
		c.Error = VerifyMismatch
	default:
		c.OK = true
	}
	log.InfoContext(ctx, "copy verified", "ok", c.OK, "bytes", c.Bytes, "result", c.Error)
	return c
}

// markFailed turns a VERIFIED replica FAILED with a conditional write,
// rereading and retrying when another writer got there first. It reports
// whether it changed the record.
func (h *Handler) markFailed(ctx context.Context, rep catalog.Replica, code string) (bool, error) {
	for attempt := 0; attempt < 3; attempt++ {
		if rep.State != catalog.ReplicaVerified {
			return false, nil
		}
		rep.State = catalog.ReplicaFailed
		rep.LastError = "verify: " + code
		rep.LastErrorKind = storage.Integrity.String()
		rep.UpdatedAt = h.deps.Now().UTC()
		_, err := h.deps.Store.PutReplica(ctx, rep)
		if err == nil {
			h.log.WarnContext(ctx, "replica failed verification", "backup_id", rep.BackupID, "provider", rep.Provider,
				"op", "verify", "result", code)
			return true, nil
		}
		if !errors.Is(err, catalog.ErrConflict) {
			return false, err
		}
		if rep, err = h.deps.Store.GetReplica(ctx, rep.BackupID, rep.Provider); err != nil {
			return false, err
		}
	}
	return false, catalog.ErrConflict
}

// reevaluate applies the policy to b's current replicas and, when write is
// set and the standing changed, records it on the backup.
func (h *Handler) reevaluate(ctx context.Context, b catalog.Backup, write bool) (policy.Result, *apiError) {
	for attempt := 0; ; attempt++ {
		reps, err := h.deps.Store.Replicas(ctx, b.ID)
		if err != nil {
			return policy.Result{}, h.internal(ctx, "replicas", err, "backup_id", b.ID)
		}
		res := policy.Evaluate(b, reps, h.deps.Policy)
		if !write || (res.Status == b.Status && res.Reason == b.StatusReason) ||
			b.Status == catalog.StatusFailed || b.Status == catalog.StatusErased || b.Status == catalog.StatusPending {
			return res, nil
		}
		b.Status, b.StatusReason, b.UpdatedAt = res.Status, res.Reason, h.deps.Now().UTC()
		_, err = h.deps.Store.UpdateBackup(ctx, b)
		if err == nil {
			h.log.InfoContext(ctx, "backup status changed", "backup_id", b.ID, "op", "verify", "status", string(res.Status))
			return res, nil
		}
		if !errors.Is(err, catalog.ErrConflict) || attempt == 2 {
			return policy.Result{}, h.internal(ctx, "update_backup", err, "backup_id", b.ID)
		}
		if b, err = h.deps.Store.GetBackup(ctx, b.ID); err != nil {
			return policy.Result{}, h.internal(ctx, "get_backup", err, "backup_id", b.ID)
		}
	}
}
