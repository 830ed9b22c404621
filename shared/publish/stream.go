package publish

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi/types"
)

// item is one message on its way.
type item struct {
	msg  Message
	org  string        // the organization the message is about ("" with no backup: everyone's "*")
	done chan struct{} // closed once delivered; nil when nobody waits
}

// stream is the queue of one backup's messages (key: the backup id; ""
// for messages about no backup). One sender goroutine drains it at a time.
type stream struct {
	key     string
	queue   []*item
	pending map[string]*item // throttled progress: the latest per provider (and of the seal step)
	order   []string         // throttle keys in pending, first come first
	next    time.Time        // earliest time of the next throttled batch
	running bool
	wake    chan struct{}
}

func (s *stream) wakeUp() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// enqueue queues it on its backup's stream. Throttled progress replaces the
// provider's pending position; any other message first releases the
// pending positions (in order, so none overtakes an older message) except
// the same provider's progress, which it supersedes.
func (p *Publisher) enqueue(it *item, throttled bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		if it.done != nil {
			close(it.done)
		}
		return
	}
	key := it.msg.BackupID
	s := p.streams[key]
	if s == nil {
		s = &stream{key: key, pending: map[string]*item{}, wake: make(chan struct{}, 1)}
		p.streams[key] = s
	}
	prov := it.msg.throttleKey()
	if throttled {
		if _, ok := s.pending[prov]; ok {
			p.throttled.Add(1)
		} else {
			s.order = append(s.order, prov)
		}
		s.pending[prov] = it
	} else {
		if it.msg.Type == TypeBackupProgress || it.msg.Type == TypeBackupSealing {
			if _, ok := s.pending[prov]; ok {
				delete(s.pending, prov)
				p.throttled.Add(1)
			}
		}
		s.release()
		s.queue = append(s.queue, it)
	}
	if !s.running {
		s.running = true
		if p.active == 0 {
			p.idle = make(chan struct{})
		}
		p.active++
		go p.run(s)
	} else {
		s.wakeUp()
	}
}

// throttleKey is what a throttled position replaces: the provider's
// earlier position, or the seal step's.
func (m Message) throttleKey() string {
	if m.Type == TypeBackupSealing {
		return "\x00seal" // no provider is named so
	}
	return m.Provider
}

// position reports whether m is a progress position (copying or
// sealing), which may reuse a cached subscriber list.
func (m Message) position() bool {
	return m.Type == TypeBackupProgress && m.Step == StepCopying || m.Type == TypeBackupSealing && m.Step == StepSealing
}

// release moves the pending positions to the queue.
func (s *stream) release() {
	for _, prov := range s.order {
		if it, ok := s.pending[prov]; ok {
			s.queue = append(s.queue, it)
		}
	}
	clear(s.pending)
	s.order = s.order[:0]
}

// run drains a stream: queued messages at once, pending progress when the
// throttle allows (or a Flush asks), then stops when the stream is empty.
func (p *Publisher) run(s *stream) {
	for {
		p.mu.Lock()
		if len(s.queue) > 0 {
			// Everything queued for the same audience goes out together.
			n := 1
			for n < len(s.queue) && n < maxBatch && s.queue[n].org == s.queue[0].org {
				n++
			}
			batch := slices.Clone(s.queue[:n])
			clear(s.queue[:n])
			s.queue = s.queue[n:]
			p.mu.Unlock()
			p.deliver(batch)
			continue
		}
		if len(s.pending) > 0 {
			wait := s.next.Sub(p.d.Now())
			if wait > 0 && p.forcing == 0 {
				p.mu.Unlock()
				t := time.NewTimer(wait)
				select {
				case <-t.C:
				case <-s.wake:
				}
				t.Stop()
				continue
			}
			s.release()
			s.next = p.d.Now().Add(p.cfg.Interval)
			p.mu.Unlock()
			continue
		}
		s.running = false
		if !s.next.After(p.d.Now()) {
			delete(p.streams, s.key) // nothing to remember: the throttle window is over
		}
		p.sweep()
		p.active--
		if p.active == 0 {
			close(p.idle)
		}
		p.mu.Unlock()
		return
	}
}

// sweep forgets idle streams whose throttle window is over. Called with
// p.mu held.
func (p *Publisher) sweep() {
	now := p.d.Now()
	for k, c := range p.audience {
		if now.Sub(c.at) >= p.cfg.SubscriberTTL {
			delete(p.audience, k)
		}
	}
	for k, s := range p.streams {
		if !s.running && len(s.queue) == 0 && len(s.pending) == 0 && !s.next.After(now) {
			delete(p.streams, k)
		}
	}
}

