package replicate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/retry"
	"github.com/wedsync/backup-replication/shared/storage"
)

// xfer is what a transfer did.
type xfer struct {
	method string // "copy" (server-side), "put" (streamed) or "resume"
	bytes  int64
	read   *readSide // the landing bytes as this process read them; nil after a server-side copy
	// proof is how the provider's Put proved the stored copy equal to what
	// it read, when its checksums cannot show it (storage.Checksums.Proof).
	proof    string
	evidence string
}

// landingIntegrityError says the landing object's bytes do not match the
// declaration: the backup is at fault, not the provider.
type landingIntegrityError struct{ reason string }

func (e *landingIntegrityError) Error() string { return "landing integrity: " + e.reason }

// readSide hashes the landing bytes as the provider reads them. The
// provider's own verifying reader is this one (storage.Verifier), so each
// byte is hashed once for both.
type readSide struct {
	vr *storage.VerifyingReader
}

func (s *readSide) Read(p []byte) (int, error) { return s.vr.Read(p) }

// Verifying lets the provider verify through s's reader.
func (s *readSide) Verifying() *storage.VerifyingReader { return s.vr }

// bad is the landing bytes' failure of the declaration, if they failed it.
func (s *readSide) bad() error {
	if s == nil {
		return nil
	}
	return s.vr.Failed()
}

// whole reports whether every landing byte was read and matched.
func (s *readSide) whole() bool { return s != nil && s.vr.Done() }

func (r *run) putOptions(total int64) storage.PutOptions {
	opts := storage.PutOptions{
		SHA256:      r.wantSHA(),
		ContentType: r.b.ContentType,
		Metadata:    map[string]string{"backup-id": r.b.ID, "organization-id": r.b.OrganizationID},
		Progress:    r.progress(total),
	}
	if s := r.b.Seal; s != nil {
		opts.ContentType = sealedContentType
		opts.Metadata["seal-format"] = s.Format
	}
	return opts
}

// transferAndVerify transfers and verifies, retrying within the
// invocation (Config.Retry) what may succeed when repeated: a failed
// transfer starts again from the landing object (re-opened at the start,
// or resumed from the state its last attempt saved), a failed
// verification is repeated without copying again. Nothing is retried once
// the landing bytes were seen to break their declaration.
func (r *run) transferAndVerify(ctx context.Context, obj LandingObject) (xfer, error) {
	var x xfer
	copied := false
	pol := r.h.cfg.Retry
	retryable := pol.Retryable
	if retryable == nil {
		retryable = storage.Retryable
	}
	pol.Retryable = func(err error) bool {
		return retryable(err) && x.read.bad() == nil
	}
	if pol.OnRetry == nil {
		pol.OnRetry = func(ctx context.Context, attempt int, err error, wait time.Duration) {
			r.log.InfoContext(ctx, "transfer retry", "op", "retry", "retry", attempt,
				"wait_ms", ms(wait), "kind", storage.KindOf(err).String(), "error", Redact(err.Error()))
		}
	}
	err := retry.Do(ctx, pol, func(ctx context.Context) error {
		if !copied {
			var err error
			if x, err = r.transfer(ctx, obj); err != nil {
				return err
			}
			copied = true
		}
		var err error
		x.evidence, err = r.verify(ctx, obj, x)
		return err
	})
	return x, err
}

