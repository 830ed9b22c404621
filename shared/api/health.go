package api

import (
	"context"
	"sync"
	"time"

	"github.com/wedsync/backup-replication/shared/breaker"
)

// BreakerHealth is a HealthSource that reads each provider's shared
// circuit breaker (one DynamoDB read per breaker, in parallel): closed is
// up, half-open degraded, open down. A breaker that cannot be read is
// unknown.
func BreakerHealth(breakers ...*breaker.Breaker) HealthSource { return breakerHealth(breakers) }

type breakerHealth []*breaker.Breaker

// ProviderHealth implements HealthSource.
func (bh breakerHealth) ProviderHealth(ctx context.Context) (map[string]ProviderHealth, error) {
	out := make(map[string]ProviderHealth, len(bh))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, b := range bh {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ph := ProviderHealth{State: HealthUnknown}
			if s, err := b.State(ctx); err == nil {
				ph.Breaker = s.StateName
				switch s.State {
				case breaker.StateClosed:
					ph.State = HealthUp
				case breaker.StateHalfOpen:
					ph.State, ph.Detail = HealthDegraded, "recovering: trial requests only"
				case breaker.StateOpen:
					ph.State, ph.Detail = HealthDown, "circuit open after repeated failures; retry at "+s.RetryAt.UTC().Format(time.RFC3339)
				}
				if !s.ChangedAt.IsZero() {
					t := s.ChangedAt.UTC()
					ph.Since = &t
				}
			}
			mu.Lock()
			out[b.Name()] = ph
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out, nil
}
