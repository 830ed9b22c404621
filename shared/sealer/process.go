package sealer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/keys"
	"github.com/wedsync/backup-replication/shared/publish"
	"github.com/wedsync/backup-replication/shared/replicate"
	"github.com/wedsync/backup-replication/shared/seal"
	"github.com/wedsync/backup-replication/shared/storage"
)

// run is the processing of one record.
type run struct {
	h   *Handler
	ev  replicate.ObjectEvent
	log *slog.Logger
	b   catalog.Backup
	// owner names this delivery's seal claim ("" until claimed).
	owner string
	// ended: this delivery published the seal's end (sealed or failed);
	// read: the plaintext bytes it last published.
	ended bool
	read  int64
}

func (r *run) landing() *replicate.Landing {
	return replicate.NewLanding(r.h.d.Landing, r.h.cfg.LandingBucket, "")
}

func (r *run) sealedKey() string { return SealedKey(r.b.OrganizationID, r.b.ID) }

func (r *run) process(ctx context.Context) outcome {
	// Deliveries of one backup in this process run one after the other:
	// the second then finds the backup sealed.
	defer r.h.locks.lock(r.ev.BackupID)()
	b, err := r.h.d.Store.GetBackup(ctx, r.ev.BackupID)
	if errors.Is(err, catalog.ErrNotFound) {
		// The API writes the record before it hands out an upload URL:
		// a stray object, or a record not visible yet. Retried, then
		// dead-lettered, never dropped.
		return retryLater("no backup record", err)
	}
	if err != nil {
		return retryLater("catalog unavailable", err)
	}
	if b.OrganizationID != r.ev.OrganizationID || (b.LandingKey != "" && b.LandingKey != r.ev.Key) {
		return retryLater("key does not match the backup record",
			fmt.Errorf("key %q, record says organization %q key %q", clip(r.ev.Key), b.OrganizationID, b.LandingKey))
	}
	r.b = b
	switch b.Status {
	case catalog.StatusFailed:
		return done("skipped: backup failed integrity earlier", 0)
	case catalog.StatusErased:
		return r.eraseLeftover(ctx, "skipped: backup erased")
	}
	if b.Seal != nil {
		return r.alreadySealed(ctx)
	}
	land, err := r.landing().Head(ctx, r.ev.Key)
	if err != nil {
		return retryLater("landing object unreadable", err)
	}
	if land.Size != b.Size {
		r.publishSeal(ctx, publish.StepFailed, 0, failedReason)
		return r.landingFailed(ctx, fmt.Sprintf("landed object has %d bytes, declared %d", land.Size, b.Size))
	}
	if land.SHA256 != "" && !strings.EqualFold(land.SHA256, b.SHA256) {
		r.publishSeal(ctx, publish.StepFailed, 0, failedReason)
		return r.landingFailed(ctx, fmt.Sprintf("landed object has sha256 %s, declared %s", land.SHA256, b.SHA256))
	}
	if err := r.markLanded(ctx, land.LastModified); err != nil {
		return retryLater("catalog unavailable", err)
	}
	if err := r.claim(ctx); err != nil {
		return r.claimRefused(ctx, err)
	}
	defer r.release(ctx) // a no-op once SetSeal has ended the claim
	// A sealed object already there was left by a delivery that stopped
	// before recording it: adopt it.
	obj, err := r.landing().Head(ctx, r.sealedKey())
	switch {
	case err == nil:
		return r.adopt(ctx, obj)
	case storage.KindOf(err) != storage.NotFound:
		return retryLater("landing bucket unreadable", err)
	}
	return r.seal(ctx, land)
}

// claimRefused decides what a delivery that did not get the claim does:
// a backup sealed or erased meanwhile is a duplicate; otherwise the
// message comes back once the other delivery has had time to finish.
func (r *run) claimRefused(ctx context.Context, err error) outcome {
	if !errors.Is(err, errClaimed) && !errors.Is(err, catalog.ErrConflict) {
		return retryLater("catalog unavailable", err)
	}
	b, gerr := r.h.d.Store.GetBackup(ctx, r.b.ID)
	switch {
	case gerr != nil:
		return retryLater("catalog unavailable", gerr)
	case b.Status == catalog.StatusErased:
		return r.eraseLeftover(ctx, "skipped: backup erased")
	case b.Seal != nil:
		r.b = b
		return r.alreadySealed(ctx)
	}
	return retryLater("another delivery is sealing", err)
}

