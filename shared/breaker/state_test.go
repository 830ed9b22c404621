package breaker

import (
	"errors"
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

func testRules() rules {
	return rules{maxRequests: 1, interval: time.Minute, timeout: 30 * time.Second, readyToTrip: DefaultReadyToTrip}
}

func TestAllowStep(t *testing.T) {
	lease := t0.Add(time.Hour)
	cases := []struct {
		name      string
		rec       Record
		now       time.Time
		maxReq    uint32
		wantErr   error
		wantWrite bool
		wantState State
		wantGen   uint64
		changes   []Change
	}{
		{name: "never stored: closed, no write", rec: Record{Name: "gcs"}, now: t0,
			wantState: StateClosed},
		{name: "closed passes without a write", rec: Record{State: StateClosed, Generation: 3, Expiry: t0.Add(time.Second)}, now: t0,
			wantState: StateClosed, wantGen: 3},
		{name: "closed past its interval: new generation, still no write",
			rec: Record{State: StateClosed, Generation: 3, Expiry: t0.Add(-time.Second), Counts: Counts{ConsecutiveFailures: 4}}, now: t0,
			wantState: StateClosed, wantGen: 4},
		{name: "open before timeout refuses", rec: Record{State: StateOpen, Generation: 5, Expiry: t0.Add(time.Second)}, now: t0,
			wantErr: ErrOpenState, wantState: StateOpen, wantGen: 5},
		{name: "open past timeout claims the trial",
			rec: Record{State: StateOpen, Generation: 5, Expiry: t0}, now: t0,
			wantWrite: true, wantState: StateHalfOpen, wantGen: 6, changes: []Change{{StateOpen, StateHalfOpen}}},
		{name: "half-open with the slot taken refuses",
			rec: Record{State: StateHalfOpen, Generation: 6, Trials: map[string]time.Time{"a": t0.Add(time.Minute)}}, now: t0,
			wantErr: ErrTooManyRequests, wantState: StateHalfOpen, wantGen: 6},
		{name: "half-open with an expired lease claims again",
			rec: Record{State: StateHalfOpen, Generation: 6, Trials: map[string]time.Time{"a": t0}}, now: t0,
			wantWrite: true, wantState: StateHalfOpen, wantGen: 6},
		{name: "half-open second of two slots",
			rec: Record{State: StateHalfOpen, Generation: 6, Trials: map[string]time.Time{"a": t0.Add(time.Minute)}}, now: t0, maxReq: 2,
			wantWrite: true, wantState: StateHalfOpen, wantGen: 6},
		{name: "half-open: a finished success still holds its slot",
			rec: Record{State: StateHalfOpen, Generation: 6, Counts: Counts{ConsecutiveSuccesses: 1},
				Trials: map[string]time.Time{"a": t0.Add(time.Minute)}}, now: t0, maxReq: 2,
			wantErr: ErrTooManyRequests, wantState: StateHalfOpen, wantGen: 6},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ru := testRules()
			if c.maxReq > 0 {
				ru.maxRequests = c.maxReq
			}
			before := c.rec.clone()
			next, changes, write, tk, err := allowStep(c.rec, c.now, ru, "new", lease)
			if !errors.Is(err, c.wantErr) {
				t.Fatalf("err = %v, want %v", err, c.wantErr)
			}
			if write != c.wantWrite || next.State != c.wantState || next.Generation != c.wantGen {
				t.Fatalf("write=%v state=%v gen=%d, want write=%v state=%v gen=%d",
					write, next.State, next.Generation, c.wantWrite, c.wantState, c.wantGen)
			}
			if !slices.Equal(changes, c.changes) {
				t.Fatalf("changes = %v, want %v", changes, c.changes)
			}
			if err == nil && tk.generation != next.Generation {
				t.Fatalf("ticket generation %d, record %d", tk.generation, next.Generation)
			}
			if next.State == StateHalfOpen && err == nil {
				if tk.trial != "new" || !next.Trials["new"].Equal(lease) {
					t.Fatalf("trial not claimed: ticket %+v, trials %v", tk, next.Trials)
				}
			}
			if len(before.Trials) != len(c.rec.Trials) {
				t.Fatalf("allowStep changed the record it was given")
			}
		})
	}
}