// startWorkers starts the pool once: Config.Workers goroutines that live
// as long as the publisher (a goroutine per post would grow a fresh stack
// through the SDK's middleware every time).
func (p *Publisher) startWorkers() {
	p.workersOnce.Do(func() {
		for range p.cfg.Workers {
			go func() {
				for task := range p.tasks {
					task()
				}
			}()
		}
	})
}

// maxBatch bounds the messages delivered together.
const maxBatch = 64

// deliver sends a batch of one stream's messages, all for the same
// audience: one subscriber lookup, then one task per connection on the
// shared pool of workers, posting the messages in order; it returns when
// every connection has them (or failed).
func (p *Publisher) deliver(batch []*item) {
	start := p.d.Now()
	first := batch[0].msg
	log := p.log.With("op", "publish")
	if first.BackupID != "" {
		log = log.With("backup_id", first.BackupID)
	}
	defer func() {
		p.messages.Add(int64(len(batch)))
		for _, it := range batch {
			if it.done != nil {
				close(it.done)
			}
		}
	}()
	bodies := make([][]byte, 0, len(batch))
	cacheable := true
	for _, it := range batch {
		body, err := json.Marshal(it.msg)
		if err == nil && len(body) > MaxPayload {
			err = errors.New("payload over MaxPayload")
		}
		if err != nil {
			log.Error("message not sent", "type", it.msg.Type, "provider", it.msg.Provider, "error", err.Error(), "bytes", len(body))
			continue
		}
		bodies = append(bodies, body)
		cacheable = cacheable && it.msg.position()
	}
	if len(bodies) == 0 {
		return
	}
	ids, err := p.subscribers(first.BackupID, batch[0].org, cacheable)
	if err != nil {
		log.Warn("subscribers unknown; messages not sent", "messages", len(bodies), "error", err.Error())
		return
	}
	p.startWorkers()
	var wg sync.WaitGroup
	wg.Add(len(ids))
	for _, id := range ids {
		p.tasks <- func() {
			defer wg.Done()
			for _, body := range bodies {
				if !p.post(log, id, body) {
					return
				}
			}
		}
	}
	wg.Wait()
	if len(ids) > 0 {
		log.Debug("published", "messages", len(bodies), "connections", len(ids), "duration_ms", p.d.Now().Sub(start).Milliseconds())
	}
}

// subscribers returns the connections of backupID (and of org's "*"):
// from the cache when cacheable (copying positions only) and read less
// than SubscriberTTL ago, else from the store (and then cached).
func (p *Publisher) subscribers(backupID, org string, cacheable bool) ([]string, error) {
	key := backupID + "|" + org
	now := p.d.Now()
	if cacheable {
		p.mu.Lock()
		c, ok := p.audience[key]
		p.mu.Unlock()
		if ok && now.Sub(c.at) < p.cfg.SubscriberTTL {
			return c.ids, nil
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.PostTimeout)
	defer cancel()
	p.lookups.Add(1)
	ids, err := p.d.Audience.Subscribers(ctx, backupID, org)
	if err == nil {
		p.mu.Lock()
		p.audience[key] = cached{ids: ids, at: now}
		p.mu.Unlock()
	}
	return ids, err
}

// forget drops a gone connection from the cached subscriber lists.
func (p *Publisher) forget(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, c := range p.audience {
		if i := slices.Index(c.ids, id); i >= 0 {
			c.ids = slices.Delete(slices.Clone(c.ids), i, i+1)
			p.audience[k] = c
		}
	}
}

// post sends body to one connection and reports whether the connection
// is still there; a connection that is gone is removed.
func (p *Publisher) post(log *slog.Logger, id string, body []byte) bool {
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.PostTimeout)
	defer cancel()
	_, err := p.d.Poster.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{ConnectionId: aws.String(id), Data: body})
	var gone *types.GoneException
	switch {
	case err == nil:
		p.posts.Add(1)
		return true
	case errors.As(err, &gone):
		p.gone.Add(1)
		p.forget(id)
		if derr := p.d.Audience.Disconnect(ctx, id); derr != nil {
			log.Warn("gone connection not removed; it expires by TTL", "connection_id", id, "error", derr.Error())
		} else {
			log.Info("gone connection removed", "connection_id", id)
		}
		return false
	default:
		p.failed.Add(1)
		log.Warn("post to connection failed", "connection_id", id, "error", err.Error())
		return true
	}
}
