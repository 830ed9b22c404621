package decorate

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wedsync/backup-replication/shared/breaker"
	"github.com/wedsync/backup-replication/shared/retry"
	"github.com/wedsync/backup-replication/shared/storage"
)

// quickPolicy retries without sleeping.
func quickPolicy() retry.Policy {
	return retry.Policy{MaxAttempts: 5, Rand: func() float64 { return 0 },
		Sleep: func(ctx context.Context, d time.Duration) error { return ctx.Err() }}
}

func newBreaker(t *testing.T, tripAfter uint32) *breaker.Breaker {
	t.Helper()
	b, err := breaker.New(breaker.NewMemoryStore(), breaker.Settings{Name: "fake", Timeout: time.Hour,
		ReadyToTrip: func(c breaker.Counts) bool { return c.ConsecutiveFailures >= tripAfter }})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// logBuffer is a JSON slog destination tests can read.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// TestEveryDecoratorForwardsOptionalInterfaces checks, for each decorator
// and each combination of abilities beneath it, that storage.As finds
// Copier and Resumer exactly when the provider has them, and that calls
// through them get the decorator's behaviour (they do not bypass it).
func TestEveryDecoratorForwardsOptionalInterfaces(t *testing.T) {
	type decorator struct {
		name string
		wrap func(t *testing.T, p storage.Provider, logs *logBuffer) storage.Provider
		// applied checks that the decorator acted on calls of op.
		applied func(t *testing.T, f *fake, logs *logBuffer, op string, call func() error)
	}
	decorators := []decorator{
		{name: "WithRetry",
			wrap: func(t *testing.T, p storage.Provider, _ *logBuffer) storage.Provider {
				return WithRetry(p, quickPolicy())
			},
			applied: func(t *testing.T, f *fake, _ *logBuffer, op string, call func() error) {
				f.failNext(op, transientErr(op, "k"))
				if err := call(); err != nil || f.called(op) != 2 {
					t.Fatalf("%s through WithRetry: err %v after %d calls, want success on the 2nd", op, err, f.called(op))
				}
			}},
		{name: "WithBreaker",
			wrap: func(t *testing.T, p storage.Provider, _ *logBuffer) storage.Provider {
				return WithBreaker(p, newBreaker(t, 1))
			},
			applied: func(t *testing.T, f *fake, _ *logBuffer, op string, call func() error) {
				f.failNext(op, transientErr(op, "k"))
				if err := call(); !errors.Is(err, storage.ErrTransient) {
					t.Fatalf("%s: first call = %v, want the transient failure", op, err)
				}
				if err := call(); !errors.Is(err, breaker.ErrOpen) || f.called(op) != 1 {
					t.Fatalf("%s after the breaker opened = %v (provider called %d times), want ErrOpen without a call", op, err, f.called(op))
				}
			}},
		{name: "WithLogging",
			wrap: func(t *testing.T, p storage.Provider, logs *logBuffer) storage.Provider {
				return WithLogging(p, logs.logger(), nil)
			},
			applied: func(t *testing.T, f *fake, logs *logBuffer, op string, call func() error) {
				if err := call(); err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(logs.String(), `"op":"`+op+`"`) {
					t.Fatalf("%s not logged: %s", op, logs)
				}
			}},
		{name: "Chain",
			wrap: func(t *testing.T, p storage.Provider, logs *logBuffer) storage.Provider {
				return Chain(p, Logging(logs.logger(), nil), Breaker(newBreaker(t, 1)), Retry(quickPolicy()))
			},
			applied: func(t *testing.T, f *fake, logs *logBuffer, op string, call func() error) {
				f.failNext(op, transientErr(op, "k"))
				if err := call(); err != nil || f.called(op) != 2 {
					t.Fatalf("%s through the chain: err %v after %d calls, want success on the 2nd", op, err, f.called(op))
				}
				if !strings.Contains(logs.String(), `"op":"`+op+`"`) || !strings.Contains(logs.String(), `"msg":"provider retry"`) {
					t.Fatalf("%s through the chain not logged with its retry: %s", op, logs)
				}
			}},
	}
	inners := []struct {
		name            string
		make            func(*fake) storage.Provider
		copier, resumer bool
	}{
		{"plain", func(f *fake) storage.Provider { return f }, false, false},
		{"copier", func(f *fake) storage.Provider { return fakeCopier{f} }, true, false},
		{"resumer", func(f *fake) storage.Provider { return fakeResumer{f} }, false, true},
		{"both", func(f *fake) storage.Provider { return fakeBoth{f} }, true, true},
	}
	for _, d := range decorators {
		for _, in := range inners {
			t.Run(d.name+"/"+in.name, func(t *testing.T) {
				f, logs := newFake(), &logBuffer{}
				f.objects["backups/org/src"] = []byte("wedding photos")
				inner := in.make(f)
				p := d.wrap(t, inner, logs)
				if d.name != "Chain" {
					if u, ok := p.(storage.Unwrapper); !ok || u.Unwrap() != inner {
						t.Fatalf("Unwrap does not return the provider beneath")
					}
				}
				c, okC := storage.As[storage.Copier](p)
				r, okR := storage.As[storage.Resumer](p)
				if okC != in.copier || okR != in.resumer {
					t.Fatalf("As found Copier=%v Resumer=%v, want %v %v", okC, okR, in.copier, in.resumer)
				}
				if okC {
					if _, isInner := c.(fakeCopier); isInner {
						t.Fatal("As found the bare provider's Copier beneath the decorator")
					}
					d.applied(t, f, logs, "copy", func() error {
						_, err := c.Copy(t.Context(), storage.Locator{Key: "backups/org/src"}, "backups/org/copy", storage.PutOptions{})
						return err
					})
				}
				if okR {
					f, logs = newFake(), &logBuffer{}
					p = d.wrap(t, in.make(f), logs)
					r, _ = storage.As[storage.Resumer](p)
					d.applied(t, f, logs, "put_resumable", func() error {
						_, err := r.PutResumable(t.Context(), "backups/org/big", bytesSource("guest list"), storage.PutOptions{}, "",
							func(string) error { return nil })
						return err
					})
				}
			})
		}
	}
}

// TestChainOrder: the breaker sees one outcome per retried operation, and
// an open breaker fails fast without retrying.
func TestChainOrder(t *testing.T) {
	f := newFake()
	b := newBreaker(t, 2)
	p := Chain(f, Retry(quickPolicy()), Breaker(b)) // order of options does not matter

	f.failNext("stat", transientErr("stat", "k"), transientErr("stat", "k"))
	if _, err := p.Stat(t.Context(), "k"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Stat = %v, want not found after two retried failures", err)
	}
	for range 5 {
		f.failNext("delete", transientErr("delete", "k"))
	}
	if err := p.Delete(t.Context(), "k"); !errors.Is(err, storage.ErrTransient) || f.called("delete") != 5 {
		t.Fatalf("Delete = %v after %d calls, want the transient error after 5", err, f.called("delete"))
	}
	s, err := b.State(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if s.State != breaker.StateClosed || s.Counts.TotalFailures != 1 || s.Counts.TotalSuccesses != 1 {
		t.Fatalf("breaker saw %+v in state %v, want 1 success (the stat) and 1 failure (the whole delete)", s.Counts, s.State)
	}

	for range 5 {
		f.failNext("delete", transientErr("delete", "k"))
	}
	p.Delete(t.Context(), "k") // the second failed operation opens it
	before := f.called("delete")
	err = p.Delete(t.Context(), "k")
	if !errors.Is(err, breaker.ErrOpen) || f.called("delete") != before {
		t.Fatalf("Delete with the breaker open = %v (%d provider calls), want ErrOpen and none", err, f.called("delete")-before)
	}
	if storage.KindOf(err) != storage.Transient || storage.RetryAfterOf(err) <= 0 {
		t.Fatalf("refusal kind %v, retry after %v: want transient with the time until the trial", storage.KindOf(err), storage.RetryAfterOf(err))
	}
}

func TestChainWithNothingIsTheProvider(t *testing.T) {
	f := newFake()
	if p := Chain(f); p != storage.Provider(f) {
		t.Fatalf("Chain with no options = %T, want the provider itself", p)
	}
}
