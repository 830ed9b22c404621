package health

import (
	"context"
	"sync"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/wedsync/backup-replication/infra/faultproxy"
	"github.com/wedsync/backup-replication/shared/publish"
)

// liveRecorder stands in for the WebSocket publisher (our own port; the
// publisher itself is tested through the local gateway in shared/publish).
type liveRecorder struct {
	mu      sync.Mutex
	health  []publish.ProviderHealth
	alerts  []publish.Alert
	flushes int
}

func (l *liveRecorder) ProviderHealth(_ context.Context, h publish.ProviderHealth) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.health = append(l.health, h)
}

func (l *liveRecorder) Alert(_ context.Context, a publish.Alert) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.alerts = append(l.alerts, a)
}

func (l *liveRecorder) Flush(context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.flushes++
	return nil
}

func (l *liveRecorder) last(provider string) publish.ProviderHealth {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := len(l.health) - 1; i >= 0; i-- {
		if l.health[i].Provider == provider {
			return l.health[i]
		}
	}
	return publish.ProviderHealth{}
}

func TestStatusIsPushedLive(t *testing.T) {
	w := newWorld(t, nil)
	live := &liveRecorder{}
	w.h.d.Live = live

	w.proxy["gcs"].Set(faultproxy.Fault{Mode: faultproxy.Error5xx})
	for range 2 {
		if _, err := w.h.Handle(w.ctx, events.EventBridgeEvent{}); err != nil {
			t.Fatal(err)
		}
	}
	if got := live.last("gcs"); got.State != StateDown || got.LastError == "" {
		t.Fatalf("gcs pushed as %+v after two failed rounds, want down with its error", got)
	}
	if got := live.last("s3"); got.State != StateUp || got.Latency <= 0 {
		t.Fatalf("s3 pushed as %+v, want up with a latency", got)
	}
	if len(live.alerts) != 1 || live.alerts[0].Provider != "gcs" || live.alerts[0].Severity != "critical" {
		t.Fatalf("alerts pushed while going down: %+v, want one critical for gcs", live.alerts)
	}

	w.proxy["gcs"].Pass()
	for range 3 {
		if _, err := w.h.Handle(w.ctx, events.EventBridgeEvent{}); err != nil {
			t.Fatal(err)
		}
	}
	if got := live.last("gcs"); got.State != StateUp {
		t.Fatalf("gcs pushed as %+v after three good rounds, want up", got)
	}
	if len(live.alerts) != 2 || live.alerts[1].Provider != "gcs" || live.alerts[1].Severity != "info" {
		t.Fatalf("alerts pushed: %+v, want the outage and one recovery", live.alerts)
	}
	if live.flushes != 5 {
		t.Fatalf("%d flushes in 5 invocations", live.flushes)
	}
}
