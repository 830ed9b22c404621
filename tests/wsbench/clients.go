package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// received is what the clients saw, by message type.
type received struct {
	mu        sync.Mutex
	latencies map[string][]time.Duration // from the event's timestamp to receipt
	counts    map[string]int
	changed   chan struct{} // signalled (non-blocking) on every receipt
}

func newReceived() *received {
	return &received{latencies: map[string][]time.Duration{}, counts: map[string]int{}, changed: make(chan struct{}, 1)}
}

func (r *received) add(typ string, d time.Duration) {
	r.mu.Lock()
	r.latencies[typ] = append(r.latencies[typ], d)
	r.counts[typ]++
	r.mu.Unlock()
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

func (r *received) count(typ string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts[typ]
}

// take returns and forgets the latencies of typ.
func (r *received) take(typ string) []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.latencies[typ]
	r.latencies[typ] = nil
	r.counts[typ] = 0
	return out
}

// waitCount waits until n messages of typ arrived or ctx ends.
func (r *received) waitCount(ctx context.Context, typ string, n int) error {
	for r.count(typ) < n {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d %s messages arrived: %w", r.count(typ), n, typ, ctx.Err())
		case <-r.changed:
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// connectAll opens n sockets with token and subscribes each to backupID,
// at most par at a time; each socket then reads until ctx ends.
func connectAll(ctx context.Context, url, token, backupID string, n, par int, rec *received) ([]*websocket.Conn, error) {
	conns := make([]*websocket.Conn, n)
	errs := make([]error, n)
	sem := make(chan struct{}, par)
	var wg sync.WaitGroup
	// One transport for every handshake, so dialling does not exhaust
	// ephemeral ports on idle connections of a default client each.
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: par}}
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, _, err := websocket.Dial(ctx, url+"?token="+token, &websocket.DialOptions{HTTPClient: hc})
			if err != nil {
				errs[i] = err
				return
			}
			c.Write(ctx, websocket.MessageText, []byte(`{"action":"subscribe","backupId":"`+backupID+`"}`))
			_, b, err := c.Read(ctx)
			var ack struct{ Type string }
			if err != nil || json.Unmarshal(b, &ack) != nil || ack.Type != "subscribed" {
				errs[i] = fmt.Errorf("subscribe: %s %v", b, err)
				c.CloseNow()
				return
			}
			conns[i] = c
			go read(ctx, c, rec)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return conns, err
		}
	}
	return conns, nil
}

// read records each message's type and latency (now - its timestamp).
func read(ctx context.Context, c *websocket.Conn, rec *received) {
	for {
		_, b, err := c.Read(ctx)
		if err != nil {
			return
		}
		now := time.Now()
		var m struct {
			Type      string    `json:"type"`
			Timestamp time.Time `json:"timestamp"`
		}
		if json.Unmarshal(b, &m) == nil && !m.Timestamp.IsZero() {
			rec.add(m.Type, now.Sub(m.Timestamp))
		}
	}
}

// stats summarise latencies.
type stats struct {
	n                   int
	p50, p95, p99, maxD time.Duration
}

func summarise(ds []time.Duration) stats {
	if len(ds) == 0 {
		return stats{}
	}
	slices.Sort(ds)
	q := func(p float64) time.Duration { return ds[int(math.Ceil(p*float64(len(ds))))-1] }
	return stats{n: len(ds), p50: q(.50), p95: q(.95), p99: q(.99), maxD: ds[len(ds)-1]}
}

func (s stats) String() string {
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }
	return fmt.Sprintf("p50 %s · p95 %s · p99 %s · max %s (%d receipts)", ms(s.p50), ms(s.p95), ms(s.p99), ms(s.maxD), s.n)
}
