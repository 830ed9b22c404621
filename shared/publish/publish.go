// Package publish pushes live events to WebSocket subscribers through API
// Gateway's management API (PostToConnection): sealing progress from the
// seal function, replica progress from the replicate functions, provider
// health and alerts from the health function. One Publisher serves all.
//
// Messages are JSON objects with a "type" (backup_sealing, backup_progress,
// replica_state, backup_status, provider_health, alert; backup_sealing is
// the seal function's), backupId and provider where they
// apply, bytes, total, percent, step and a timestamp (see Message). A
// message about a backup goes to the connections subscribed to it and to
// those of its organization subscribed to "*"; provider health and alerts
// without a backup go to every "*" subscriber.
//
// Delivery: messages are queued per backup and sent in order. What is
// queued goes out as a batch: one subscriber lookup (copying positions
// reuse it for SubscriberTTL), then one task per connection on a bounded
// pool of workers that posts the batch's messages in order, so a
// subscriber sees one backup's messages in the order they happened, and a
// backlog costs fewer lookups and waits. Copying progress is throttled per
// backup (by default one batch every 250 ms with the latest position of
// each provider; positions in between are dropped; in production each
// replicate function serves one provider, so that is at most four
// backup_progress a second per backup and provider; the seal step's
// positions are throttled the same way); every other message is sent, and
// a final state (a copy verified or failed, a seal sealed or failed) is
// waited for, within Config.FinalWait, so that a Lambda invocation does
// not freeze with it unsent. A connection API
// Gateway reports gone (410 GoneException) is removed from the store.
// Payloads are a few hundred bytes; free text is clipped, and anything
// over MaxPayload (well under API Gateway's 128 KB) is not sent.
package publish

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
)

// Defaults of Config, and the payload bound.
const (
	DefaultWorkers     = 32
	DefaultInterval    = 250 * time.Millisecond
	DefaultPostTimeout = 5 * time.Second
	DefaultFinalWait   = 5 * time.Second
	DefaultSubscribers = time.Second
	// MaxPayload bounds an encoded message (API Gateway allows 128 KB).
	MaxPayload = 32 << 10
	// maxText clips free text (errors, alert messages) in a message.
	maxText = 1 << 10
)

// Config is the publisher's behaviour; zero fields take the defaults.
type Config struct {
	// Workers bounds the PostToConnection calls in flight.
	Workers int
	// Interval is the shortest time between two batches of copying
	// progress of one backup (250 ms: at most four a second).
	Interval time.Duration
	// PostTimeout bounds one PostToConnection.
	PostTimeout time.Duration
	// FinalWait bounds how long a final state waits to be delivered.
	FinalWait time.Duration
	// SubscriberTTL is how long copying positions reuse a backup's
	// subscriber list (one Query of the connections table); every other
	// message looks its subscribers up afresh. A new subscriber may miss
	// positions for that long, never a final state.
	SubscriberTTL time.Duration
}

// Poster posts to a connection; *apigatewaymanagementapi.Client is one
// (built for the management endpoint with NewPoster).
type Poster interface {
	PostToConnection(ctx context.Context, in *apigatewaymanagementapi.PostToConnectionInput,
		optFns ...func(*apigatewaymanagementapi.Options)) (*apigatewaymanagementapi.PostToConnectionOutput, error)
}

// Audience finds subscribers and forgets connections that are gone;
// *ws.Dynamo is one (see ws.Store.Subscribers for who receives what).
type Audience interface {
	Subscribers(ctx context.Context, backupID, organizationID string) ([]string, error)
	Disconnect(ctx context.Context, connectionID string) error
}

// Deps are the publisher's ports.
type Deps struct {
	Poster   Poster   // required
	Audience Audience // required
	Logger   *slog.Logger
	Now      func() time.Time
}

// Stats count what the publisher did since it started.
type Stats struct {
	Messages  int64 // messages delivered to their subscribers (or to none)
	Posts     int64 // successful PostToConnection calls
	Gone      int64 // connections found gone and removed
	Failed    int64 // posts that failed otherwise
	Throttled int64 // progress positions replaced by a later one before sending
	Lookups   int64 // subscriber lookups in the connections table
}

// Publisher sends messages to subscribers. Build it with New; it is safe
// for concurrent use. Close it to deliver what is queued and stop.
type Publisher struct {
	cfg         Config
	d           Deps
	log         *slog.Logger
	tasks       chan func() // the worker pool's queue (see startWorkers)
	workersOnce sync.Once

	mu       sync.Mutex
	streams  map[string]*stream
	copying  map[string]bool   // backupID|provider → a COPYING state was announced
	sealing  map[string]bool   // backupID → its first sealing position was sent
	audience map[string]cached // backupID|organizationID → its subscribers
	active   int               // streams with a running sender
	idle     chan struct{}     // closed when active drops to 0
	forcing  int               // Flush calls in progress: ignore the throttle
	closed   bool

	messages, posts, gone, failed, throttled, lookups atomic.Int64
}

// cached is a subscriber list and when it was read.
type cached struct {
	ids []string
	at  time.Time
}

// New checks deps and returns a publisher.
func New(cfg Config, d Deps) (*Publisher, error) {
	if d.Poster == nil || d.Audience == nil {
		return nil, errors.New("publish: Deps.Poster and Deps.Audience are required")
	}
	if cfg.Workers < 0 || cfg.Interval < 0 || cfg.PostTimeout < 0 || cfg.FinalWait < 0 || cfg.SubscriberTTL < 0 {
		return nil, errors.New("publish: negative workers, interval or timeout")
	}
	if cfg.Workers == 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.PostTimeout == 0 {
		cfg.PostTimeout = DefaultPostTimeout
	}
	if cfg.FinalWait == 0 {
		cfg.FinalWait = DefaultFinalWait
	}
	if cfg.SubscriberTTL == 0 {
		cfg.SubscriberTTL = DefaultSubscribers
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	idle := make(chan struct{})
	close(idle)
	return &Publisher{cfg: cfg, d: d, log: d.Logger, tasks: make(chan func()),
		streams: map[string]*stream{}, copying: map[string]bool{}, sealing: map[string]bool{}, audience: map[string]cached{}, idle: idle}, nil
}

// Stats returns the counters.
func (p *Publisher) Stats() Stats {
	return Stats{Messages: p.messages.Load(), Posts: p.posts.Load(), Gone: p.gone.Load(),
		Failed: p.failed.Load(), Throttled: p.throttled.Load(), Lookups: p.lookups.Load()}
}

// Flush sends everything queued, throttled progress included, and returns
// when nothing is left or ctx ends.
func (p *Publisher) Flush(ctx context.Context) error {
	p.mu.Lock()
	p.forcing++
	for _, s := range p.streams {
		s.wakeUp()
	}
	idle := p.idle
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.forcing--
		p.mu.Unlock()
	}()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close flushes (within ctx) and refuses further messages.
func (p *Publisher) Close(ctx context.Context) error {
	err := p.Flush(ctx)
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	return err
}

// wait blocks until done is closed, for FinalWait at most.
func (p *Publisher) wait(ctx context.Context, done <-chan struct{}) {
	if done == nil {
		return
	}
	t := time.NewTimer(p.cfg.FinalWait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		p.log.WarnContext(ctx, "final state not delivered in time; it stays queued", "op", "publish",
			"duration_ms", p.cfg.FinalWait.Milliseconds())
	case <-ctx.Done():
	}
}