// transfer puts the landing object on the provider: server-side when the
// provider can copy from the landing bucket, resumable when the provider
// supports it and the object is large, streamed otherwise.
func (r *run) transfer(ctx context.Context, obj LandingObject) (x xfer, err error) {
	h, tg := r.h, r.tg
	start := h.d.Now()
	defer func() {
		d := h.d.Now().Sub(start)
		h.emit(tg.name, x.method, x.bytes, d, err != nil, r.b.ID)
		attrs := []any{"op", x.method, "bytes", x.bytes, "duration_ms", ms(d)}
		if err != nil {
			attrs = append(attrs, "error", Redact(err.Error()), "kind", storage.KindOf(err).String())
		}
		r.log.InfoContext(ctx, "transfer", attrs...)
	}()
	opts := r.putOptions(obj.Size)
	if tg.copy != nil {
		x.method = "copy"
		info, err := tg.copy.Copy(ctx, h.d.Landing.Locator(obj), r.dstKey(), opts)
		if err == nil {
			x.bytes, x.proof = obj.Size, info.Checksums.Proof
			return x, nil
		}
		// A copy the provider's credentials may not make (a bucket in
		// another account without read access to the landing bucket) can
		// still be streamed; anything else is the copy's real outcome.
		if !errors.Is(err, storage.ErrCannotCopy) && storage.KindOf(err) != storage.Unauthorized {
			return x, err
		}
		r.log.InfoContext(ctx, "server-side copy not possible; streaming", "op", "copy", "reason", Redact(err.Error()))
	}
	src := h.d.Landing.Source(obj)
	if tg.res != nil && obj.Size >= h.cfg.ResumeAbove {
		x.method = "resume"
		tap := &tapSource{Source: src, sha: r.wantSHA()}
		info, err := tg.res.PutResumable(ctx, r.dstKey(), tap, opts, r.rep.ResumeState,
			func(state string) error { return r.saveResume(ctx, state) })
		x.read = tap.full()
		if err == nil {
			x.bytes, x.proof = obj.Size, info.Checksums.Proof
		}
		return x, err
	}
	x.method = "put"
	rc, err := src.Open(ctx, 0)
	if err != nil {
		return x, err
	}
	defer rc.Close()
	x.read = &readSide{vr: storage.NewVerifyingReader(rc, obj.Size, r.wantSHA(), nil)}
	info, err := tg.p.Put(ctx, r.dstKey(), x.read, obj.Size, opts)
	x.bytes, x.proof = x.read.vr.N(), info.Checksums.Proof
	return x, err
}

// verify proves the stored copy with the provider's own evidence: its
// SHA-256 checksum, or its MD5 / CRC32C against what this process hashed
// while streaming, or, when it keeps neither, by reading the copy back.
func (r *run) verify(ctx context.Context, obj LandingObject, x xfer) (evidence string, err error) {
	h, tg, key := r.h, r.tg, r.dstKey()
	want, size := r.wantSHA(), r.wantSize()
	start := h.d.Now()
	defer func() {
		d := h.d.Now().Sub(start)
		h.emit(tg.name, "verify", 0, d, err != nil, r.b.ID)
		attrs := []any{"op", "verify", "evidence", evidence, "duration_ms", ms(d)}
		if err != nil {
			attrs = append(attrs, "error", Redact(err.Error()), "kind", storage.KindOf(err).String())
		}
		r.log.InfoContext(ctx, "verify", attrs...)
	}()
	mismatch := func(format string, args ...any) error {
		return storage.NewError("verify", tg.name, key, storage.Integrity, fmt.Errorf(format, args...))
	}
	st, err := tg.p.Stat(ctx, key)
	if err != nil {
		return "", err
	}
	if st.Size != size {
		return "", mismatch("stored copy has %d bytes, expected %d", st.Size, size)
	}
	var parts []string
	c := st.Checksums
	if c.SHA256 != "" {
		if c.SHA256 != want {
			return "", mismatch("provider sha256 %s, expected %s", c.SHA256, want)
		}
		parts = append(parts, "checksum-sha256")
	}
	if x.read.whole() {
		if c.HasCRC32C {
			if c.CRC32C != x.read.vr.CRC32C() {
				return "", mismatch("provider crc32c %08x, streamed %08x", c.CRC32C, x.read.vr.CRC32C())
			}
			parts = append(parts, "crc32c")
		}
		if c.MD5 != "" && x.read.vr.MD5() != "" {
			if !strings.EqualFold(c.MD5, x.read.vr.MD5()) {
				return "", mismatch("provider md5 %s, streamed %s", c.MD5, x.read.vr.MD5())
			}
			parts = append(parts, "md5")
		}
	}
	if len(parts) > 0 {
		return tg.name + "-" + strings.Join(parts, "+"), nil
	}
	// The upload itself proved the copy (a multipart ETag over what it
	// sent, or its own read-back), and the object in place still carries
	// the SHA-256 that upload wrote: reading it back again proves nothing
	// more.
	if x.proof != "" && st.SHA256 == want {
		return tg.name + "-" + x.proof, nil
	}
	rc, err := tg.p.Get(ctx, key, 0, -1)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	vr := storage.NewVerifyingReader(rc, size, want, nil)
	if _, err := io.Copy(io.Discard, vr); err != nil {
		if errors.Is(err, storage.ErrIntegrity) {
			return "", mismatch("read back: %v", err)
		}
		return "", storage.NewError("verify", tg.name, key, storage.Transient, err)
	}
	return "sha256-readback", nil
}

