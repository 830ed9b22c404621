package replicate

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/wedsync/backup-replication/infra/faultproxy"
	"github.com/wedsync/backup-replication/shared/breaker"
	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/retry"
	"github.com/wedsync/backup-replication/shared/storage"
)

// queue is a real SQS queue on moto whose own visibility timeout is 0, so
// that a message comes back at once unless the handler hides it.
type queue struct {
	t   *testing.T
	sqs *sqs.Client
	url string
}

func (e *env) queue() *queue {
	e.t.Helper()
	cfg, err := moto.AWSConfig(e.t.Context())
	if err != nil {
		e.t.Fatal(err)
	}
	c := sqs.NewFromConfig(cfg)
	out, err := c.CreateQueue(e.t.Context(), &sqs.CreateQueueInput{QueueName: aws.String("q-" + randomHex(6)),
		Attributes: map[string]string{"VisibilityTimeout": "0"}})
	if err != nil {
		e.t.Fatal(err)
	}
	return &queue{t: e.t, sqs: c, url: aws.ToString(out.QueueUrl)}
}

func (q *queue) send(body string) {
	q.t.Helper()
	if _, err := q.sqs.SendMessage(q.t.Context(), &sqs.SendMessageInput{QueueUrl: aws.String(q.url), MessageBody: aws.String(body)}); err != nil {
		q.t.Fatal(err)
	}
}

// receive long-polls up to wait for messages, as an event source mapping
// does, and returns them as Lambda would pass them.
func (q *queue) receive(wait time.Duration) []events.SQSMessage {
	q.t.Helper()
	out, err := q.sqs.ReceiveMessage(q.t.Context(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(q.url),
		MaxNumberOfMessages: 10, WaitTimeSeconds: int32(wait / time.Second),
		MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll},
		MessageAttributeNames:       []string{"All"}})
	if err != nil {
		q.t.Fatal(err)
	}
	var msgs []events.SQSMessage
	for _, m := range out.Messages {
		ev := events.SQSMessage{MessageId: aws.ToString(m.MessageId), ReceiptHandle: aws.ToString(m.ReceiptHandle),
			Body: aws.ToString(m.Body), Attributes: m.Attributes, MessageAttributes: map[string]events.SQSMessageAttribute{}}
		for k, v := range m.MessageAttributes {
			ev.MessageAttributes[k] = events.SQSMessageAttribute{DataType: aws.ToString(v.DataType), StringValue: v.StringValue}
		}
		msgs = append(msgs, ev)
	}
	return msgs
}

func (q *queue) delete(msg events.SQSMessage) {
	q.t.Helper()
	if _, err := q.sqs.DeleteMessage(q.t.Context(), &sqs.DeleteMessageInput{QueueUrl: aws.String(q.url),
		ReceiptHandle: aws.String(msg.ReceiptHandle)}); err != nil {
		q.t.Fatal(err)
	}
}

