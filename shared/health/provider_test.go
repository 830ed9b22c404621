package health

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/wedsync/backup-replication/infra/faultproxy"
	"github.com/wedsync/backup-replication/shared/api"
	"github.com/wedsync/backup-replication/shared/breaker"
	"github.com/wedsync/backup-replication/shared/storage"
)

// A provider that fails gets one alert once it is down (not one per
// round); when it comes back it gets one recovery alert, its dead letters
// go back to its queue, and the copies it missed are queued again.
func TestProviderDownThenUp(t *testing.T) {
	w := newWorld(t, nil)
	missed := w.backup(payload(3000), 10*time.Minute, "supabase", "s3")
	if _, err := w.sqs.SendMessage(w.ctx, &sqs.SendMessageInput{QueueUrl: aws.String(w.queues["gcs"].DLQURL),
		MessageBody: aws.String(`{"dead":"letter"}`)}); err != nil {
		t.Fatal(err)
	}
	w.proxy["gcs"].Set(faultproxy.Fault{Mode: faultproxy.Error5xx})

	want := []struct{ state, transition string }{
		{StateDegraded, ""}, {StateDown, "went_down"}, {StateDown, ""}, {StateDown, ""},
	}
	var downAlerts, dlqAlerts []sent
	for i, wt := range want {
		rep, err := w.h.Handle(w.ctx, events.EventBridgeEvent{})
		if err != nil || len(rep.Rounds) != 1 {
			t.Fatalf("handle: %v, %d rounds", err, len(rep.Rounds))
		}
		got := pick(rep.Rounds[0], "gcs")
		if got.State != wt.state || got.Transition != wt.transition || got.ProbeOK || got.ProbeKind != "transient" {
			t.Fatalf("round %d: %+v, want state %s transition %q", i+1, got, wt.state, wt.transition)
		}
		for _, other := range []string{"supabase", "s3"} {
			if s := pick(rep.Rounds[0], other).State; s != StateUp {
				t.Errorf("round %d: %s is %s", i+1, other, s)
			}
		}
		for _, a := range w.alertsSent() {
			if strings.HasPrefix(a.incident(), "dlq_nonempty:") {
				dlqAlerts = append(dlqAlerts, a)
			} else {
				downAlerts = append(downAlerts, a)
			}
		}
	}
	if len(dlqAlerts) != 1 {
		t.Errorf("%d dead-letter alerts in 4 runs, want 1", len(dlqAlerts))
	}
	if len(downAlerts) != 1 || downAlerts[0].incident() != "provider_down:gcs" || downAlerts[0].phase() != "open" {
		t.Fatalf("alerts while down: %+v; want exactly one provider_down:gcs", downAlerts)
	}
	if !strings.Contains(downAlerts[0].Message, "transient") || strings.Contains(downAlerts[0].Message, "\"error\":{") {
		t.Errorf("down alert: %s", downAlerts[0].Message)
	}
	sts, err := w.h.Status(w.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if gs := sts[2]; gs.Provider != "gcs" || gs.State != StateDown || gs.LastErrorKind != "transient" || gs.LastErrorStep != "put" || gs.ConsecutiveFailures != 4 {
		t.Errorf("gcs status while down: %+v", gs)
	}
	reader := NewStatusReader(w.store, w.cfg.Providers, nil, 0)
	if ph, _ := reader.ProviderHealth(w.ctx); ph["gcs"].State != api.HealthDown || ph["s3"].State != api.HealthUp {
		t.Errorf("health source: %+v", ph)
	}
	if w.proxy["gcs"].Injected() < 4 {
		t.Errorf("only %d faults injected", w.proxy["gcs"].Injected())
	}

	w.proxy["gcs"].Pass()
	for i := 0; i < 2; i++ {
		if got := w.round("gcs"); got.State != StateDown || !got.ProbeOK {
			t.Fatalf("good probe %d of 3 already brought it back: %+v", i+1, got)
		}
	}
	up := w.round("gcs")
	if up.State != StateUp || up.Transition != "came_up" || up.Recovery == nil {
		t.Fatalf("third good probe: %+v", up)
	}
	if up.Recovery.Redriven != 1 || up.Recovery.Reconcile.Queued != 1 || up.Error != "" {
		t.Errorf("recovery: %+v (error %q)", up.Recovery, up.Error)
	}
	recov := w.alertsSent()
	if len(recov) != 1 || recov[0].incident() != "provider_down:gcs" || recov[0].phase() != "resolved" {
		t.Fatalf("alerts on recovery: %+v", recov)
	}
	if n, _ := w.h.depth(w.ctx, w.queues["gcs"].DLQURL); n != 0 {
		t.Errorf("dead-letter queue still holds %d", n)
	}
	bodies := w.drain(w.queues["gcs"].URL)
	var queued, redriven int
	for _, b := range bodies {
		if b == `{"dead":"letter"}` {
			redriven++
			continue
		}
		queued++
		if !strings.Contains(b, missed.ID) || !strings.Contains(b, ReasonReconcile) {
			t.Errorf("queued %s", b)
		}
	}
	if queued != 1 || redriven != 1 {
		t.Errorf("gcs queue: %d reconcile events and %d redriven letters, want 1 and 1", queued, redriven)
	}
	if again := w.round("gcs"); again.Recovery != nil || again.State != StateUp {
		t.Errorf("recovery ran twice: %+v", again)
	}
	if n := len(w.alertsSent()); n != 0 {
		t.Errorf("%d more alerts after recovery", n)
	}
	hist, err := w.store.History(w.ctx, "gcs", time.Now().Add(-time.Hour), 100)
	if err != nil || len(hist) != 8 || hist[0].State != StateUp || hist[len(hist)-1].OK || hist[len(hist)-1].Kind != "transient" {
		t.Errorf("history: %d records (%v): %+v", len(hist), err, hist)
	}
}

// Real transfers failing open the breaker, and an open breaker takes the
// provider down at once even while canaries pass.
func TestOpenBreakerTakesProviderDown(t *testing.T) {
	w := newWorld(t, nil)
	w.round("s3")
	w.alertsSent()
	b := w.breakers["s3"]
	for i := 0; i < 5; i++ {
		done, err := b.Allow(w.ctx)
		if err != nil {
			t.Fatal(err)
		}
		done(storage.NewError("put", "s3", "k", storage.Transient, errors.New("503 from a real transfer")))
	}
	got := w.round("s3")
	if got.State != StateDown || got.Transition != "went_down" || !got.ProbeOK {
		t.Fatalf("round with an open breaker: %+v", got)
	}
	st, _ := w.store.LoadStatus(w.ctx, "s3")
	if st.Breaker != "open" || st.BreakerFailures != 0 || !strings.Contains(st.Detail, "circuit open") {
		t.Errorf("status: %+v", st)
	}
	if a := w.alertsSent(); len(a) != 1 || a[0].incident() != "provider_down:s3" {
		t.Errorf("alerts: %+v", a)
	}
}

// The status of a health function that stopped running is not trusted:
// the breaker decides.
func TestStaleStatusFallsBackToBreaker(t *testing.T) {
	w := newWorld(t, nil)
	w.round("s3")
	r := NewStatusReader(w.store, []string{"s3", "s3-standby"}, []*breaker.Breaker{w.breakers["s3"]}, time.Minute)
	r.now = func() time.Time { return time.Now().Add(time.Hour) }
	ph, err := r.ProviderHealth(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if ph["s3"].State != api.HealthUp || ph["s3"].Breaker != "closed" || !strings.Contains(ph["s3"].Detail, "no probe since") {
		t.Errorf("stale s3: %+v", ph["s3"])
	}
	r.now = time.Now
	ph, _ = r.ProviderHealth(context.Background())
	if ph["s3"].State != api.HealthUp || ph["s3"].CheckedAt == nil || ph["s3-standby"].State != api.HealthUnknown {
		t.Errorf("fresh: %+v", ph)
	}
}

func pick(r RoundReport, provider string) ProviderRound {
	for _, p := range r.Providers {
		if p.Provider == provider {
			return p
		}
	}
	return ProviderRound{}
}

// Without SingleRound an invocation probes twice, RoundInterval apart,
// unless its deadline leaves no time for the second round.
func TestTwoRoundsPerInvocation(t *testing.T) {
	w := newWorld(t, func(c *Config) { c.SingleRound, c.RoundInterval = false, 300*time.Millisecond })
	rep, _ := w.h.Handle(w.ctx, events.EventBridgeEvent{})
	if len(rep.Rounds) != 2 {
		t.Fatalf("%d rounds", len(rep.Rounds))
	}
	if hist, _ := w.store.History(w.ctx, "s3", time.Now().Add(-time.Minute), 10); len(hist) != 2 {
		t.Errorf("history after one invocation: %d probes", len(hist))
	}
	ctx, cancel := context.WithTimeout(w.ctx, 2*time.Second) // less than RoundInterval + ProbeTimeout
	defer cancel()
	if rep, _ := w.h.Handle(ctx, events.EventBridgeEvent{}); len(rep.Rounds) != 1 {
		t.Errorf("%d rounds with no time for a second", len(rep.Rounds))
	}
}