// blame decides who is at fault for a failed transfer or verification. An
// integrity failure is the landing object's when this process saw the
// landing bytes fail the declaration while streaming them, or, when it did
// not see them all (server-side copy, resumed upload, an upload stopped
// early), when the landing object read afresh fails it. Otherwise it is
// the provider's.
func (r *run) blame(ctx context.Context, obj LandingObject, x xfer, err error) error {
	what, _ := r.sourceName()
	if bad := x.read.bad(); bad != nil {
		return &landingIntegrityError{reason: what + ": " + strings.TrimPrefix(bad.Error(), storage.ErrIntegrity.Error()+": ")}
	}
	if storage.KindOf(err) != storage.Integrity || x.read.whole() {
		return err
	}
	rc, oerr := r.h.d.Landing.Source(obj).Open(ctx, 0)
	if oerr != nil {
		return err
	}
	defer rc.Close()
	vr := storage.NewVerifyingReader(rc, obj.Size, r.wantSHA(), nil)
	if _, cerr := io.Copy(io.Discard, vr); cerr != nil && errors.Is(cerr, storage.ErrIntegrity) {
		return &landingIntegrityError{reason: what + ": " + strings.TrimPrefix(cerr.Error(), storage.ErrIntegrity.Error()+": ")}
	}
	return err
}

// tapSource hashes every stream opened from the start of the landing
// object, so that a resumable upload that re-read the whole object leaves
// the same evidence as a streamed one.
type tapSource struct {
	storage.Source
	sha  string
	mu   sync.Mutex
	last *readSide
}

func (t *tapSource) Open(ctx context.Context, offset int64) (io.ReadCloser, error) {
	rc, err := t.Source.Open(ctx, offset)
	if err != nil || offset != 0 {
		return rc, err
	}
	rs := &readSide{vr: storage.NewVerifyingReader(rc, t.Source.Size(), t.sha, nil)}
	t.mu.Lock()
	t.last = rs
	t.mu.Unlock()
	return tapReader{rs, rc}, nil
}

// tapReader is a landing stream read through its readSide.
type tapReader struct {
	*readSide
	io.Closer
}

func (t *tapSource) full() *readSide {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.last
}

// progress returns a PutOptions.Progress callback that publishes a COPYING
// event each time another 5% (at least 1 MiB) has been read, and at the end.
func (r *run) progress(total int64) func(int64) {
	step := max(total/20, 1<<20)
	var next atomic.Int64
	next.Store(step)
	ctx := context.Background()
	return func(n int64) {
		if n < next.Load() && n != total {
			return
		}
		next.Store(n + step)
		r.h.d.Progress.Progress(ctx, ProgressEvent{
			BackupID: r.b.ID, OrganizationID: r.b.OrganizationID, Provider: r.tg.name,
			State: catalog.ReplicaCopying, Bytes: n, Total: total, Attempt: r.rep.Attempts, At: r.h.d.Now().UTC(),
		})
	}
}
