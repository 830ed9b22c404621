package sealer_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/publish"
	"github.com/wedsync/backup-replication/shared/sealer"
)

// recorder keeps what the handler published.
type recorder struct {
	mu  sync.Mutex
	got []publish.SealProgress
}

func (r *recorder) Sealing(_ context.Context, s publish.SealProgress) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, s)
}

func (r *recorder) of(id string) []publish.SealProgress {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []publish.SealProgress
	for _, s := range r.got {
		if s.BackupID == id {
			out = append(out, s)
		}
	}
	return out
}

func (w *world) handlerWithProgress(p sealer.SealPublisher) *sealer.Handler {
	w.t.Helper()
	h, err := sealer.New(sealer.Config{LandingBucket: w.bucket, PartSize: sealer.MinPartSize, PartsInFlight: 2},
		sealer.Deps{Landing: w.s3, Store: w.store, Keys: w.keys, Progress: p,
			Logger: slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		w.t.Fatal(err)
	}
	return h
}

// TestSealPublishesProgress: a dashboard watching a 12 MiB seal sees the
// plaintext read so far rise to every byte, then "sealed" exactly once;
// a duplicate delivery publishes nothing more.
func TestSealPublishesProgress(t *testing.T) {
	w := newWorld(t)
	rec := &recorder{}
	h := w.handlerWithProgress(rec)
	u := w.land("org-ü progress", payload(12<<20, 21), nil)
	if failed := w.handle(h, w.landed(u)); len(failed) != 0 {
		t.Fatalf("failed: %v\nlogs:\n%s", failed, w.logText())
	}
	w.expectSealed(u)
	got := rec.of(u.b.ID)
	if len(got) < 3 {
		t.Fatalf("published %+v; want sealing positions, then sealed", got)
	}
	last := int64(-1)
	for i, s := range got[:len(got)-1] {
		if s.Step != publish.StepSealing || s.Bytes <= last || s.Total != u.b.Size ||
			s.OrganizationID != u.b.OrganizationID || s.At.IsZero() {
			t.Fatalf("position %d: %+v after %d bytes; want sealing, increasing, total %d", i, s, last, u.b.Size)
		}
		last = s.Bytes
	}
	if last != u.b.Size {
		t.Errorf("last position %d bytes, want every byte (%d)", last, u.b.Size)
	}
	if n := len(got) - 1; n > 25 {
		t.Errorf("%d positions for 12 MiB; want one per 5 %% or MiB at most", n)
	}
	if end := got[len(got)-1]; end.Step != publish.StepSealed || end.Bytes != u.b.Size || end.Error != "" {
		t.Errorf("end %+v, want sealed with every byte", end)
	}
	// A second delivery finds it sealed: no new progress.
	w.handle(h, w.landed(u))
	if n := len(rec.of(u.b.ID)); n != len(got) {
		t.Errorf("duplicate delivery published %d more", n-len(got))
	}
}

// TestSealPublishesFailure: an upload whose bytes do not hash to their
// declaration ends in "failed" with a short reason, never "sealed".
func TestSealPublishesFailure(t *testing.T) {
	w := newWorld(t)
	rec := &recorder{}
	h := w.handlerWithProgress(rec)
	u := w.land("org", payload(3<<20, 22), payload(3<<20, 23)) // same size, another SHA-256
	w.handle(h, w.landed(u))
	if b := w.backup(u.b.ID); b.Status != catalog.StatusFailed {
		t.Fatalf("backup %s, want FAILED", b.Status)
	}
	got := rec.of(u.b.ID)
	if len(got) == 0 {
		t.Fatal("nothing published")
	}
	end := got[len(got)-1]
	if end.Step != publish.StepFailed || end.Error == "" || len(end.Error) > 200 {
		t.Errorf("end %+v, want failed with a short reason", end)
	}
	for _, s := range got[:len(got)-1] {
		if s.Step != publish.StepSealing {
			t.Errorf("%+v before the end; want sealing positions only", s)
		}
	}
	if strings.Contains(end.Error, sum(u.data)) {
		t.Errorf("reason %q names the uploaded bytes' hash", end.Error)
	}
}
