// Package validate checks that providers can be used before work is given
// to them: Check runs the canary probe (write, read back, delete) on every
// provider at once and reports per provider, for GET /providers/validate
// and for a function's cold start; Guard turns a failed check into a
// refusal of work (with an alert hook), so that a function whose
// credentials are invalid sends its messages back to the queue with a
// clear reason instead of failing mid-transfer.
package validate

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/wedsync/backup-replication/shared/storage"
)

// DefaultTimeout bounds a Check whose context has no deadline.
const DefaultTimeout = 20 * time.Second

// Result is one provider's check.
type Result struct {
	Provider string `json:"provider"`
	OK       bool   `json:"ok"`
	// Step is the canary step that failed (put, get, verify, delete) and
	// Kind its error kind (unauthorized, not_found, …).
	Step string `json:"step,omitempty"`
	Kind string `json:"kind,omitempty"`
	// Message says, for a person, what is wrong and what to look at. It
	// never quotes the provider's error (which may name internals).
	Message   string    `json:"message,omitempty"`
	LatencyMs int64     `json:"latencyMs"`
	At        time.Time `json:"at"`
	// Err is the underlying error, for logs; never sent to clients.
	Err error `json:"-"`
}

// Usable reports whether work should be given to the provider: true unless
// the check failed in a way that retrying cannot fix (refused credentials,
// a missing bucket, a request the provider rejects). Transient failures
// and throttling are left to the breaker.
func (r Result) Usable() bool {
	if r.OK {
		return true
	}
	switch r.Kind {
	case storage.Unauthorized.String(), storage.NotFound.String(), storage.Permanent.String():
		return false
	}
	return true
}

// Check probes every provider at once and returns one Result per
// provider, sorted by name. Without a deadline on ctx, DefaultTimeout
// applies.
func Check(ctx context.Context, providers map[string]storage.Provider) []Result {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	names := make([]string, 0, len(providers))
	for n := range providers {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]Result, len(names))
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = probe(ctx, n, providers[n])
		}()
	}
	wg.Wait()
	return out
}

// AllOK reports whether every result is OK.
func AllOK(results []Result) bool {
	for _, r := range results {
		if !r.OK {
			return false
		}
	}
	return true
}

func probe(ctx context.Context, name string, p storage.Provider) Result {
	res, err := storage.Probe(ctx, p)
	r := Result{Provider: name, OK: err == nil, Step: res.Step, Kind: res.Kind,
		LatencyMs: res.Latency.Milliseconds(), At: res.At, Err: err}
	if err != nil {
		r.Message = message(name, res.Step, storage.KindOf(err))
	}
	return r
}

// message explains a failed step without quoting the error.
func message(provider, step string, k storage.Kind) string {
	switch k {
	case storage.Unauthorized:
		return fmt.Sprintf("%s refused the canary %s: its credentials are invalid, expired or lack permission "+
			"(check the provider's secret and its policy on the %s prefix)", provider, step, storage.ProbePrefix)
	case storage.NotFound:
		return fmt.Sprintf("%s answered not found to the canary %s: the bucket does not exist or is not visible "+
			"to these credentials", provider, step)
	case storage.Permanent:
		return fmt.Sprintf("%s rejected the canary %s: check the provider's configuration", provider, step)
	case storage.Integrity:
		return fmt.Sprintf("%s returned different bytes than were written at the canary %s", provider, step)
	case storage.Throttled:
		return fmt.Sprintf("%s is throttling (canary %s): try again later", provider, step)
	}
	return fmt.Sprintf("%s did not complete the canary %s (network or provider error): try again later", provider, step)
}
