package sealer

import (
	"context"
	"fmt"
	"io"

	"github.com/wedsync/backup-replication/shared/publish"
)

// SealPublisher receives the seal step's live progress;
// *publish.Publisher is one. Sealing must not block for long on positions
// (the publisher queues and throttles them); an end (sealed, failed) may
// wait a little for delivery.
type SealPublisher interface {
	Sealing(ctx context.Context, s publish.SealProgress)
}

var _ SealPublisher = (*publish.Publisher)(nil)

// failedReason is what subscribers read when the upload does not match its
// declaration (the log line has the details).
const failedReason = "integrity: the upload does not match its declared size or SHA-256"

// publishSeal sends one step of this backup's seal, if a publisher is
// wired. A publisher that panics is logged, never allowed to stop the seal.
func (r *run) publishSeal(ctx context.Context, step string, bytes int64, reason string) {
	p := r.h.d.Progress
	if p == nil {
		return
	}
	if step != publish.StepSealing {
		if r.ended {
			return // one end per delivery
		}
		r.ended = true
	}
	defer func() {
		if v := recover(); v != nil {
			r.log.WarnContext(ctx, "publishing seal progress panicked; sealing goes on", "op", "publish",
				"panic", clip(fmt.Sprint(v)))
		}
	}()
	p.Sealing(context.WithoutCancel(ctx), publish.SealProgress{BackupID: r.b.ID, OrganizationID: r.b.OrganizationID,
		Step: step, Bytes: bytes, Total: r.b.Size, Error: reason, At: r.h.d.Now().UTC()})
}

// progressReader publishes the plaintext read through it: every 5 % of
// total and at least 1 MiB apart, and when the last byte is read.
type progressReader struct {
	r     io.Reader
	n     int64
	next  int64
	step  int64
	total int64
	emit  func(n int64)
}

func newProgressReader(r io.Reader, total int64, emit func(int64)) *progressReader {
	step := max(total/20, 1<<20)
	return &progressReader{r: r, next: step, step: step, total: total, emit: emit}
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.n += int64(n)
		if p.n >= p.next || p.n == p.total {
			p.next = p.n + p.step
			p.emit(p.n)
		}
	}
	return n, err
}
