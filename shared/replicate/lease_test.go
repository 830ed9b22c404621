package replicate

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/wedsync/backup-replication/infra/faultproxy"
	"github.com/wedsync/backup-replication/shared/catalog"
)

// slowS3 is a streaming S3 provider behind a fault proxy whose first PUT
// under backups/ is held for hold before it goes on.
func (e *env) slowS3(bucket string, hold time.Duration) (p *faultproxy.Server) {
	e.t.Helper()
	px, err := faultproxy.Start(moto.URL, faultproxy.Options{Flavor: faultproxy.S3})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { px.Close() })
	if err := px.Set(faultproxy.Fault{Mode: faultproxy.Stall, Methods: []string{"PUT"}, Path: "/backups/",
		For: faultproxy.Duration(hold), Count: 1}); err != nil {
		e.t.Fatal(err)
	}
	return px
}

// transfers counts the transfer lines of messageID.
func transfers(logs *lockedBuffer, messageID string) int {
	n := 0
	for _, l := range logs.lines() {
		if l["msg"] == "transfer" && l["message_id"] == messageID {
			n++
		}
	}
	return n
}

// outcomeOf is the replicate line's outcome for messageID.
func outcomeOf(logs *lockedBuffer, messageID string) string {
	for _, l := range logs.lines() {
		if l["op"] == "replicate" && l["message_id"] == messageID && l["outcome"] != nil {
			return l["outcome"].(string)
		}
	}
	return ""
}

// Two handlers (two function instances) get the same event at the same
// time, as moto's two Object Created events for one multipart completion:
// one claims and copies, the other never takes the copy over. It waits,
// parked until the lease ends (or, had it come after the copy, is a
// duplicate), and when its message comes back the copy is verified.
func TestConcurrentDeliveriesCopyOnce(t *testing.T) {
	e := newEnv(t)
	e.bucket("replica")
	q := e.queue()
	px := e.slowS3("replica", 1500*time.Millisecond)
	b := e.upload(randomBytes(256<<10), "")
	var handlers []*Handler
	for range 2 {
		handlers = append(handlers, e.handlerWith(e.s3Provider("s3", "replica", px.URL), func(c *Config) {
			c.QueueURL, c.ParkMin, c.ParkMax = q.url, time.Second, time.Second
		}, func(d *Deps) { d.Queue = q.sqs }))
	}
	msgs := []events.SQSMessage{e.message(b, 1), e.message(b, 1)}
	var wg sync.WaitGroup
	failed := make([][]string, 2)
	start := make(chan struct{})
	for i := range 2 {
		wg.Go(func() {
			<-start
			failed[i] = handle(t, handlers[i], msgs[i])
		})
	}
	close(start)
	wg.Wait()
	if len(failed[0])+len(failed[1]) != 0 {
		t.Fatalf("batch item failures %v", failed)
	}
	copies := transfers(e.logs, msgs[0].MessageId) + transfers(e.logs, msgs[1].MessageId)
	if copies != 1 {
		t.Fatalf("%d transfers for one copy: %v", copies, e.logs.lines())
	}
	r := e.replica(b, "s3")
	if r.State != catalog.ReplicaVerified || r.Attempts != 1 {
		t.Fatalf("replica %+v, want verified by one claim", r)
	}
	waiter := msgs[0].MessageId
	if transfers(e.logs, waiter) == 1 {
		waiter = msgs[1].MessageId
	}
	if got := outcomeOf(e.logs, waiter); !strings.Contains(got, "another delivery is copying") && !strings.HasPrefix(got, "duplicate") {
		t.Fatalf("the other delivery's outcome %q", got)
	}
	t.Logf("the other delivery: %s", outcomeOf(e.logs, waiter))
	if strings.Contains(outcomeOf(e.logs, waiter), "another delivery is copying") {
		back := q.receive(5 * time.Second)
		if len(back) != 1 {
			t.Fatalf("%d messages back from the wait", len(back))
		}
		if f := handle(t, handlers[0], back[0]); len(f) != 0 || !strings.HasPrefix(outcomeOf(e.logs, back[0].MessageId), "duplicate") {
			t.Fatalf("the waiting message after the copy: failed %v, outcome %q", f, outcomeOf(e.logs, back[0].MessageId))
		}
	}
	if got := e.replica(b, "s3"); got.Attempts != 1 || got.Version != r.Version {
		t.Fatalf("replica touched by the duplicate: %+v", got)
	}
}

// A claim younger than its lease keeps another delivery away (without a
// queue to park in, the message returns to the queue); a claim whose lease
// ended (its delivery crashed) is taken over and the copy made.
func TestExpiredLeaseIsTakenOver(t *testing.T) {
	e := newEnv(t)
	e.bucket("replica")
	b := e.upload(randomBytes(8<<10), "")
	claim := func(ago time.Duration) catalog.Replica {
		at := time.Now().Add(-ago).UTC()
		r := catalog.Replica{BackupID: b.ID, Provider: "s3", State: catalog.ReplicaCopying, Key: b.LandingKey, Attempts: 1, StartedAt: &at}
		if cur, err := e.store.GetReplica(t.Context(), b.ID, "s3"); err == nil {
			r.Version = cur.Version
		}
		out, err := e.store.PutReplica(t.Context(), r)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	h := e.handlerWith(e.streamingS3("replica"), func(c *Config) { c.Lease = 10 * time.Minute }, nil)

	live := claim(time.Minute)
	msg := e.message(b, 1)
	if failed := handle(t, h, msg); len(failed) != 1 {
		t.Fatalf("failed %v, want the message back while the claim is live", failed)
	}
	if got := e.replica(b, "s3"); got.Version != live.Version || transfers(e.logs, msg.MessageId) != 0 {
		t.Fatalf("live claim taken over: %+v", got)
	}

	claim(11 * time.Minute)
	msg = e.message(b, 2)
	if failed := handle(t, h, msg); len(failed) != 0 {
		t.Fatalf("failed %v: %v", failed, e.logs.lines())
	}
	if got := e.replica(b, "s3"); got.State != catalog.ReplicaVerified || got.Attempts != 2 {
		t.Fatalf("replica after taking over %+v", got)
	}
	took := false
	for _, l := range e.logs.lines() {
		took = took || (l["op"] == "claim" && l["message_id"] == msg.MessageId)
	}
	if !took {
		t.Errorf("no line saying the claim was taken over: %v", e.logs.lines())
	}
}
