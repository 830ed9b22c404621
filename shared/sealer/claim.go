package sealer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"sync"
	"time"

	"github.com/wedsync/backup-replication/shared/catalog"
)

// One delivery seals a backup at a time. On AWS, S3's conditional writes
// (If-None-Match: * when completing the sealed object) and DynamoDB's
// conditional updates are atomic, so the catalog claim (ClaimSeal) alone
// decides, and the sealed object could not be replaced anyway. The local
// stack runs on moto, whose conditional checks are not atomic under
// concurrency, and moto sends two Object Created events for every
// multipart upload, delivered at the same moment to two seal instances.
// So the claim is also read back (a claim overwritten in moto's race reads
// as the other owner's), deliveries within one process wait for each
// other (keyedLock), and the completed object's ETag is checked before
// it is recorded (see process.go).

// defaultClaim is how long a claim lasts when the invocation has no
// deadline (tests); with one, the claim lasts until the deadline.
const defaultClaim = 15 * time.Minute

// keyedLock serialises work on one key within a process.
type keyedLock struct {
	mu sync.Mutex
	m  map[string]*keyLock
}

type keyLock struct {
	mu   sync.Mutex
	refs int
}

// lock waits for key and returns its unlock.
func (k *keyedLock) lock(key string) func() {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*keyLock{}
	}
	l := k.m[key]
	if l == nil {
		l = &keyLock{}
		k.m[key] = l
	}
	l.refs++
	k.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		k.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
}

// errClaimed says another delivery holds the backup's claim.
var errClaimed = errors.New("another delivery is sealing this backup")

// claim takes the backup's seal claim for this delivery until the
// invocation's deadline, and reads it back. It returns errClaimed (or
// catalog.ErrConflict from the store: sealed or erased meanwhile) when
// this delivery must not seal.
func (r *run) claim(ctx context.Context) error {
	var raw [12]byte
	_, _ = rand.Read(raw[:])
	r.owner = hex.EncodeToString(raw[:])
	until := r.h.d.Now().Add(defaultClaim)
	if dl, ok := ctx.Deadline(); ok {
		until = dl
	}
	if err := r.h.d.Store.ClaimSeal(ctx, r.b.ID, r.owner, until); err != nil {
		return err
	}
	b, err := r.h.d.Store.GetBackup(ctx, r.b.ID)
	if err != nil {
		r.release(ctx)
		return err
	}
	if b.SealingBy != r.owner || b.Seal != nil || b.Status == catalog.StatusErased {
		return errClaimed
	}
	r.b = b
	return nil
}

// release ends this delivery's claim (best effort: it runs out anyway).
func (r *run) release(ctx context.Context) {
	if r.owner == "" {
		return
	}
	rctx, cancel := r.recordContext(ctx)
	defer cancel()
	if err := r.h.d.Store.ReleaseSeal(rctx, r.b.ID, r.owner); err != nil {
		r.log.WarnContext(ctx, "could not release the seal claim; it runs out by itself", "op", "seal", "error", err.Error())
	}
}