// clock is a settable clock for breakers.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// openBreaker returns a real breaker (in memory) that five transient
// failures have opened; its cooldown is 1 minute of clk's time.
func openBreaker(t *testing.T, name string, clk *clock) *breaker.Breaker {
	t.Helper()
	b, err := breaker.New(breaker.NewMemoryStore(), breaker.Settings{Name: name, Timeout: time.Minute, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	for range breaker.DefaultTripAfter {
		done, err := b.Allow(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		done(storage.NewError("put", name, "k", storage.Transient, errors.New("503 from the provider")))
	}
	if s, _ := b.State(t.Context()); s.State != breaker.StateOpen {
		t.Fatalf("breaker %s after %d failures: %s", name, breaker.DefaultTripAfter, s.StateName)
	}
	return b
}

// While the breaker is open the message is re-sent with a delay and the
// original consumed: the new one starts with a fresh receive count (so
// waiting never leads to the dead-letter queue), it carries the count of
// waits, and the replica is neither touched nor counted as failed.
func TestOpenBreakerParksTheMessage(t *testing.T) {
	e := newEnv(t)
	e.bucket("replica")
	q := e.queue()
	clk := &clock{t: time.Now()}
	brk := openBreaker(t, "s3", clk)
	h := e.handlerWith(e.streamingS3("replica"), func(c *Config) { c.QueueURL, c.ParkMin, c.ParkMax = q.url, time.Second, time.Second },
		func(d *Deps) { d.Gate, d.Queue, d.Now = brk, q.sqs, clk.Now })
	b := e.upload(randomBytes(1024), "")
	q.send(e.message(b, 1).Body)

	for wait := 1; wait <= 2; wait++ {
		msgs := q.receive(5 * time.Second)
		if len(msgs) != 1 {
			t.Fatalf("wait %d: %d messages in the queue, want 1", wait, len(msgs))
		}
		if got := msgs[0].Attributes["ApproximateReceiveCount"]; got != "1" {
			t.Errorf("wait %d: receive count %s, want 1 (a fresh message)", wait, got)
		}
		if failed := handle(t, h, msgs...); len(failed) != 0 {
			t.Fatalf("wait %d: the waiting message was reported failed: %v", wait, failed)
		}
		q.delete(msgs[0]) // what the event source mapping does with a consumed record
		if _, err := e.store.GetReplica(t.Context(), b.ID, "s3"); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("replica touched while the breaker was open: %v", err)
		}
	}
	msgs := q.receive(5 * time.Second)
	if len(msgs) != 1 || msgs[0].MessageAttributes[AttrWaits].StringValue == nil || *msgs[0].MessageAttributes[AttrWaits].StringValue != "2" {
		t.Fatalf("after two waits: %+v", msgs)
	}
	// The breaker lets a trial through after its cooldown: the copy is
	// made, verified, and the breaker closes.
	clk.advance(time.Minute + time.Second)
	if failed := handle(t, h, msgs...); len(failed) != 0 {
		t.Fatalf("trial failed: %v", failed)
	}
	if r := e.replica(b, "s3"); r.State != catalog.ReplicaVerified || r.Attempts != 1 {
		t.Fatalf("replica %+v", r)
	}
	if s, _ := brk.State(t.Context()); s.State != breaker.StateClosed {
		t.Errorf("breaker after a good trial: %s", s.StateName)
	}
}

// Without a queue to re-send to, a waiting message is a batch item failure
// whose visibility is the wait (it comes back; nothing is lost).
func TestOpenBreakerWithoutQueueReturnsTheMessage(t *testing.T) {
	e := newEnv(t)
	e.bucket("replica")
	clk := &clock{t: time.Now()}
	h := e.handler(e.streamingS3("replica"), nil, openBreaker(t, "s3", clk))
	b := e.upload(randomBytes(1024), "")
	msg := e.message(b, 1)
	if failed := handle(t, h, msg); !slices.Equal(failed, []string{msg.MessageId}) {
		t.Fatalf("failed %v", failed)
	}
	if _, err := e.store.GetReplica(t.Context(), b.ID, "s3"); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("replica touched while the breaker was open: %v", err)
	}
}

// A failed delivery is hidden for retry.VisibilityTimeout(receive count):
// with the queue's own visibility at 0 it would be back at once.
func TestFailedDeliveryBacksOff(t *testing.T) {
	e := newEnv(t)
	q := e.queue()
	h := e.handlerWith(e.streamingS3("never-created"), func(c *Config) {
		c.QueueURL, c.VisibilityBase, c.Retry = q.url, time.Hour, retry.Policy{MaxAttempts: 1}
	}, func(d *Deps) { d.Queue = q.sqs })
	b := e.upload(randomBytes(1024), "")
	q.send(e.message(b, 1).Body)
	msgs := q.receive(5 * time.Second)
	if len(msgs) != 1 {
		t.Fatalf("%d messages", len(msgs))
	}
	if failed := handle(t, h, msgs...); len(failed) != 1 {
		t.Fatalf("failed %v, want the message back in the queue", failed)
	}
	if again := q.receive(0); len(again) != 0 {
		t.Fatalf("the failed message is visible again at once (%d messages): its visibility was not extended", len(again))
	}
	if r := e.replica(b, "s3"); r.State != catalog.ReplicaFailed || r.Attempts != 1 {
		t.Fatalf("replica %+v", r)
	}
}

// A transient provider failure is retried within the invocation: one
// delivery, one attempt on the replica, one outcome for the breaker.
func TestTransientFailureRetriedWithinInvocation(t *testing.T) {
	e := newEnv(t)
	e.bucket("replica")
	px, err := faultproxy.Start(moto.URL, faultproxy.Options{Flavor: faultproxy.S3})
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	if err := px.Set(faultproxy.Fault{Mode: faultproxy.Error5xx, Methods: []string{"PUT"}, Count: 2}); err != nil {
		t.Fatal(err)
	}
	g := &recordingGate{}
	h := e.handlerWith(e.s3Provider("s3", "replica", px.URL), func(c *Config) {
		c.Retry = retry.Policy{Base: 5 * time.Millisecond, MaxAttempts: 4}
	}, func(d *Deps) { d.Gate = g })
	b := e.upload(randomBytes(100<<10), "")
	if failed := handle(t, h, e.message(b, 1)); len(failed) != 0 {
		t.Fatalf("failed %v; logs %v", failed, e.logs.lines())
	}
	if r := e.replica(b, "s3"); r.State != catalog.ReplicaVerified || r.Attempts != 1 {
		t.Fatalf("replica %+v", r)
	}
	if st := px.Stats(); st.Injected != 2 {
		t.Errorf("faults injected %d, want 2", st.Injected)
	}
	if len(g.outcomes) != 1 || g.outcomes[0] != nil {
		t.Errorf("the breaker heard %v, want one success", g.outcomes)
	}
	retries := 0
	for _, l := range e.logs.lines() {
		if l["op"] == "retry" {
			retries++
		}
	}
	if retries != 2 {
		t.Errorf("%d retry log lines, want 2", retries)
	}
}

func TestConfigValidateParkAndVisibility(t *testing.T) {
	err := Config{Provider: "s3", LandingBucket: "l", ParkMax: time.Hour, VisibilityBase: -time.Second}.Validate()
	if err == nil || !strings.Contains(err.Error(), "park durations") || !strings.Contains(err.Error(), "negative visibility") {
		t.Fatalf("Validate = %v", err)
	}
}
