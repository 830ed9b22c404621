package health

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/wedsync/backup-replication/shared/api"
	"github.com/wedsync/backup-replication/shared/breaker"
)

// StatusReader reads the providers' status documents for the dashboard and
// the api function's GET /status and download failover. It is an
// api.HealthSource. A document older than its stale limit (the health
// function stopped running) is not trusted: the provider's breaker decides
// instead, or the provider shows as unknown.
type StatusReader struct {
	store    *Store
	names    []string
	breakers map[string]*breaker.Breaker
	stale    time.Duration
	now      func() time.Time
}

var _ api.HealthSource = (*StatusReader)(nil)

// NewStatusReader returns a reader of the status of names (in that order).
// breakers (optional) stand in for stale or missing documents; staleAfter
// 0 means DefaultStaleAfter.
func NewStatusReader(store *Store, names []string, breakers []*breaker.Breaker, staleAfter time.Duration) *StatusReader {
	if staleAfter <= 0 {
		staleAfter = DefaultStaleAfter
	}
	bs := map[string]*breaker.Breaker{}
	for _, b := range breakers {
		bs[b.Name()] = b
	}
	return &StatusReader{store: store, names: names, breakers: bs, stale: staleAfter, now: time.Now}
}

// APIHealth is the api function's health source (api.WithHealthTable): a
// StatusReader of names over the health table, with breakers standing in
// for stale or missing documents and the default stale limit.
func APIHealth(db *dynamodb.Client, table string, names []string, breakers []*breaker.Breaker) (api.HealthSource, error) {
	store, err := NewStore(db, table)
	if err != nil {
		return nil, err
	}
	return NewStatusReader(store, names, breakers, 0), nil
}

var _ api.HealthTable = APIHealth

// Status returns every provider's status document, in order; a provider
// never probed has State StateUnknown, and a stale document's State is
// StateUnknown with a Detail saying so.
func (r *StatusReader) Status(ctx context.Context) ([]ProviderStatus, error) {
	out := make([]ProviderStatus, len(r.names))
	errs := make([]error, len(r.names))
	var wg sync.WaitGroup
	for i, name := range r.names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := r.store.LoadStatus(ctx, name)
			st.Provider = name
			switch {
			case err != nil:
				errs[i] = err
				st.State = StateUnknown
			case st.Version == 0:
				st.State, st.Detail = StateUnknown, "not probed yet"
			case r.now().Sub(st.CheckedAt) > r.stale:
				st.State, st.Detail = StateUnknown, "no probe since "+st.CheckedAt.UTC().Format(time.RFC3339)
			}
			out[i] = st
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// ProviderHealth implements api.HealthSource.
func (r *StatusReader) ProviderHealth(ctx context.Context) (map[string]api.ProviderHealth, error) {
	sts, err := r.Status(ctx)
	out := make(map[string]api.ProviderHealth, len(sts))
	for _, st := range sts {
		ph := api.ProviderHealth{State: st.State, Breaker: st.Breaker, Detail: st.Detail}
		if !st.CheckedAt.IsZero() {
			t := st.CheckedAt
			ph.CheckedAt = &t
		}
		if !st.Since.IsZero() {
			t := st.Since
			ph.Since = &t
		}
		if st.State == StateUnknown {
			ph = r.fromBreaker(ctx, st.Provider, ph)
		}
		out[st.Provider] = ph
	}
	return out, err
}

// fromBreaker fills ph from the provider's breaker, when there is one.
func (r *StatusReader) fromBreaker(ctx context.Context, name string, ph api.ProviderHealth) api.ProviderHealth {
	b := r.breakers[name]
	if b == nil {
		return ph
	}
	s, err := b.State(ctx)
	if err != nil {
		return ph
	}
	ph.Breaker = s.StateName
	switch s.State {
	case breaker.StateClosed:
		ph.State = api.HealthUp
	case breaker.StateHalfOpen:
		ph.State = api.HealthDegraded
	case breaker.StateOpen:
		ph.State = api.HealthDown
	}
	if ph.Detail != "" {
		ph.Detail += "; "
	}
	ph.Detail += "from the circuit breaker (" + s.StateName + ")"
	return ph
}

// Status returns the providers' status documents (see StatusReader).
func (h *Handler) Status(ctx context.Context) ([]ProviderStatus, error) {
	bs := make([]*breaker.Breaker, 0, len(h.d.Breakers))
	for _, b := range h.d.Breakers {
		bs = append(bs, b)
	}
	r := NewStatusReader(h.d.Store, h.cfg.Providers, bs, h.cfg.StaleAfter)
	r.now = h.d.Now
	return r.Status(ctx)
}
