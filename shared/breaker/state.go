package breaker

import (
	"fmt"
	"time"
)

// State is a breaker's state.
type State int

// The three states, as in sony/gobreaker.
const (
	StateClosed   State = iota // requests pass; failures are counted
	StateHalfOpen              // up to MaxRequests trial requests pass
	StateOpen                  // requests are refused until Timeout has passed
)

var stateNames = [...]string{"closed", "half-open", "open"}

// String returns "closed", "half-open" or "open".
func (s State) String() string {
	if s >= 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", int(s))
}

// parseState is the inverse of String.
func parseState(s string) (State, error) {
	for i, n := range stateNames {
		if n == s {
			return State(i), nil
		}
	}
	return 0, fmt.Errorf("breaker: unknown state %q", s)
}

// Counts are the outcomes counted in the current generation. They are
// cleared whenever the state changes and, while closed, every Interval.
//
// Requests counts, while closed, every request whose outcome was reported
// (Allow writes nothing while closed, so the common path costs one read);
// while half-open, every trial claimed.
type Counts struct {
	Requests             uint32
	TotalSuccesses       uint32
	TotalFailures        uint32
	TotalExclusions      uint32
	ConsecutiveSuccesses uint32
	ConsecutiveFailures  uint32
}

func (c *Counts) onSuccess() {
	c.TotalSuccesses++
	c.ConsecutiveSuccesses++
	c.ConsecutiveFailures = 0
}

func (c *Counts) onFailure() {
	c.TotalFailures++
	c.ConsecutiveFailures++
	c.ConsecutiveSuccesses = 0
}

// Record is the shared state of one breaker: what the Store keeps in one
// item per provider. Every write raises Version by one. State changes are
// conditional on the Version read, so concurrent writers never overwrite
// each other; closed-state counts are atomic increments conditional on the
// Generation (Store.Count).
type Record struct {
	Name       string
	State      State
	Generation uint64 // raised on every state change and closed-interval reset
	Version    uint64 // raised on every write; 0 means never stored
	Counts     Counts
	// Expiry is, while open, when the breaker may turn half-open; while
	// closed, when the counts are next cleared (zero: never).
	Expiry time.Time
	// OpenedAt is when the breaker last opened; ChangedAt when its state
	// last changed.
	OpenedAt  time.Time
	ChangedAt time.Time
	// Trials are the half-open trial leases: trial id → lease expiry. A
	// trial whose lease has expired (its caller crashed) frees its slot.
	Trials map[string]time.Time
}

// Change is one state transition.
type Change struct {
	From, To State
}

// Outcome is what a reported result means for the breaker.
type Outcome int

// The three outcomes of an allowed request.
const (
	Success  Outcome = iota // the provider answered as it should
	Failure                 // the provider is unwell
	Excluded                // says nothing about the provider
)

// Add counts one outcome of a request allowed while closed.
func (c *Counts) Add(o Outcome) {
	c.Requests++
	switch o {
	case Excluded:
		c.TotalExclusions++
	case Success:
		c.onSuccess()
	case Failure:
		c.onFailure()
	}
}

// ticket identifies an allowed request: the generation it was allowed in
// and, while half-open, its trial lease.
type ticket struct {
	generation uint64
	trial      string
}

// rules are the resolved settings the pure transitions need.
type rules struct {
	maxRequests uint32
	interval    time.Duration
	timeout     time.Duration
	readyToTrip func(Counts) bool
}

// clone copies r, including its trial map, so transitions never alias the
// record they were given.
func (r Record) clone() Record {
	if r.Trials != nil {
		t := make(map[string]time.Time, len(r.Trials))
		for k, v := range r.Trials {
			t[k] = v
		}
		r.Trials = t
	}
	return r
}

// setState moves r to s in a new generation with cleared counts, as
// gobreaker's setState + toNewGeneration do.
func (r *Record) setState(s State, now time.Time, ru rules, changes []Change) []Change {
	if r.State != s {
		changes = append(changes, Change{From: r.State, To: s})
		r.ChangedAt = now
	}
	r.State = s
	r.newGeneration(now, ru)
	if s == StateOpen {
		r.OpenedAt = now
	}
	return changes
}

func (r *Record) newGeneration(now time.Time, ru rules) {
	r.Generation++
	r.Counts = Counts{}
	r.Trials = nil
	switch r.State {
	case StateClosed:
		r.Expiry = time.Time{}
		if ru.interval > 0 {
			r.Expiry = now.Add(ru.interval)
		}
	case StateOpen:
		r.Expiry = now.Add(ru.timeout)
	default:
		r.Expiry = time.Time{}
	}
}