// alreadySealed handles a delivery for a sealed backup: the plaintext
// goes once the sealed object is confirmed in place.
func (r *run) alreadySealed(ctx context.Context) outcome {
	obj, err := r.landing().Head(ctx, r.b.Seal.Key)
	if err != nil && storage.KindOf(err) != storage.NotFound {
		return retryLater("landing bucket unreadable", err)
	}
	if err != nil || obj.Size != r.b.Seal.CipherSize {
		// Not what was recorded (gone, or another object): the plaintext,
		// if still there, is kept; health reconciles from the catalog.
		r.log.WarnContext(ctx, "backup sealed, but its sealed object is not in the landing bucket as recorded; plaintext kept",
			"op", "seal", "sealed_key", r.b.Seal.Key)
		return done("duplicate: already sealed", 0)
	}
	return r.dropPlaintext(ctx, done("duplicate: already sealed", 0))
}

// seal streams the landing object through seal.Seal into the sealed key
// and records the result. With Deps.Progress it publishes the plaintext
// read so far (sealing), then sealed once recorded, or failed with a short
// reason when this delivery ends without a recorded seal.
func (r *run) seal(ctx context.Context, land replicate.LandingObject) (out outcome) {
	r.publishSeal(ctx, publish.StepSealing, 0, "")
	defer func() {
		if !r.ended {
			reason := out.what
			if !out.consumed {
				reason += "; retrying"
			}
			r.publishSeal(ctx, publish.StepFailed, r.read, reason)
		}
	}()
	dataKey, rec, err := r.h.d.Keys.Create(ctx, r.b.OrganizationID, r.b.ID)
	if out, stop := r.keyRefused(ctx, "create", err); stop {
		return out
	}
	defer clear(dataKey)
	hdr := seal.Header{Format: seal.Format, KMSKeyID: rec.KMSKeyID, OrganizationID: r.b.OrganizationID,
		BackupID: r.b.ID, PlaintextSize: r.b.Size}
	size := seal.SealedSize(hdr)

	tctx, cancel := r.transferContext(ctx)
	defer cancel()
	in := &s3.GetObjectInput{Bucket: aws.String(r.h.cfg.LandingBucket), Key: aws.String(r.ev.Key)}
	if land.ETag != "" {
		in.IfMatch = aws.String(`"` + land.ETag + `"`)
	}
	src, err := r.h.d.Landing.GetObject(tctx, in)
	if err != nil {
		return retryLater("landing object unreadable", err)
	}
	defer src.Body.Close()
	up := newUpload(tctx, r.h.d.Landing, r.h.cfg.LandingBucket, r.sealedKey(), size, r.h.cfg.PartSize, r.h.cfg.PartsInFlight)
	var plain io.Reader = src.Body
	if r.h.d.Progress != nil {
		plain = newProgressReader(src.Body, r.b.Size, func(n int64) {
			r.read = n
			r.publishSeal(ctx, publish.StepSealing, n, "")
		})
	}
	res, err := seal.Seal(up, plain, dataKey, hdr)
	if err != nil {
		r.abort(ctx, up, err)
		return retryLater("sealing failed", err)
	}
	if !strings.EqualFold(res.PlaintextSHA256, r.b.SHA256) {
		r.abort(ctx, up, errors.New("plaintext does not match the declaration"))
		r.publishSeal(ctx, publish.StepFailed, res.PlaintextSize, failedReason)
		return r.landingFailed(ctx, fmt.Sprintf("landed object has sha256 %s, declared %s", res.PlaintextSHA256, r.b.SHA256))
	}
	if res.CipherSize != size {
		err := fmt.Errorf("sealed %d bytes, SealedSize said %d", res.CipherSize, size)
		r.abort(ctx, up, err)
		return retryLater("sealing failed", err)
	}
	if err := up.Complete(); errors.Is(err, errTaken) {
		r.ended = true // the other delivery publishes the end
		return retryLater("another delivery wrote the sealed object first", err)
	} else if err != nil {
		return retryLater("sealed object not written", err)
	}
	// What is there must be what this delivery wrote (see claim.go); if
	// not, the next delivery adopts whatever it is, after checking it.
	if obj, err := r.landing().Head(ctx, r.sealedKey()); err != nil {
		return retryLater("sealed object unreadable after writing", err)
	} else if want := strings.Trim(up.etag, `"`); want != "" && obj.ETag != want {
		r.ended = true // the other delivery publishes the end
		return retryLater("sealed object replaced by another delivery",
			fmt.Errorf("sealed object has ETag %s, this delivery wrote %s", obj.ETag, want))
	}
	out = r.record(ctx, catalog.Seal{Key: r.sealedKey(), Format: seal.Format, KMSKeyID: rec.KMSKeyID,
		CipherSHA256: res.CipherSHA256, CipherSize: res.CipherSize})
	out.bytes = res.PlaintextSize
	return out
}

