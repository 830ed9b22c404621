package health

import (
	"strings"
	"testing"
	"time"

	"github.com/wedsync/backup-replication/shared/breaker"
	"github.com/wedsync/backup-replication/shared/storage"
)

// Assess's hysteresis, probe by probe: 'o' a good probe, 'x' a failed one,
// 'O' a good probe with the breaker open, 'h' a good probe with it
// half-open, 's' a good but slow probe.
func TestAssessDoesNotFlap(t *testing.T) {
	th := Thresholds{DownAfter: 2, UpAfter: 3, Slow: time.Second}
	cases := []struct {
		name, probes, states, transitions string
	}{
		{"one failure is degraded, not down", "oxoo", "uduu", "...."},
		{"down after two, up after three", "xxxoooo", "dDDDDUu", ".v...^."},
		{"a failure while recovering starts over", "xxooxooo", "dDDDDDDU", ".v.....^"},
		{"alternating never goes down", "xoxoxoxo", "dudududu", "........"},
		{"alternating never comes back", "xxoxoxox", "dDDDDDDD", ".v......"},
		{"an open breaker takes it down at once", "oOoooo", "uDDDUu", ".v..^."},
		{"no recovery while the breaker is open", "xxooOo", "dDDDDU", ".v...^"},
		{"half-open and slow are degraded", "ohs", "udd", "..."},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var st ProviderStatus
			at := time.Date(2026, 6, 14, 10, 0, 0, 0, time.UTC)
			var states, trs strings.Builder
			for _, p := range c.probes {
				obs := Observation{At: at, Probe: storage.ProbeResult{OK: p != 'x', Latency: 20 * time.Millisecond},
					Breaker: &breaker.Snapshot{State: breaker.StateClosed, StateName: "closed"}}
				switch p {
				case 'x':
					obs.Probe.Step, obs.Probe.Kind, obs.Probe.Error = "put", "transient", "gcs put: 503 token=abc123"
				case 'O':
					obs.Breaker = &breaker.Snapshot{State: breaker.StateOpen, StateName: "open"}
				case 'h':
					obs.Breaker = &breaker.Snapshot{State: breaker.StateHalfOpen, StateName: "half-open"}
				case 's':
					obs.Probe.Latency = 3 * time.Second
				}
				var tr Transition
				st, tr = Assess(st, obs, th)
				st.Version++
				states.WriteByte(map[string]byte{StateUp: 'u', StateDegraded: 'd', StateDown: 'D'}[st.State])
				if tr == CameUp {
					// U marks the round that brought it back.
					b := []byte(states.String())
					b[len(b)-1] = 'U'
					states.Reset()
					states.Write(b)
				}
				trs.WriteByte(map[Transition]byte{NoChange: '.', WentDown: 'v', CameUp: '^'}[tr])
				at = at.Add(30 * time.Second)
			}
			if states.String() != c.states || trs.String() != c.transitions {
				t.Errorf("probes %s: states %s transitions %s; want %s %s", c.probes, states.String(), trs.String(), c.states, c.transitions)
			}
		})
	}
}

func TestAssessKeepsTheLastErrorSanitised(t *testing.T) {
	th := Thresholds{DownAfter: 2, UpAfter: 3}
	at := time.Now()
	st, _ := Assess(ProviderStatus{}, Observation{At: at, Probe: storage.ProbeResult{Step: "get", Kind: "unauthorized",
		Error: "supabase get: unauthorized: Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiYW5vbiJ9.c2lnbmF0dXJl"}}, th)
	st, _ = Assess(st, Observation{At: at.Add(time.Minute), Probe: storage.ProbeResult{OK: true}}, th)
	if st.LastErrorKind != "unauthorized" || st.LastErrorStep != "get" || st.LastErrorAt == nil || !st.LastErrorAt.Equal(at.UTC()) {
		t.Errorf("last error: %+v", st)
	}
	if strings.Contains(st.LastError, "eyJ") {
		t.Errorf("token kept: %s", st.LastError)
	}
	if st.Since.IsZero() || st.State != StateUp {
		t.Errorf("status: %+v", st)
	}
}