// advance applies what time alone changes: a closed breaker's counts are
// cleared once its interval has passed; an open breaker turns half-open
// once its timeout has passed; expired trial leases are dropped. It returns
// whether r changed at all.
func advance(r Record, now time.Time, ru rules) (Record, []Change, bool) {
	r = r.clone()
	var changes []Change
	changed := false
	switch r.State {
	case StateClosed:
		switch {
		case !r.Expiry.IsZero() && now.After(r.Expiry):
			r.newGeneration(now, ru)
			changed = true
		case r.Expiry.IsZero() && ru.interval > 0:
			// Never stored, or Interval was configured since.
			r.Expiry = now.Add(ru.interval)
			changed = true
		}
	case StateOpen:
		if !now.Before(r.Expiry) {
			changes = r.setState(StateHalfOpen, now, ru, changes)
			changed = true
		}
	case StateHalfOpen:
		for id, until := range r.Trials {
			if !now.Before(until) {
				delete(r.Trials, id)
				changed = true
			}
		}
	}
	return r, changes, changed
}

// allowStep decides whether a request may pass at now. While half-open it
// claims a trial slot under trialID until lease; the returned write says
// whether the result must be stored for the decision to hold (true only for
// a claimed trial: a closed breaker's Allow needs no write).
func allowStep(r Record, now time.Time, ru rules, trialID string, lease time.Time) (next Record, changes []Change, write bool, t ticket, err error) {
	next, changes, _ = advance(r, now, ru)
	switch next.State {
	case StateOpen:
		return next, changes, false, ticket{}, ErrOpenState
	case StateHalfOpen:
		if uint32(len(next.Trials))+next.Counts.ConsecutiveSuccesses >= ru.maxRequests {
			return next, changes, false, ticket{}, ErrTooManyRequests
		}
		if next.Trials == nil {
			next.Trials = map[string]time.Time{}
		}
		next.Trials[trialID] = lease
		next.Counts.Requests++
		return next, changes, true, ticket{generation: next.Generation, trial: trialID}, nil
	}
	return next, changes, false, ticket{generation: next.Generation}, nil
}

// recordStep applies the outcome of a request allowed under t. Outcomes of
// an older generation, or of a trial whose lease has expired, are ignored
// (write is false): a slow call cannot flip a breaker that has moved on.
func recordStep(r Record, now time.Time, ru rules, t ticket, o Outcome) (next Record, changes []Change, write bool) {
	next, changes, _ = advance(r, now, ru)
	if next.Generation != t.generation {
		return next, changes, false
	}
	switch next.State {
	case StateClosed:
		next.Counts.Add(o)
		if o == Failure && ru.readyToTrip(next.Counts) {
			changes = next.setState(StateOpen, now, ru, changes)
		}
		return next, changes, true
	case StateHalfOpen:
		if _, ok := next.Trials[t.trial]; !ok || t.trial == "" {
			return next, changes, false
		}
		delete(next.Trials, t.trial)
		switch o {
		case Excluded:
			next.Counts.TotalExclusions++
		case Success:
			next.Counts.onSuccess()
			if next.Counts.ConsecutiveSuccesses >= ru.maxRequests {
				changes = next.setState(StateClosed, now, ru, changes)
			}
		case Failure:
			next.Counts.onFailure()
			changes = next.setState(StateOpen, now, ru, changes)
		}
		return next, changes, true
	}
	// Open in the same generation cannot happen (an open breaker allows
	// nothing), but an outcome there must change nothing.
	return next, changes, false
}

// tripStep opens r when it is still closed in generation gen and its
// counts are ready to trip: the second half of a failure counted by
// Store.Count.
func tripStep(r Record, now time.Time, ru rules, gen uint64) (Record, []Change, bool) {
	if r.State != StateClosed || r.Generation != gen || !ru.readyToTrip(r.Counts) {
		return r, nil, false
	}
	r = r.clone()
	changes := r.setState(StateOpen, now, ru, nil)
	return r, changes, true
}

// countable reports whether Store.Count may add an outcome of generation
// gen to r at now: r is closed in gen and its interval has not ended.
func countable(r Record, gen uint64, now time.Time) bool {
	return r.Version > 0 && r.State == StateClosed && r.Generation == gen && (r.Expiry.IsZero() || r.Expiry.After(now))
}