// adopt checks a sealed object found in place, unrecorded: it must open
// with the backup's data key to exactly the declared plaintext. Then it is
// recorded as is (never replaced); otherwise it is removed and the backup
// sealed afresh on the next delivery.
func (r *run) adopt(ctx context.Context, obj replicate.LandingObject) outcome {
	dataKey, rec, err := r.h.d.Keys.Open(ctx, r.b.OrganizationID, r.b.ID)
	if errors.Is(err, keys.ErrNotFound) {
		return r.dropSealed(ctx, "no data key for it")
	}
	if out, stop := r.keyRefused(ctx, "open", err); stop {
		return out
	}
	defer clear(dataKey)
	tctx, cancel := r.transferContext(ctx)
	defer cancel()
	body, err := r.landing().Source(obj).Open(tctx, 0)
	if err != nil {
		return retryLater("sealed object unreadable", err)
	}
	defer body.Close()
	ch, ph := sha256.New(), sha256.New()
	counted := &countingReader{r: io.TeeReader(body, ch)}
	hdr, plain, err := seal.Open(counted, dataKey)
	var n int64
	if err == nil {
		n, err = io.Copy(ph, plain)
	}
	if err == nil {
		_, err = io.Copy(io.Discard, counted) // nothing should follow; hash it if it does
	}
	if errors.Is(err, seal.ErrAuth) || errors.Is(err, seal.ErrFormat) {
		return r.dropSealed(ctx, "it does not open with the backup's data key")
	}
	if err != nil {
		return retryLater("sealed object unreadable", err)
	}
	psum := hex.EncodeToString(ph.Sum(nil))
	if hdr.OrganizationID != r.b.OrganizationID || hdr.BackupID != r.b.ID || n != r.b.Size ||
		!strings.EqualFold(psum, r.b.SHA256) || counted.n != obj.Size {
		return r.dropSealed(ctx, "it does not hold the declared plaintext")
	}
	r.log.InfoContext(ctx, "sealed object left by an earlier delivery opens to the declared plaintext; recording it",
		"op", "seal", "bytes", n)
	out := r.record(ctx, catalog.Seal{Key: r.sealedKey(), Format: hdr.Format, KMSKeyID: rec.KMSKeyID,
		CipherSHA256: hex.EncodeToString(ch.Sum(nil)), CipherSize: counted.n})
	out.bytes = n
	return out
}

// keyRefused maps a keys error to an outcome; stop false means no error.
func (r *run) keyRefused(ctx context.Context, op string, err error) (outcome, bool) {
	switch {
	case err == nil:
		return outcome{}, false
	case errors.Is(err, keys.ErrShredded):
		// DELETE destroyed the key first: the backup is being erased.
		return r.eraseLeftover(ctx, "skipped: data key destroyed (backup erased)"), true
	case errors.Is(err, keys.ErrWrongOrganization):
		return retryLater("data key belongs to another organization", err), true
	}
	return retryLater("data key unavailable ("+op+")", err), true
}

