package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/wedsync/backup-replication/infra/local/apiclient"
	"github.com/wedsync/backup-replication/shared/api"
)

// malformedBodies are messages a replication queue may receive that can
// never be processed, by what is wrong with them. good is a backup of the
// organization org that does exist.
func malformedBodies(e *sharedEnv, org string, good pipelineBackup) map[string]string {
	event := func(bucket, key string, size any) string {
		b, _ := json.Marshal(map[string]any{"version": "0", "id": api.NewID(time.Now()), "detail-type": "Object Created",
			"source": "aws.s3", "detail": map[string]any{"bucket": map[string]any{"name": bucket},
				"object": map[string]any{"key": key, "size": size, "etag": "0123"}}})
		return string(b)
	}
	landing := e.Buckets.Landing
	return map[string]string{
		"not JSON":             `{"detail-type": "Object Created", "source": "aws.s3", "detail": {`,
		"JSON null":            `null`,
		"a number":             `12345`,
		"an array":             `[{"source":"aws.s3"}]`,
		"an empty object":      `{}`,
		"another event":        `{"version":"0","source":"aws.ec2","detail-type":"EC2 Instance State-change Notification","detail":{"instance-id":"i-0123","state":"stopped"}}`,
		"key outside backups/": event(landing, "uploads/"+org+"/"+good.ID, 10),
		"key climbing out":     event(landing, "backups/../../etc/passwd", 10),
		"key too deep":         event(landing, good.Key+"/extra", 10),
		"key with NUL":         event(landing, "backups/"+org+"/a\x00b", 10),
		"no size":              event(landing, good.Key, nil),
		"negative size":        event(landing, good.Key, -1),
		"size as text":         event(landing, good.Key, "ten"),
		"another bucket":       event("someone-elses-bucket", good.Key, good.Data.size),
		"unknown backup":       event(landing, "backups/"+org+"/"+api.NewID(time.Now()), 10),
		"another organization": event(landing, "backups/"+api.NewID(time.Now())+"/"+good.ID, good.Data.size),
		"200 KiB of noise":     `{"detail-type":"Object Created","source":"aws.s3","noise":"` + strings.Repeat("\\u00e9x", 200<<10/7) + `"}`,
		"deeply nested":        strings.Repeat(`{"a":`, 5000) + `1` + strings.Repeat(`}`, 5000),
	}
}

// deadLetterRun is the dead-letter scenario's first half. It is started
// as soon as the shared stack is up (startDeadLetters), because its
// messages then wait minutes in their queues (the replicate function hides
// a failed message 30 s, then 60 s, …): the waiting overlaps the tests that
// run meanwhile, and TestMalformedMessagesDeadLetter checks the outcome.
type deadLetterRun struct {
	c        *apiclient.Client
	good     pipelineBackup
	names    []string
	sent     map[string]sentBad // by message id
	goodMsgs []sentMessage
	started  time.Time
	err      error
}

// sentBad is a malformed message sent to a provider's queue.
type sentBad struct{ provider, name, body string }

// startDeadLetters registers and uploads a real backup and sends the
// malformed messages to every replication queue, half before the backup
// lands and half with its event (sent again straight to the queues, so
// that it shares their batches).
func startDeadLetters(e *sharedEnv) *deadLetterRun {
	c, org := orgClient(e)
	r := &deadLetterRun{c: c, sent: map[string]sentBad{}, started: time.Now()}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if r.good, r.err = registerBackup(ctx, c, org, 301, 2<<20+9, ""); r.err != nil {
		return r
	}
	bodies := malformedBodies(e, org, r.good)
	r.names = slices.Sorted(maps.Keys(bodies))
	sendBad := func(first bool) error {
		for i, name := range r.names {
			if (i%2 == 0) != first {
				continue
			}
			for _, p := range replicaProviders {
				id, err := e.sendID(ctx, p, bodies[name])
				if err != nil {
					return fmt.Errorf("send %q to %s: %w", name, p, err)
				}
				r.sent[id] = sentBad{p, name, bodies[name]}
			}
		}
		return nil
	}
	if r.err = sendBad(true); r.err != nil {
		return r
	}
	if r.err = r.good.upload(ctx, c); r.err != nil {
		return r
	}
	ev, err := e.sealedEvent(ctx, r.good)
	if r.err = err; err != nil {
		return r
	}
	for _, p := range replicaProviders {
		id, err := e.sendID(ctx, p, ev)
		if r.err = err; err != nil {
			return r
		}
		r.goodMsgs = append(r.goodMsgs, sentMessage{id: id, provider: p, backup: r.good.ID, what: "real"})
	}
	r.err = sendBad(false)
	return r
}

