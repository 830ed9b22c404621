package publish

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
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
	pending map[string]*item // throttled progress: the latest per provider
	order   []string         // providers in pending, first come first
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
	prov := it.msg.Provider
	if throttled {
		if _, ok := s.pending[prov]; ok {
			p.throttled.Add(1)
		} else {
			s.order = append(s.order, prov)
		}
		s.pending[prov] = it
	} else {
		if it.msg.Type == TypeBackupProgress {
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
			it := s.queue[0]
			s.queue[0] = nil
			s.queue = s.queue[1:]
			p.mu.Unlock()
			p.deliver(it)
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
	for k, s := range p.streams {
		if !s.running && len(s.queue) == 0 && len(s.pending) == 0 && !s.next.After(now) {
			delete(p.streams, k)
		}
	}
}

// deliver posts one message to each of its subscribers in parallel, through
// the shared pool of workers, and waits for all of them.
func (p *Publisher) deliver(it *item) {
	defer func() {
		p.messages.Add(1)
		if it.done != nil {
			close(it.done)
		}
	}()
	start := p.d.Now()
	log := p.log.With("op", "publish", "type", it.msg.Type)
	if it.msg.BackupID != "" {
		log = log.With("backup_id", it.msg.BackupID)
	}
	if it.msg.Provider != "" {
		log = log.With("provider", it.msg.Provider)
	}
	body, err := json.Marshal(it.msg)
	if err == nil && len(body) > MaxPayload {
		err = errors.New("payload over MaxPayload")
	}
	if err != nil {
		log.Error("message not sent", "error", err.Error(), "bytes", len(body))
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.PostTimeout)
	ids, err := p.d.Audience.Subscribers(ctx, it.msg.BackupID, it.org)
	cancel()
	if err != nil {
		log.Warn("subscribers unknown; message not sent", "error", err.Error())
		return
	}
	var wg sync.WaitGroup
	for _, id := range ids {
		p.sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-p.sem }()
			p.post(log, id, body)
		}()
	}
	wg.Wait()
	if len(ids) > 0 {
		log.Debug("published", "connections", len(ids), "bytes", len(body), "duration_ms", p.d.Now().Sub(start).Milliseconds())
	}
}

// post sends body to one connection; a connection that is gone is removed.
func (p *Publisher) post(log *slog.Logger, id string, body []byte) {
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.PostTimeout)
	defer cancel()
	_, err := p.d.Poster.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{ConnectionId: aws.String(id), Data: body})
	var gone *types.GoneException
	switch {
	case err == nil:
		p.posts.Add(1)
	case errors.As(err, &gone):
		p.gone.Add(1)
		if derr := p.d.Audience.Disconnect(ctx, id); derr != nil {
			log.Warn("gone connection not removed; it expires by TTL", "connection_id", id, "error", derr.Error())
			return
		}
		log.Info("gone connection removed", "connection_id", id)
	default:
		p.failed.Add(1)
		log.Warn("post to connection failed", "connection_id", id, "error", err.Error())
	}
}
