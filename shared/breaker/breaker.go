// Package breaker is a circuit breaker per provider whose state is shared
// by every process (every Lambda instance) through a Store, one record per
// breaker in DynamoDB.
//
// It keeps sony/gobreaker v2's semantics — Settings, Counts, ReadyToTrip,
// Timeout, MaxRequests, IsSuccessful/IsExcluded, generations, and the
// two-step Allow/done — but not its DistributedCircuitBreaker's mechanics:
// no lock is held while a request runs. State changes read the record,
// compute the transition in memory (pure functions in state.go) and write
// it back only if the record's version is still the one read, rereading on
// conflict. While half-open, each trial slot is claimed by such a write, so
// across all processes at most MaxRequests trials run at once; a claimed
// slot is a lease that expires, so a trial whose caller crashed never
// wedges the breaker. The hot path costs one read per Allow (nothing is
// written while closed) and one atomic counter update per done, conditional
// on the generation, so concurrent reports never conflict.
package breaker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"sync"
	"time"
)

// Defaults of Settings.
const (
	DefaultMaxRequests   = 1
	DefaultTimeout       = 60 * time.Second
	DefaultTrialLease    = 15 * time.Minute // the longest a Lambda invocation lives
	DefaultRecordTimeout = 5 * time.Second
	DefaultMaxConflicts  = 16
	// DefaultTripAfter is the consecutive failures the default ReadyToTrip
	// opens the breaker at.
	DefaultTripAfter = 5
)

// Settings configure a Breaker. Every process sharing a breaker should use
// the same Settings.
type Settings struct {
	// Name names the breaker and its record: the provider's name.
	Name string
	// MaxRequests is how many trials may run while half-open, and how many
	// must succeed to close it again. 0 means DefaultMaxRequests.
	MaxRequests uint32
	// Interval is how often a closed breaker clears its counts; 0 never.
	Interval time.Duration
	// Timeout is how long the breaker stays open before it lets a trial
	// through (half-open). 0 means DefaultTimeout.
	Timeout time.Duration
	// ReadyToTrip is asked after each failure while closed; true opens the
	// breaker. nil means ConsecutiveFailures >= DefaultTripAfter.
	ReadyToTrip func(Counts) bool
	// IsSuccessful says whether a reported error still counts as a
	// success. nil means DefaultIsSuccessful.
	IsSuccessful func(error) bool
	// IsExcluded says whether a reported error is not counted at all
	// (neither success nor failure). It is asked before IsSuccessful. nil
	// means DefaultIsExcluded.
	IsExcluded func(error) bool
	// OnStateChange is called in the process whose write made the change,
	// after the write, never under a lock. Record the change there (a log
	// line, a metric); alerting belongs elsewhere (the health function
	// watches State).
	OnStateChange func(name string, from, to State)
	// TrialLease bounds how long a half-open trial holds its slot when its
	// done never comes. When the request's context has a deadline, the
	// lease ends RecordTimeout after it if that is sooner. 0 means
	// DefaultTrialLease.
	TrialLease time.Duration
	// RecordTimeout bounds the write a done func makes; done uses its own
	// context (detached from the request's cancellation). 0 means
	// DefaultRecordTimeout.
	RecordTimeout time.Duration
	// MaxConflicts bounds how many times one decision is retried after
	// losing a conditional write. 0 means DefaultMaxConflicts.
	MaxConflicts int
	// Now is the clock; nil means time.Now. Tests inject theirs.
	Now func() time.Time
	// Logger receives state changes and dropped outcomes; nil discards.
	Logger *slog.Logger
}

// Validate reports every problem with s at once.
func (s Settings) Validate() error {
	var errs []error
	if s.Name == "" {
		errs = append(errs, errors.New("breaker: Name is empty"))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"Interval", s.Interval}, {"Timeout", s.Timeout}, {"TrialLease", s.TrialLease}, {"RecordTimeout", s.RecordTimeout}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("breaker %s: %s is negative (%s)", s.Name, d.name, d.v))
		}
	}
	if s.MaxConflicts < 0 {
		errs = append(errs, fmt.Errorf("breaker %s: MaxConflicts is negative (%d)", s.Name, s.MaxConflicts))
	}
	return errors.Join(errs...)
}

// DefaultReadyToTrip opens the breaker at DefaultTripAfter consecutive
// failures.
func DefaultReadyToTrip(c Counts) bool { return c.ConsecutiveFailures >= DefaultTripAfter }

// Breaker is one provider's shared circuit breaker. It is safe for
// concurrent use, and any number of processes may use the same record.
type Breaker struct {
	s     Settings
	ru    rules
	store Store
	log   *slog.Logger
}