// TestMalformedMessagesDeadLetter: messages that can never be processed
// (not JSON, other events, keys outside the landing layout, unknown
// backups, huge or deeply nested bodies…) were sent to every replication
// queue, in the same batches as a real backup's event (startDeadLetters).
// Each is returned to its queue until maxReceiveCount receives and then
// sits, intact, in the provider's dead-letter queue; none is dropped or
// consumed silently, no function panics, and the real backup reaches
// PROTECTED all the same.
func TestMalformedMessagesDeadLetter(t *testing.T) {
	t.Parallel()
	e := sharedStack(t)
	r := e.deadLetters
	if r.err != nil {
		t.Fatalf("the dead-letter scenario could not start: %v", r.err)
	}
	if len(r.sent) != len(r.names)*len(replicaProviders) {
		t.Fatalf("sent %d malformed messages, want %d", len(r.sent), len(r.names)*len(replicaProviders))
	}
	if d, err := waitStatus(t, r.c, r.good.ID, 10*time.Minute, apiclient.Protected); err != nil {
		t.Errorf("the backup sharing batches with malformed messages: %v (replicas: %s)", err, replicaSummary(d))
	}
	e.waitConsumed(t, r.goodMsgs, 5*time.Minute)

	// Each malformed message ends in its provider's dead-letter queue after
	// maxReceiveCount receives.
	found := map[string]sqstypes.Message{}
	deadline := time.Now().Add(10 * time.Minute)
	for len(found) < len(r.sent) && time.Now().Before(deadline) {
		for _, p := range replicaProviders {
			for _, m := range e.receiveDLQ(t, p) {
				if _, mine := r.sent[aws.ToString(m.MessageId)]; mine {
					found[aws.ToString(m.MessageId)] = m
				}
			}
		}
		if len(found) < len(r.sent) {
			time.Sleep(5 * time.Second)
		}
	}
	for id, s := range r.sent {
		m, ok := found[id]
		switch {
		case !ok:
			// Every line naming it: the function's and the event source's.
			tried := e.Log.Find(func(l string) bool { return strings.Contains(l, id) })
			t.Errorf("%q on %s (%s) is not in the dead-letter queue; %d log lines about it, last: %s", s.name, s.provider, id,
				len(tried), truncate([]byte(lastOf(tried)), 300))
		case aws.ToString(m.Body) != s.body:
			t.Errorf("%q on %s reached the dead-letter queue altered", s.name, s.provider)
		default:
			if n, _ := strconv.Atoi(m.Attributes[string(sqstypes.MessageSystemAttributeNameApproximateReceiveCount)]); n < sharedMaxReceives {
				t.Errorf("%q on %s dead-lettered after %d receives, want %d", s.name, s.provider, n, sharedMaxReceives)
			}
		}
		// Never consumed as if it had been processed.
		if done := e.Log.Find(consumedLine(func(l string) bool { return strings.Contains(l, `"message_id":"`+id+`"`) })); len(done) > 0 {
			t.Errorf("%q on %s was consumed: %s", s.name, s.provider, truncate([]byte(done[0]), 300))
		}
	}
	e.deleteFromDLQ(t, found)
	t.Logf("%d malformed messages (%d kinds) dead-lettered on %d queues after %d receives each, %s after they were sent",
		len(found), len(r.names), len(replicaProviders), sharedMaxReceives, time.Since(r.started).Round(time.Second))
	e.requireNoCrash(t)
}

// receiveDLQ reads what a provider's dead-letter queue holds now, hiding
// each message for a few seconds.
func (e *sharedEnv) receiveDLQ(t *testing.T, provider string) []sqstypes.Message {
	t.Helper()
	var out []sqstypes.Message
	url := e.queueURL(providerQueues[provider][1])
	for range 20 {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		r, err := e.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10,
			VisibilityTimeout: 3, MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll}})
		cancel()
		if err != nil {
			t.Errorf("receive from the %s dead-letter queue: %v", provider, err)
			return out
		}
		if len(r.Messages) == 0 {
			break
		}
		out = append(out, r.Messages...)
	}
	return out
}

// deleteFromDLQ removes the test's messages from the dead-letter queues.
func (e *sharedEnv) deleteFromDLQ(t *testing.T, msgs map[string]sqstypes.Message) {
	t.Helper()
	time.Sleep(4 * time.Second) // their receipt handles are for receives whose visibility ran out: receive again
	for _, p := range replicaProviders {
		for _, m := range e.receiveDLQ(t, p) {
			if _, mine := msgs[aws.ToString(m.MessageId)]; !mine {
				continue
			}
			if _, err := e.SQS.DeleteMessage(t.Context(), &sqs.DeleteMessageInput{QueueUrl: aws.String(e.queueURL(providerQueues[p][1])),
				ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Logf("clean up the %s dead-letter queue: %v", p, err)
			}
		}
	}
}