func TestRecordStep(t *testing.T) {
	trials := func(ids ...string) map[string]time.Time {
		m := map[string]time.Time{}
		for _, id := range ids {
			m[id] = t0.Add(time.Minute)
		}
		return m
	}
	closed := func(c Counts) Record {
		return Record{State: StateClosed, Generation: 2, Counts: c, Expiry: t0.Add(time.Second)}
	}
	cases := []struct {
		name       string
		rec        Record
		tk         ticket
		o          Outcome
		maxReq     uint32
		wantWrite  bool
		wantState  State
		wantGen    uint64
		wantCounts Counts
		changes    []Change
	}{
		{name: "closed success counts", rec: closed(Counts{ConsecutiveFailures: 2}), tk: ticket{generation: 2}, o: Success,
			wantWrite: true, wantState: StateClosed, wantGen: 2,
			wantCounts: Counts{Requests: 1, TotalSuccesses: 1, ConsecutiveSuccesses: 1}},
		{name: "closed failure below threshold", rec: closed(Counts{ConsecutiveFailures: 3, TotalFailures: 3}), tk: ticket{generation: 2}, o: Failure,
			wantWrite: true, wantState: StateClosed, wantGen: 2,
			wantCounts: Counts{Requests: 1, TotalFailures: 4, ConsecutiveFailures: 4}},
		{name: "closed fifth consecutive failure opens", rec: closed(Counts{ConsecutiveFailures: 4, TotalFailures: 4}), tk: ticket{generation: 2}, o: Failure,
			wantWrite: true, wantState: StateOpen, wantGen: 3, changes: []Change{{StateClosed, StateOpen}}},
		{name: "closed exclusion counts only as excluded", rec: closed(Counts{ConsecutiveFailures: 4}), tk: ticket{generation: 2}, o: Excluded,
			wantWrite: true, wantState: StateClosed, wantGen: 2,
			wantCounts: Counts{Requests: 1, TotalExclusions: 1, ConsecutiveFailures: 4}},
		{name: "stale generation is ignored", rec: closed(Counts{ConsecutiveFailures: 4}), tk: ticket{generation: 1}, o: Failure,
			wantState: StateClosed, wantGen: 2, wantCounts: Counts{ConsecutiveFailures: 4}},
		{name: "a slow success cannot close an open breaker",
			rec: Record{State: StateOpen, Generation: 3, Expiry: t0.Add(time.Second)}, tk: ticket{generation: 2}, o: Success,
			wantState: StateOpen, wantGen: 3},
		{name: "outcome after the interval reset is ignored",
			rec: Record{State: StateClosed, Generation: 2, Expiry: t0.Add(-time.Second), Counts: Counts{ConsecutiveFailures: 4}},
			tk:  ticket{generation: 2}, o: Failure, wantState: StateClosed, wantGen: 3},
		{name: "half-open trial success closes",
			rec: Record{State: StateHalfOpen, Generation: 4, Trials: trials("a"), Counts: Counts{Requests: 1}}, tk: ticket{4, "a"}, o: Success,
			wantWrite: true, wantState: StateClosed, wantGen: 5, changes: []Change{{StateHalfOpen, StateClosed}}},
		{name: "half-open trial failure reopens",
			rec: Record{State: StateHalfOpen, Generation: 4, Trials: trials("a")}, tk: ticket{4, "a"}, o: Failure,
			wantWrite: true, wantState: StateOpen, wantGen: 5, changes: []Change{{StateHalfOpen, StateOpen}}},
		{name: "half-open excluded trial frees its slot",
			rec: Record{State: StateHalfOpen, Generation: 4, Trials: trials("a"), Counts: Counts{Requests: 1}}, tk: ticket{4, "a"}, o: Excluded,
			wantWrite: true, wantState: StateHalfOpen, wantGen: 4, wantCounts: Counts{Requests: 1, TotalExclusions: 1}},
		{name: "half-open: first of two successes stays half-open",
			rec: Record{State: StateHalfOpen, Generation: 4, Trials: trials("a", "b"), Counts: Counts{Requests: 2}}, tk: ticket{4, "a"}, o: Success, maxReq: 2,
			wantWrite: true, wantState: StateHalfOpen, wantGen: 4,
			wantCounts: Counts{Requests: 2, TotalSuccesses: 1, ConsecutiveSuccesses: 1}},
		{name: "half-open: an expired trial's outcome is ignored",
			rec: Record{State: StateHalfOpen, Generation: 4, Trials: trials("b")}, tk: ticket{4, "a"}, o: Success,
			wantState: StateHalfOpen, wantGen: 4},
		{name: "a closed-state ticket cannot act on half-open",
			rec: Record{State: StateHalfOpen, Generation: 4, Trials: trials("b")}, tk: ticket{generation: 4}, o: Failure,
			wantState: StateHalfOpen, wantGen: 4},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ru := testRules()
			if c.maxReq > 0 {
				ru.maxRequests = c.maxReq
			}
			next, changes, write := recordStep(c.rec, t0, ru, c.tk, c.o)
			if write != c.wantWrite || next.State != c.wantState || next.Generation != c.wantGen {
				t.Fatalf("write=%v state=%v gen=%d, want write=%v state=%v gen=%d",
					write, next.State, next.Generation, c.wantWrite, c.wantState, c.wantGen)
			}
			if next.Counts != c.wantCounts {
				t.Fatalf("counts = %+v, want %+v", next.Counts, c.wantCounts)
			}
			if !slices.Equal(changes, c.changes) {
				t.Fatalf("changes = %v, want %v", changes, c.changes)
			}
			if next.State == StateOpen && c.wantWrite && !next.Expiry.Equal(t0.Add(ru.timeout)) {
				t.Fatalf("open until %v, want %v", next.Expiry, t0.Add(ru.timeout))
			}
			if next.State == StateOpen && c.wantWrite && !next.OpenedAt.Equal(t0) {
				t.Fatalf("opened at %v, want %v", next.OpenedAt, t0)
			}
		})
	}
}

