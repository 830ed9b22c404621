package sealer

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"time"
	"unicode/utf8"

	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/replicate"
)

// maxConflicts bounds the reread-and-retry loop of conditional writes.
const maxConflicts = 10

// updateBackup applies change to the backup and writes it conditionally,
// rereading and reapplying on ErrConflict; change reports whether it
// changed anything (nothing is written when it did not).
func (r *run) updateBackup(ctx context.Context, change func(b *catalog.Backup) bool) error {
	b := r.b
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			var err error
			if b, err = r.h.d.Store.GetBackup(ctx, r.b.ID); err != nil {
				return err
			}
		}
		if !change(&b) {
			r.b = b
			return nil
		}
		nb, err := r.h.d.Store.UpdateBackup(ctx, b)
		if err == nil {
			r.b = nb
			return nil
		}
		if !errors.Is(err, catalog.ErrConflict) || attempt+1 >= maxConflicts {
			return err
		}
		t := time.NewTimer(time.Duration(rand.Int64N(int64(10*time.Millisecond) << min(attempt, 5))))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// markLanded records when the upload landed (the plaintext's
// LastModified: time to PROTECTED counts from there, sealing included) and
// moves a PENDING backup to REPLICATING, as replicate does.
func (r *run) markLanded(ctx context.Context, at time.Time) error {
	if at.IsZero() {
		at = r.h.d.Now()
	}
	at = at.UTC()
	return r.updateBackup(ctx, func(b *catalog.Backup) bool {
		changed := false
		if b.LandedAt == nil {
			b.LandedAt, changed = &at, true
		}
		if b.Status == catalog.StatusPending {
			b.Status, b.StatusReason, changed = catalog.StatusReplicating, "", true
		}
		return changed
	})
}

// landingFailed marks the backup FAILED because its landed bytes do not
// match the declaration, with the reason replicate writes in that case
// ("integrity: …"; the health function raises the integrity alert of
// FAILED backups). Nothing was sealed, so nothing is replicated; the
// plaintext stays for inspection. The message is consumed: no retry can
// fix it.
func (r *run) landingFailed(ctx context.Context, reason string) outcome {
	rctx, cancel := r.recordContext(ctx)
	defer cancel()
	reason = "integrity: " + reason
	r.log.ErrorContext(ctx, "landed bytes do not match the declaration; backup FAILED, nothing sealed or replicated",
		"op", "verify", "reason", reason)
	err := r.updateBackup(rctx, func(b *catalog.Backup) bool {
		if b.Status == catalog.StatusFailed || b.Status == catalog.StatusErased {
			return false
		}
		b.Status, b.StatusReason = catalog.StatusFailed, reason
		return true
	})
	if err != nil {
		return retryLater("integrity failure not recorded", err)
	}
	return done("landing integrity failure", 0)
}

// isLandingKey reports whether key is an upload's key,
// backups/{organizationId}/{backupId}.
func isLandingKey(key string) bool {
	_, _, err := replicate.ParseKey(key)
	return err == nil && strings.HasPrefix(key, replicate.LandingPrefix)
}

// httpStatus is the HTTP status of an SDK error, 0 when there is none.
func httpStatus(err error) int {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// clip shortens attacker-controlled text before it goes into a log line.
func clip(s string) string {
	const max = 120
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
