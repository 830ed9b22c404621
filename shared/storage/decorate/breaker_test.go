package decorate

import (
	"bytes"
	"context"
	"errors"
	"io"
	"syscall"
	"testing"
	"time"

	"github.com/wedsync/backup-replication/shared/breaker"
	"github.com/wedsync/backup-replication/shared/storage"
)

func mustBreakerState(t *testing.T, b *breaker.Breaker) breaker.Snapshot {
	t.Helper()
	s, err := b.State(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A source that fails (the landing bucket hiccups) says nothing about the
// provider being written to.
func TestBreakerIgnoresSourceFailures(t *testing.T) {
	f := newFake()
	b := newBreaker(t, 1)
	p := WithBreaker(f, b)
	landingDown := storage.NewError("get", "landing", "backups/org/b1", storage.Transient, syscall.ECONNRESET)
	for range 3 {
		src := io.MultiReader(bytes.NewReader(contract[:10]), failing{landingDown})
		_, err := p.Put(t.Context(), "backups/org/b1", src, int64(len(contract)), storage.PutOptions{SHA256: sum(contract)})
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("Put = %v, want the source's error", err)
		}
	}
	if s := mustBreakerState(t, b); s.State != breaker.StateClosed || s.Counts.TotalExclusions != 3 {
		t.Fatalf("breaker %v with %+v, want closed with 3 exclusions", s.State, s.Counts)
	}
	// The same failure from the provider itself does count.
	f.failNext("put", transientErr("put", "k"))
	p.Put(t.Context(), "backups/org/b1", bytes.NewReader(contract), int64(len(contract)), storage.PutOptions{SHA256: sum(contract)})
	if s := mustBreakerState(t, b); s.State != breaker.StateOpen {
		t.Fatalf("breaker %v after a provider failure, want open", s.State)
	}
}

func TestBreakerCountsAGetWhenItsBodyCloses(t *testing.T) {
	f := newFake()
	f.objects["backups/org/b1"] = contract
	b := newBreaker(t, 1)
	p := WithBreaker(f, b)
	f.bodyErr = syscall.ECONNRESET // the connection drops mid-body
	rc, err := p.Get(t.Context(), "backups/org/b1", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(rc); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read = %v", err)
	}
	if s := mustBreakerState(t, b); s.State != breaker.StateClosed || s.Counts.Requests != 0 {
		t.Fatalf("outcome counted before Close: %v %+v", s.State, s.Counts)
	}
	rc.Close()
	rc.Close()
	if s := mustBreakerState(t, b); s.State != breaker.StateOpen {
		t.Fatalf("breaker %v after a broken body, want open", s.State)
	}
}

func TestBreakerIgnoresCallerErrors(t *testing.T) {
	f := newFake()
	f.objects["backups/org/b1"] = contract
	b := newBreaker(t, 1)
	p := WithBreaker(fakeCopier{f}, b)
	stop := storage.NewError("put", "gcs", "x", storage.Transient, errors.New("another provider is down"))
	if err := p.List(t.Context(), "backups/", func(storage.ObjectInfo) error { return stop }); err != stop {
		t.Fatalf("List = %v, want fn's error", err)
	}
	c, _ := storage.As[storage.Copier](p)
	if _, err := c.Copy(t.Context(), storage.Locator{Key: "elsewhere"}, "k", storage.PutOptions{}); !errors.Is(err, storage.ErrCannotCopy) {
		t.Fatalf("Copy = %v, want ErrCannotCopy", err)
	}
	// The caller cancelled mid-request; the provider called it transient.
	f.failNext("stat", storage.NewError("stat", "fake", "k", storage.Transient, context.Canceled))
	p.Stat(t.Context(), "backups/org/b1")
	if s := mustBreakerState(t, b); s.State != breaker.StateClosed || s.Counts.TotalExclusions != 3 {
		t.Fatalf("breaker %v with %+v, want closed with 3 exclusions", s.State, s.Counts)
	}
}

// brokenStore is a breaker Store whose table cannot be reached.
type brokenStore struct{}

func (brokenStore) Load(context.Context, string) (breaker.Record, error) {
	return breaker.Record{}, errors.New("dynamodb: connection refused")
}
func (brokenStore) Save(context.Context, breaker.Record, uint64) error {
	return errors.New("dynamodb: connection refused")
}
func (brokenStore) Count(context.Context, string, uint64, time.Time, breaker.Outcome) (breaker.Record, error) {
	return breaker.Record{}, errors.New("dynamodb: connection refused")
}

func TestBreakerStoreDownIsTransientNotOpen(t *testing.T) {
	f := newFake()
	b, err := breaker.New(brokenStore{}, breaker.Settings{Name: "fake"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = WithBreaker(f, b).Stat(t.Context(), "k")
	if !errors.Is(err, storage.ErrTransient) || errors.Is(err, breaker.ErrOpen) || f.called("stat") != 0 {
		t.Fatalf("Stat with the breaker store down = %v (%d calls), want transient, not ErrOpen, no call", err, f.called("stat"))
	}
}

// The breaker's reader wrapper keeps io.Seeker, so retry beneath it still
// replays a seekable source.
func TestBreakerKeepsSeekerForRetry(t *testing.T) {
	f := newFake()
	p := Chain(f, Breaker(newBreaker(t, 5)), Retry(quickPolicy()))
	f.failNext("put", transientErr("put", "k"))
	_, err := p.Put(t.Context(), "backups/org/b1", bytes.NewReader(contract), int64(len(contract)), storage.PutOptions{SHA256: sum(contract)})
	if err != nil || f.called("put") != 2 || !bytes.Equal(f.objects["backups/org/b1"], contract) {
		t.Fatalf("Put = %v after %d calls", err, f.called("put"))
	}
}