// New returns the breaker named s.Name over store, with defaults filled in.
func New(store Store, s Settings) (*Breaker, error) {
	if store == nil {
		return nil, errors.New("breaker: nil Store")
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if s.MaxRequests == 0 {
		s.MaxRequests = DefaultMaxRequests
	}
	if s.Timeout == 0 {
		s.Timeout = DefaultTimeout
	}
	if s.ReadyToTrip == nil {
		s.ReadyToTrip = DefaultReadyToTrip
	}
	if s.IsSuccessful == nil {
		s.IsSuccessful = DefaultIsSuccessful
	}
	if s.IsExcluded == nil {
		s.IsExcluded = DefaultIsExcluded
	}
	if s.TrialLease == 0 {
		s.TrialLease = DefaultTrialLease
	}
	if s.RecordTimeout == 0 {
		s.RecordTimeout = DefaultRecordTimeout
	}
	if s.MaxConflicts == 0 {
		s.MaxConflicts = DefaultMaxConflicts
	}
	if s.Now == nil {
		s.Now = time.Now
	}
	log := s.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Breaker{
		s:     s,
		ru:    rules{maxRequests: s.MaxRequests, interval: s.Interval, timeout: s.Timeout, readyToTrip: s.ReadyToTrip},
		store: store,
		log:   log.With("provider", s.Name),
	}, nil
}

// Name returns the breaker's name.
func (b *Breaker) Name() string { return b.s.Name }

// Allow asks whether a request may run now. When the breaker refuses, err
// is a *Rejection matching ErrOpen (and ErrOpenState or
// ErrTooManyRequests). Other errors come from the Store. Otherwise the
// caller runs its request and then calls done exactly once with the
// request's error (nil on success); done records the outcome against the
// generation the request was allowed in, and ignores it when the breaker
// has moved on since. Nothing is locked between Allow and done.
func (b *Breaker) Allow(ctx context.Context) (done func(error), err error) {
	trial := newTrialID()
	for attempt := 0; ; attempt++ {
		rec, err := b.store.Load(ctx, b.s.Name)
		if err != nil {
			return nil, fmt.Errorf("breaker %s: allow: %w", b.s.Name, err)
		}
		now := b.s.Now()
		next, changes, write, t, err := allowStep(rec, now, b.ru, trial, b.lease(ctx, now))
		if err != nil {
			rej := &Rejection{Breaker: b.s.Name, Err: err}
			if next.State == StateOpen {
				rej.RetryAt = next.Expiry
			}
			return nil, rej
		}
		if !write {
			return b.doneFunc(ctx, t), nil
		}
		err = b.store.Save(ctx, next, rec.Version)
		if err == nil {
			b.notify(changes)
			return b.doneFunc(ctx, t), nil
		}
		if !errors.Is(err, ErrConflict) {
			return nil, fmt.Errorf("breaker %s: allow: %w", b.s.Name, err)
		}
		// Only a half-open trial claim writes, so losing every race means
		// other processes took the slots.
		if attempt+1 >= b.s.MaxConflicts {
			return nil, &Rejection{Breaker: b.s.Name, Err: ErrTooManyRequests}
		}
		if err := conflictPause(ctx, attempt); err != nil {
			return nil, fmt.Errorf("breaker %s: allow: %w", b.s.Name, err)
		}
	}
}

// lease is when a trial claimed at now gives its slot back if its done
// never comes.
func (b *Breaker) lease(ctx context.Context, now time.Time) time.Time {
	d := b.s.TrialLease
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl) + b.s.RecordTimeout; left < d {
			d = left
		}
	}
	return now.Add(d)
}

// doneFunc returns the done func of a request allowed under t. Only its
// first call counts.
func (b *Breaker) doneFunc(ctx context.Context, t ticket) func(error) {
	var once sync.Once
	return func(reqErr error) {
		once.Do(func() {
			o := b.classify(reqErr)
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.s.RecordTimeout)
			defer cancel()
			if err := b.record(rctx, t, o); err != nil {
				b.log.Warn("breaker outcome not recorded", "generation", t.generation, "error", err.Error())
			}
		})
	}
}

