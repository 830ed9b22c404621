package replicate

// Sealed sources (issue 8): providers only ever hold ciphertext. The seal
// step writes sealed/{org}/{id} in the landing bucket and records
// catalog.Backup.Seal; the sealed object's Object Created event is what
// replicate copies, to the backup's own key backups/{org}/{id} on the
// provider, checked against Seal.CipherSize and Seal.CipherSHA256
// (policy.CopyDigest). The plaintext landing object's event belongs to the
// seal step: with Config.RequireSeal it is consumed here with nothing
// copied.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/wedsync/backup-replication/shared/policy"
)

// DefaultSealWait is the default Config.SealWait.
const DefaultSealWait = 3 * time.Second

// sealedContentType is the content type of every sealed copy: the bytes
// are the sealed format, not what the backup declared.
const sealedContentType = "application/octet-stream"

// wantSHA is the SHA-256 the copy must have (the sealed object's once
// sealed, the declared one before).
func (r *run) wantSHA() string {
	sha, _ := policy.CopyDigest(r.b)
	return sha
}

// wantSize is the size the copy must have.
func (r *run) wantSize() int64 {
	_, size := policy.CopyDigest(r.b)
	return size
}

// dstKey is the copy's key on the provider: the backup's key, whatever
// object the event named.
func (r *run) dstKey() string { return r.ev.ReplicaKey() }

// sourceName names the source object in reasons: the bytes that broke
// their declaration are the upload's, or the seal step's.
func (r *run) sourceName() (object, declared string) {
	if r.ev.Sealed {
		return "sealed object", "recorded by the seal step"
	}
	return "landed object", "declared"
}

// checkSeal decides whether the event is the one to copy from; ok false
// means out says what became of the record:
//   - a plaintext event for a sealed backup is consumed: the sealed
//     object's event replicates it;
//   - a plaintext event while Config.RequireSeal is consumed too: the seal
//     step owns it, and its sealed object's event follows;
//   - a sealed event whose seal is not recorded yet (the seal step records
//     it after writing the object) waits up to Config.SealWait for it,
//     then returns to the queue;
//   - a sealed event naming another object than the recorded seal returns
//     to the queue for the dead-letter queue.
func (r *run) checkSeal(ctx context.Context) (out outcome, ok bool) {
	if !r.ev.Sealed {
		switch {
		case r.b.Seal != nil:
			return done("skipped: sealed; the sealed object's event replicates it", 0), false
		case r.h.cfg.RequireSeal:
			return done("skipped: waiting for the seal step", 0), false
		}
		return outcome{}, true
	}
	if r.b.Seal == nil {
		if err := r.awaitSeal(ctx); err != nil {
			return retryLater("seal not recorded yet", err), false
		}
	}
	if s := r.b.Seal; s.Key != r.ev.Key {
		return retryLater("sealed key does not match the seal record",
			fmt.Errorf("%w: event names %q, the backup's seal is %q", errMalformed, clip(r.ev.Key), s.Key)), false
	}
	return outcome{}, true
}

// awaitSeal rereads the backup until its seal is recorded, for
// Config.SealWait at most.
func (r *run) awaitSeal(ctx context.Context) error {
	deadline := r.h.d.Now().Add(r.h.cfg.SealWait)
	for attempt := 0; r.h.d.Now().Before(deadline); attempt++ {
		if err := pause(ctx, min(attempt+2, 5)); err != nil {
			return err
		}
		b, err := r.h.d.Store.GetBackup(ctx, r.b.ID)
		if err != nil {
			return err
		}
		if b.Seal != nil {
			r.b = b
			return nil
		}
	}
	return errors.New("the backup has no seal recorded after " + r.h.cfg.SealWait.String())
}
