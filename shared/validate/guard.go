package validate

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/wedsync/backup-replication/shared/breaker"
	"github.com/wedsync/backup-replication/shared/storage"
)

// DefaultRecheck is how often a Guard probes again while its provider is
// unusable.
const DefaultRecheck = time.Minute

// ErrInvalid matches every refusal of a Guard. It also matches
// breaker.ErrOpen, so a caller that waits out open breakers (the replicate
// handler parks the message and fails over to the standby) treats invalid
// credentials the same way.
var ErrInvalid error = invalid{}

type invalid struct{}

func (invalid) Error() string {
	return "provider unusable: its canary failed (credentials or configuration)"
}

// Is makes ErrInvalid match breaker.ErrOpen.
func (invalid) Is(target error) bool { return target == breaker.ErrOpen }

// Gate is what a Guard wraps and is: the replicate handler's Gate, which
// *breaker.Breaker implements.
type Gate interface {
	Allow(ctx context.Context) (done func(error), err error)
}

// GuardConfig tunes a Guard.
type GuardConfig struct {
	// Next is consulted after the Guard allows (the provider's breaker);
	// nil: nothing more.
	Next Gate
	// Recheck is the least time between probes while unusable. Default
	// DefaultRecheck.
	Recheck time.Duration
	// OnInvalid is called once each time the provider becomes unusable,
	// with the failed check (wire an alert to it). It must not block long.
	OnInvalid func(ctx context.Context, r Result)
	// Logger gets an error line each time the provider becomes unusable
	// and an info line when it is usable again; nil discards.
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Guard refuses work while its provider's check says it is unusable
// (Result.Usable), probing again at most every Recheck; a transfer refused
// as Unauthorized (after the credentials layer's own retry) makes it
// unusable too. It implements Gate.
type Guard struct {
	p   storage.Provider
	cfg GuardConfig

	mu      sync.Mutex
	last    Result
	checked time.Time
	probing chan struct{} // closed when the probe in flight ends
}

// NewGuard checks p now (the cold-start validation) and returns its Guard.
// Read the outcome with Result.
func NewGuard(ctx context.Context, p storage.Provider, cfg GuardConfig) *Guard {
	if cfg.Recheck <= 0 {
		cfg.Recheck = DefaultRecheck
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	g := &Guard{p: p, cfg: cfg, last: Result{Provider: p.Name(), OK: true}}
	g.set(ctx, g.check(ctx))
	return g
}

// Result is the last check (or the last refused transfer).
func (g *Guard) Result() Result {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.last
}

// Allow refuses with a *breaker.Rejection wrapping ErrInvalid while the
// provider is unusable (RetryAt: the next probe), probing again when
// Recheck has passed; otherwise it asks Next.
func (g *Guard) Allow(ctx context.Context) (func(error), error) {
	g.mu.Lock()
	usable, due := g.last.Usable(), g.cfg.Now().Sub(g.checked) >= g.cfg.Recheck
	g.mu.Unlock()
	if !usable && due {
		g.recheck(ctx)
		g.mu.Lock()
		usable = g.last.Usable()
		g.mu.Unlock()
	}
	if !usable {
		g.mu.Lock()
		at := g.checked.Add(g.cfg.Recheck)
		g.mu.Unlock()
		return nil, &breaker.Rejection{Breaker: "credentials:" + g.p.Name(), Err: ErrInvalid, RetryAt: at}
	}
	var next func(error)
	if g.cfg.Next != nil {
		var err error
		if next, err = g.cfg.Next.Allow(ctx); err != nil {
			return nil, err
		}
	}
	return func(err error) {
		if err != nil && storage.KindOf(err) == storage.Unauthorized {
			g.set(ctx, Result{Provider: g.p.Name(), Step: "transfer", Kind: storage.Unauthorized.String(),
				Message: message(g.p.Name(), "transfer", storage.Unauthorized), At: g.cfg.Now().UTC(), Err: err})
		}
		if next != nil {
			next(err)
		}
	}, nil
}

// recheck probes once for all callers that find the check due.
func (g *Guard) recheck(ctx context.Context) {
	g.mu.Lock()
	if ch := g.probing; ch != nil {
		g.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
		}
		return
	}
	ch := make(chan struct{})
	g.probing = ch
	g.mu.Unlock()
	r := g.check(ctx)
	g.set(ctx, r)
	g.mu.Lock()
	g.probing = nil
	g.mu.Unlock()
	close(ch)
}

func (g *Guard) check(ctx context.Context) Result {
	cctx, cancel := context.WithTimeout(ctx, DefaultTimeout)
	defer cancel()
	return probe(cctx, g.p.Name(), g.p)
}

// set records r, logging and alerting on a change of usability.
func (g *Guard) set(ctx context.Context, r Result) {
	g.mu.Lock()
	was := g.last.Usable()
	g.last, g.checked = r, g.cfg.Now()
	g.mu.Unlock()
	switch {
	case was && !r.Usable():
		errText := ""
		if r.Err != nil {
			errText = r.Err.Error()
		}
		g.cfg.Logger.ErrorContext(ctx, "provider unusable, refusing work", "provider", r.Provider, "op", "validate",
			"step", r.Step, "kind", r.Kind, "reason", r.Message, "error", errText)
		if g.cfg.OnInvalid != nil {
			g.cfg.OnInvalid(ctx, r)
		}
	case !was && r.Usable():
		g.cfg.Logger.InfoContext(ctx, "provider usable again", "provider", r.Provider, "op", "validate")
	}
}