// record stores outcome o of the request allowed under t. A request
// allowed while closed is counted by one atomic Store.Count (no read, no
// conflict with other reports); a failure that makes the breaker ready to
// trip then opens it with a version-conditional write. Everything else
// (half-open trials, an interval that has ended, a record not yet stored)
// goes through the read-compute-write loop.
func (b *Breaker) record(ctx context.Context, t ticket, o Outcome) error {
	for attempt := 0; ; attempt++ {
		if t.trial == "" {
			rec, err := b.store.Count(ctx, b.s.Name, t.generation, b.s.Now(), o)
			switch {
			case err == nil && o == Failure:
				return b.trip(ctx, rec, t.generation)
			case err == nil:
				return nil
			case !errors.Is(err, ErrConflict):
				return err
			}
		}
		rec, err := b.store.Load(ctx, b.s.Name)
		if err != nil {
			return err
		}
		next, changes, write := recordStep(rec, b.s.Now(), b.ru, t, o)
		if !write {
			return nil
		}
		err = b.store.Save(ctx, next, rec.Version)
		if err == nil {
			b.notify(changes)
			return nil
		}
		if !errors.Is(err, ErrConflict) {
			return err
		}
		// Someone else wrote first (created the record, cleared the
		// interval): the atomic Count may apply now.
		if attempt+1 >= b.s.MaxConflicts {
			return fmt.Errorf("gave up after %d conflicting writes: %w", attempt+1, err)
		}
		if err := conflictPause(ctx, attempt); err != nil {
			return err
		}
	}
}

// trip opens the breaker if rec, closed in generation gen, is ready to
// trip, rereading on conflict: the counts may have moved on meanwhile.
func (b *Breaker) trip(ctx context.Context, rec Record, gen uint64) error {
	return b.update(ctx, &rec, func(r Record, now time.Time) (Record, []Change, bool) {
		return tripStep(r, now, b.ru, gen)
	})
}

// update applies step to the stored record with a version-conditional
// write, rereading and recomputing on conflict, at most MaxConflicts
// times. start, when not nil, is a fresh copy of the record to begin with
// instead of reading it. A step that returns false writes nothing.
func (b *Breaker) update(ctx context.Context, start *Record, step func(Record, time.Time) (Record, []Change, bool)) error {
	for attempt := 0; ; attempt++ {
		var rec Record
		if attempt == 0 && start != nil {
			rec = *start
		} else {
			var err error
			if rec, err = b.store.Load(ctx, b.s.Name); err != nil {
				return err
			}
		}
		next, changes, write := step(rec, b.s.Now())
		if !write {
			return nil
		}
		err := b.store.Save(ctx, next, rec.Version)
		if err == nil {
			b.notify(changes)
			return nil
		}
		if !errors.Is(err, ErrConflict) {
			return err
		}
		if attempt+1 >= b.s.MaxConflicts {
			return fmt.Errorf("gave up after %d conflicting writes: %w", attempt+1, err)
		}
		if err := conflictPause(ctx, attempt); err != nil {
			return err
		}
	}
}

// classify turns a reported error into an outcome.
func (b *Breaker) classify(err error) Outcome {
	var ig *ignored
	switch {
	case err == nil:
		return Success
	case errors.As(err, &ig), b.s.IsExcluded(err):
		return Excluded
	case b.s.IsSuccessful(err):
		return Success
	}
	return Failure
}

func (b *Breaker) notify(changes []Change) {
	for _, c := range changes {
		b.log.Info("breaker state change", "from", c.From.String(), "to", c.To.String())
		if b.s.OnStateChange != nil {
			b.s.OnStateChange(b.s.Name, c.From, c.To)
		}
	}
}

// Snapshot is a breaker's state as a dashboard shows it.
type Snapshot struct {
	Name       string    `json:"name"`
	State      State     `json:"-"`
	StateName  string    `json:"state"`
	Generation uint64    `json:"generation"`
	Counts     Counts    `json:"counts"`
	OpenedAt   time.Time `json:"openedAt,omitzero"`
	ChangedAt  time.Time `json:"changedAt,omitzero"`
	// RetryAt is, while open, when the breaker lets a trial through.
	RetryAt time.Time `json:"retryAt,omitzero"`
	// TrialsInFlight are the half-open trials running now.
	TrialsInFlight int `json:"trialsInFlight"`
}

// State reads the breaker's current state. It writes nothing: a breaker
// whose Timeout has passed shows as half-open although its record still
// says open until the next request claims a trial.
func (b *Breaker) State(ctx context.Context) (Snapshot, error) {
	rec, err := b.store.Load(ctx, b.s.Name)
	if err != nil {
		return Snapshot{}, fmt.Errorf("breaker %s: state: %w", b.s.Name, err)
	}
	r, _, _ := advance(rec, b.s.Now(), b.ru)
	s := Snapshot{Name: b.s.Name, State: r.State, StateName: r.State.String(), Generation: r.Generation,
		Counts: r.Counts, OpenedAt: r.OpenedAt, ChangedAt: r.ChangedAt, TrialsInFlight: len(r.Trials)}
	if r.State == StateOpen {
		s.RetryAt = r.Expiry
	}
	return s, nil
}

// conflictPause waits a short random time (full jitter, growing with
// attempt) before a lost write is retried, so racing writers spread out.
func conflictPause(ctx context.Context, attempt int) error {
	ceil := 2 * time.Millisecond << min(attempt, 7)
	t := time.NewTimer(mrand.N(ceil) + time.Millisecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func newTrialID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