func TestStateString(t *testing.T) {
	for _, s := range []State{StateClosed, StateHalfOpen, StateOpen} {
		got, err := parseState(s.String())
		if err != nil || got != s {
			t.Fatalf("parseState(%q) = %v, %v", s.String(), got, err)
		}
	}
	if _, err := parseState("ajar"); err == nil {
		t.Fatal("parseState accepted an unknown state")
	}
}

func TestTripStepAndCountable(t *testing.T) {
	ru := testRules()
	closed := Record{State: StateClosed, Generation: 2, Version: 9, Counts: Counts{ConsecutiveFailures: 5}, Expiry: t0.Add(time.Second)}
	cases := []struct {
		name      string
		rec       Record
		gen       uint64
		wantTrip  bool
		countable bool
	}{
		{"ready in its generation", closed, 2, true, true},
		{"another generation", closed, 1, false, false},
		{"not ready", Record{State: StateClosed, Generation: 2, Version: 9, Counts: Counts{ConsecutiveFailures: 4}}, 2, false, true},
		{"already open", Record{State: StateOpen, Generation: 2, Version: 9, Counts: Counts{ConsecutiveFailures: 5}}, 2, false, false},
		{"interval ended", Record{State: StateClosed, Generation: 2, Version: 9, Expiry: t0}, 2, false, false},
		{"never stored", Record{}, 0, false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			next, changes, write := tripStep(c.rec, t0, ru, c.gen)
			if write != c.wantTrip || (write && (next.State != StateOpen || len(changes) != 1 || next.Generation != c.rec.Generation+1)) {
				t.Fatalf("tripStep = %v %v %v", next.State, changes, write)
			}
			if got := countable(c.rec, c.gen, t0); got != c.countable {
				t.Fatalf("countable = %v, want %v", got, c.countable)
			}
		})
	}
}
