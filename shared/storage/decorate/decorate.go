// Package decorate adds cross-cutting behaviour to any storage.Provider:
// retries (WithRetry), the shared circuit breaker (WithBreaker), and logs
// and metrics (WithLogging), each a Provider wrapping a Provider with an
// Unwrap method, composed in one order by Chain (restic's backend
// decorators; STYLE.md 7).
//
// Optional abilities. Every decorator also implements storage.Copier and
// storage.Resumer when, and only when, the provider beneath it does, and
// applies its behaviour to Copy and PutResumable too (retried, guarded by
// the breaker, logged). So storage.As[storage.Copier](chain) finds the
// outermost decorator, never the bare provider underneath: a server-side
// copy cannot bypass the breaker. When the provider lacks the ability, As
// reports false as it would for the bare provider.
package decorate

import (
	"context"
	"log/slog"

	"github.com/wedsync/backup-replication/shared/breaker"
	"github.com/wedsync/backup-replication/shared/retry"
	"github.com/wedsync/backup-replication/shared/storage"
)

// Option adds one decorator to a Chain.
type Option func(*chain)

type chain struct {
	logger  *slog.Logger
	metrics Metrics
	breaker *breaker.Breaker
	policy  *retry.Policy
}

// Logging adds WithLogging(logger, m) as the outermost layer. When the
// chain also retries and the policy has no OnRetry, each retry is logged
// too (message "provider retry", with attempt and wait_ms).
func Logging(logger *slog.Logger, m Metrics) Option {
	return func(c *chain) { c.logger, c.metrics = logger, m }
}

// Breaker adds WithBreaker(b) between logging and retry.
func Breaker(b *breaker.Breaker) Option {
	return func(c *chain) { c.breaker = b }
}

// Retry adds WithRetry(policy) nearest the provider.
func Retry(policy retry.Policy) Option {
	return func(c *chain) { c.policy = &policy }
}

// Chain wraps p in the decorators opts name, always in the order
// logging → breaker → retry → p, whatever the order of opts: the breaker
// sees the outcome of a whole retried operation (one failure per operation,
// not per attempt), an open breaker fails fast without a retry, and the
// log line covers the operation as its caller saw it.
func Chain(p storage.Provider, opts ...Option) storage.Provider {
	var c chain
	for _, o := range opts {
		o(&c)
	}
	if c.policy != nil {
		pol := *c.policy
		if pol.OnRetry == nil && c.logger != nil {
			pol.OnRetry = logRetry(c.logger, p.Name())
		}
		p = WithRetry(p, pol)
	}
	if c.breaker != nil {
		p = WithBreaker(p, c.breaker)
	}
	if c.logger != nil {
		p = WithLogging(p, c.logger, c.metrics)
	}
	return p
}

// layer is what each decorator implements; expose adds the optional
// interfaces its inner provider has. copy and putResumable receive the
// ability found beneath the layer.
type layer interface {
	storage.Provider
	storage.Unwrapper
	copy(ctx context.Context, c storage.Copier, src storage.Locator, key string, opts storage.PutOptions) (storage.ObjectInfo, error)
	putResumable(ctx context.Context, r storage.Resumer, key string, src storage.Source, opts storage.PutOptions,
		state string, save func(string) error) (storage.ObjectInfo, error)
}

// expose returns l, with Copy and PutResumable methods when the provider
// beneath l has them.
func expose(l layer) storage.Provider {
	_, c := storage.As[storage.Copier](l.Unwrap())
	_, r := storage.As[storage.Resumer](l.Unwrap())
	switch {
	case c && r:
		return copierResumer{l}
	case c:
		return copier{l}
	case r:
		return resumer{l}
	}
	return l
}

type copier struct{ layer }

// Copy applies the decorator to the inner provider's Copy.
func (x copier) Copy(ctx context.Context, src storage.Locator, key string, opts storage.PutOptions) (storage.ObjectInfo, error) {
	return forwardCopy(ctx, x.layer, src, key, opts)
}

type resumer struct{ layer }

// PutResumable applies the decorator to the inner provider's PutResumable.
func (x resumer) PutResumable(ctx context.Context, key string, src storage.Source, opts storage.PutOptions, state string, save func(string) error) (storage.ObjectInfo, error) {
	return forwardResume(ctx, x.layer, key, src, opts, state, save)
}

type copierResumer struct{ layer }

// Copy applies the decorator to the inner provider's Copy.
func (x copierResumer) Copy(ctx context.Context, src storage.Locator, key string, opts storage.PutOptions) (storage.ObjectInfo, error) {
	return forwardCopy(ctx, x.layer, src, key, opts)
}

// PutResumable applies the decorator to the inner provider's PutResumable.
func (x copierResumer) PutResumable(ctx context.Context, key string, src storage.Source, opts storage.PutOptions, state string, save func(string) error) (storage.ObjectInfo, error) {
	return forwardResume(ctx, x.layer, key, src, opts, state, save)
}

func forwardCopy(ctx context.Context, l layer, src storage.Locator, key string, opts storage.PutOptions) (storage.ObjectInfo, error) {
	c, ok := storage.As[storage.Copier](l.Unwrap())
	if !ok { // cannot happen: expose checked
		return storage.ObjectInfo{}, storage.ErrCannotCopy
	}
	return l.copy(ctx, c, src, key, opts)
}

func forwardResume(ctx context.Context, l layer, key string, src storage.Source, opts storage.PutOptions, state string, save func(string) error) (storage.ObjectInfo, error) {
	r, ok := storage.As[storage.Resumer](l.Unwrap())
	if !ok { // cannot happen: expose checked
		return storage.ObjectInfo{}, storage.NewError("put", l.Name(), key, storage.Permanent, storage.ErrCannotCopy)
	}
	return l.putResumable(ctx, r, key, src, opts, state, save)
}