// dropSealed removes an unrecorded sealed object that is not a seal of
// this backup's declared bytes, so that the next delivery seals afresh.
func (r *run) dropSealed(ctx context.Context, why string) outcome {
	rctx, cancel := r.recordContext(ctx)
	defer cancel()
	r.log.WarnContext(ctx, "unrecorded sealed object is not usable ("+why+"); removing it", "op", "seal",
		"sealed_key", r.sealedKey())
	_, err := r.h.d.Landing.DeleteObject(rctx, &s3.DeleteObjectInput{Bucket: aws.String(r.h.cfg.LandingBucket),
		Key: aws.String(r.sealedKey())})
	if err != nil {
		return retryLater("unusable sealed object not removed", err)
	}
	return retryLater("unusable sealed object removed", errors.New("sealed object left behind: "+why))
}

// record writes the seal to the catalog, then drops the plaintext.
func (r *run) record(ctx context.Context, s catalog.Seal) outcome {
	rctx, cancel := r.recordContext(ctx)
	defer cancel()
	err := r.h.d.Store.SetSeal(rctx, r.b.ID, s)
	if errors.Is(err, catalog.ErrConflict) {
		b, gerr := r.h.d.Store.GetBackup(rctx, r.b.ID)
		switch {
		case gerr != nil:
			return retryLater("catalog unavailable", gerr)
		case b.Status == catalog.StatusErased:
			return r.eraseLeftover(ctx, "skipped: backup erased while sealing")
		}
		return retryLater("another seal is recorded", err)
	}
	if err != nil {
		// The sealed object stays: the next delivery adopts it.
		return retryLater("sealed; seal not recorded", err)
	}
	r.log.InfoContext(ctx, "sealed", "op", "seal", "sealed_key", s.Key, "cipher_bytes", s.CipherSize,
		"cipher_sha256", s.CipherSHA256, "kms_key_id", s.KMSKeyID)
	r.publishSeal(ctx, publish.StepSealed, r.b.Size, "")
	return r.dropPlaintext(rctx, done("sealed", 0))
}

// eraseLeftover deletes what landed for a backup that is being or was
// erased (its upload may arrive after the erasure ran): the plaintext
// upload and any sealed object, whatever SEAL_KEEP_PLAINTEXT says, since
// nothing of an erased backup is kept. what is the outcome.
func (r *run) eraseLeftover(ctx context.Context, what string) outcome {
	rctx, cancel := r.recordContext(ctx)
	defer cancel()
	for _, key := range []string{r.ev.Key, r.sealedKey()} {
		if _, err := r.h.d.Landing.DeleteObject(rctx, &s3.DeleteObjectInput{Bucket: aws.String(r.h.cfg.LandingBucket),
			Key: aws.String(key)}); err != nil {
			return retryLater("upload of an erased backup not deleted", err)
		}
	}
	r.log.InfoContext(ctx, "upload of an erased backup deleted", "op", "erase")
	return done(what, 0)
}

// dropPlaintext deletes the plaintext landing object (unless configured
// to keep it); out is the outcome when that succeeds.
func (r *run) dropPlaintext(ctx context.Context, out outcome) outcome {
	if r.h.cfg.KeepPlaintext {
		return out
	}
	_, err := r.h.d.Landing.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(r.h.cfg.LandingBucket),
		Key: aws.String(r.ev.Key)})
	if err != nil {
		return retryLater(out.what+"; plaintext not deleted", err)
	}
	r.log.InfoContext(ctx, "plaintext landing object deleted", "op", "delete")
	return out
}

// abort abandons an upload, logging what could not be cleaned up.
func (r *run) abort(ctx context.Context, up *upload, why error) {
	if err := up.Abort(why); err != nil {
		r.log.WarnContext(ctx, "could not abort the sealed object's multipart upload; the bucket's lifecycle rule removes its parts",
			"op", "seal", "error", replicate.Redact(err.Error()))
	}
}

// transferContext keeps Config.Reserve of the invocation's time back from
// a transfer, so that its outcome can still be recorded.
func (r *run) transferContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) > 2*r.h.cfg.Reserve {
		return context.WithDeadline(ctx, dl.Add(-r.h.cfg.Reserve))
	}
	return context.WithCancel(ctx)
}

// recordContext outlives a cancelled transfer, for Reserve at most.
func (r *run) recordContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), r.h.cfg.Reserve)
}

// countingReader counts what passes.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
