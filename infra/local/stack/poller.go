package stack

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/wedsync/backup-replication/infra/local/rie"
)

// poller plays one SQS event source mapping: it long-polls a queue, hands
// each batch to the function as an events.SQSEvent, deletes the messages
// the function processed, and leaves the rest to come back after their
// visibility timeout (and to the dead-letter queue after maxReceiveCount),
// as Lambda does.
type poller struct {
	sqs       *sqs.Client
	queueURL  string
	queueArn  string
	region    string
	batchSize int
	// partial: the function reports batchItemFailures (FunctionResponseTypes).
	partial bool
	wait    time.Duration
	fn      *rie.Function
	log     *slog.Logger
}

// run polls until ctx ends.
func (p *poller) run(ctx context.Context) {
	for ctx.Err() == nil {
		n := p.batchSize
		if n > 10 {
			n = 10
		}
		out, err := p.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl:                    aws.String(p.queueURL),
			MaxNumberOfMessages:         int32(n),
			WaitTimeSeconds:             int32(p.wait / time.Second),
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll},
			MessageAttributeNames:       []string{"All"},
		})
		if err != nil {
			if ctx.Err() == nil {
				p.log.Warn("receive failed", "op", "receive", "error", err.Error())
				sleep(ctx, time.Second)
			}
			continue
		}
		if len(out.Messages) == 0 {
			if p.wait == 0 {
				sleep(ctx, 200*time.Millisecond)
			}
			continue
		}
		p.deliver(ctx, out.Messages)
	}
}

// deliver invokes the function with one batch and deletes what succeeded.
func (p *poller) deliver(ctx context.Context, msgs []types.Message) {
	ev := sqsEvent(msgs, p.queueArn, p.region)
	payload, _ := json.Marshal(ev)
	start := time.Now()
	resp, err := p.fn.Invoke(ctx, payload)
	attrs := []any{"op", "invoke", "messages", len(msgs), "duration_ms", time.Since(start).Milliseconds()}
	if err != nil {
		// Not delivered (the emulator could not be reached or died): Lambda
		// retries such an invoke itself, so the batch is made visible again
		// at once rather than after the queue's visibility timeout (90 min
		// in the template), which would hold it far longer than any retry.
		if ctx.Err() == nil {
			p.log.Warn("invoke failed; the batch is returned to the queue", append(attrs, "message_ids", ids(msgs), "error", err.Error())...)
			p.release(msgs)
		}
		return
	}
	if resp.FunctionError != "" {
		// As Lambda: the batch comes back after its visibility timeout.
		p.log.Warn("function error; the batch returns to the queue", append(attrs, "message_ids", ids(msgs), "function_error", resp.FunctionError)...)
		return
	}
	failed, ok := map[string]bool{}, true
	if p.partial {
		failed, ok = batchFailures(resp.Payload, msgs)
	}
	if !ok {
		p.log.Warn("invalid batchItemFailures; the whole batch returns to the queue", attrs...)
		return
	}
	var del []types.DeleteMessageBatchRequestEntry
	for i, m := range msgs {
		if failed[aws.ToString(m.MessageId)] {
			continue
		}
		del = append(del, types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle})
	}
	if len(failed) > 0 {
		p.log.Info("partial batch failure", append(attrs, "failed", len(failed))...)
	}
	if len(del) == 0 {
		return
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if out, err := p.sqs.DeleteMessageBatch(dctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(p.queueURL), Entries: del}); err != nil {
		p.log.Warn("delete failed", "op", "delete", "error", err.Error())
	} else if len(out.Failed) > 0 {
		p.log.Warn("delete failed for some messages", "op", "delete", "failed", len(out.Failed))
	}
}

// release makes msgs visible again now (best effort: if it fails they
// return after their visibility timeout).
func (p *poller) release(msgs []types.Message) {
	entries := make([]types.ChangeMessageVisibilityBatchRequestEntry, 0, len(msgs))
	for i, m := range msgs {
		entries = append(entries, types.ChangeMessageVisibilityBatchRequestEntry{Id: aws.String(strconv.Itoa(i)),
			ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := p.sqs.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{
		QueueUrl: aws.String(p.queueURL), Entries: entries}); err != nil {
		p.log.Warn("could not return the batch to the queue", "op", "release", "error", err.Error())
	}
}

// ids lists the messages' ids, for the log.
func ids(msgs []types.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = aws.ToString(m.MessageId)
	}
	return out
}

// batchFailures reads an SQSEventResponse. As Lambda does, a response that
// is not one, or that names a message not in the batch, fails the whole
// batch (ok=false). An empty response means every message succeeded.
func batchFailures(payload []byte, msgs []types.Message) (map[string]bool, bool) {
	failed := map[string]bool{}
	if len(payload) == 0 || string(payload) == "null" {
		return failed, true
	}
	var resp events.SQSEventResponse
	if err := json.Unmarshal(payload, &resp); err != nil {
		return nil, false
	}
	ids := map[string]bool{}
	for _, m := range msgs {
		ids[aws.ToString(m.MessageId)] = true
	}
	for _, f := range resp.BatchItemFailures {
		if f.ItemIdentifier == "" || !ids[f.ItemIdentifier] {
			return nil, false
		}
		failed[f.ItemIdentifier] = true
	}
	return failed, true
}

// sqsEvent builds the event Lambda's SQS poller would send.
func sqsEvent(msgs []types.Message, queueArn, region string) events.SQSEvent {
	ev := events.SQSEvent{Records: make([]events.SQSMessage, 0, len(msgs))}
	for _, m := range msgs {
		rec := events.SQSMessage{
			MessageId:              aws.ToString(m.MessageId),
			ReceiptHandle:          aws.ToString(m.ReceiptHandle),
			Body:                   aws.ToString(m.Body),
			Md5OfBody:              aws.ToString(m.MD5OfBody),
			Md5OfMessageAttributes: aws.ToString(m.MD5OfMessageAttributes),
			Attributes:             map[string]string{},
			MessageAttributes:      map[string]events.SQSMessageAttribute{},
			EventSource:            "aws:sqs",
			EventSourceARN:         queueArn,
			AWSRegion:              region,
		}
		for k, v := range m.Attributes {
			rec.Attributes[k] = v
		}
		for k, v := range m.MessageAttributes {
			rec.MessageAttributes[k] = events.SQSMessageAttribute{
				StringValue: v.StringValue, BinaryValue: v.BinaryValue,
				DataType: aws.ToString(v.DataType),
			}
		}
		ev.Records = append(ev.Records, rec)
	}
	return ev
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// errNoFunction is returned when a caller names a function the stack does not run.
var errNoFunction = errors.New("function not running in the local stack")
