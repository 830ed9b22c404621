package health

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/wedsync/backup-replication/shared/replicate"
)

// ReasonReconcile is the detail.reason of the events health sends.
const ReasonReconcile = "HealthReconcile"

// enqueue sends the landing object's event to the provider's queue.
func (h *Handler) enqueue(ctx context.Context, provider, key string, size int64, etag string) error {
	q, ok := h.cfg.Queues[provider]
	if !ok || q.URL == "" || h.d.Queues == nil {
		return fmt.Errorf("no queue configured for provider %s", provider)
	}
	_, err := h.d.Queues.SendMessage(ctx, &sqs.SendMessageInput{
		QueueUrl:    aws.String(q.URL),
		MessageBody: aws.String(replicate.ObjectCreated(h.cfg.LandingBucket, key, size, etag, ReasonReconcile, h.d.Now())),
		MessageAttributes: map[string]sqstypes.MessageAttributeValue{
			"origin": {DataType: aws.String("String"), StringValue: aws.String("health")}},
	})
	if err != nil {
		return fmt.Errorf("queue %s: %w", queueName(q.URL), err)
	}
	return nil
}

// depth is a queue's approximate number of visible messages.
func (h *Handler) depth(ctx context.Context, url string) (int, error) {
	out, err := h.d.Queues.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages}})
	if err != nil {
		return 0, fmt.Errorf("queue %s: %w", queueName(url), err)
	}
	n, err := strconv.Atoi(out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessages)])
	if err != nil {
		return 0, fmt.Errorf("queue %s: no message count", queueName(url))
	}
	return n, nil
}

// redrive moves q's dead letters back into q: with an SQS message move
// task (returns -1: SQS moves them itself), or by receiving, sending and
// deleting them (returns how many moved).
func (h *Handler) redrive(ctx context.Context, q Queue) (int, error) {
	if n, err := h.depth(ctx, q.DLQURL); err != nil || n == 0 {
		return 0, err
	}
	if h.cfg.RedriveMode != RedriveCopy {
		err := h.moveTask(ctx, q)
		if err == nil || h.cfg.RedriveMode == RedriveMoveTask {
			return -1, err
		}
		h.log.WarnContext(ctx, "message move task refused; moving dead letters one by one", "op", "redrive",
			"queue", queueName(q.DLQURL), "error", err.Error())
	}
	return h.redriveByCopy(ctx, q)
}

func (h *Handler) moveTask(ctx context.Context, q Queue) error {
	arn := func(url string) (string, error) {
		out, err := h.d.Queues.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url),
			AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
		if err != nil {
			return "", err
		}
		return out.Attributes[string(sqstypes.QueueAttributeNameQueueArn)], nil
	}
	src, err := arn(q.DLQURL)
	if err != nil {
		return err
	}
	dst, err := arn(q.URL)
	if err != nil {
		return err
	}
	_, err = h.d.Queues.StartMessageMoveTask(ctx, &sqs.StartMessageMoveTaskInput{SourceArn: aws.String(src),
		DestinationArn: aws.String(dst)})
	return err
}

// redriveByCopy moves at most Config.RedriveMax dead letters, ten at a
// time: each is sent to the queue (body and attributes kept) before it is
// deleted, so a failure in between duplicates a message (replicate is
// idempotent) and never loses one. Stopping at the limit is an error only
// when dead letters remain (the next round moves them).
func (h *Handler) redriveByCopy(ctx context.Context, q Queue) (int, error) {
	moved := 0
	for moved < h.cfg.RedriveMax && ctx.Err() == nil {
		out, err := h.d.Queues.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(q.DLQURL),
			MaxNumberOfMessages: int32(min(10, h.cfg.RedriveMax-moved)), VisibilityTimeout: 60, MessageAttributeNames: []string{"All"}})
		if err != nil {
			return moved, fmt.Errorf("redrive %s: %w", queueName(q.DLQURL), err)
		}
		if len(out.Messages) == 0 {
			return moved, nil
		}
		batch := &sqs.SendMessageBatchInput{QueueUrl: aws.String(q.URL)}
		byID := map[string]sqstypes.Message{}
		for i, m := range out.Messages {
			id := strconv.Itoa(i)
			byID[id] = m
			batch.Entries = append(batch.Entries, sqstypes.SendMessageBatchRequestEntry{Id: aws.String(id),
				MessageBody: m.Body, MessageAttributes: m.MessageAttributes})
		}
		sent, err := h.d.Queues.SendMessageBatch(ctx, batch)
		if err != nil {
			return moved, fmt.Errorf("redrive to %s: %w", queueName(q.URL), err)
		}
		del := &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(q.DLQURL)}
		for _, ok := range sent.Successful {
			del.Entries = append(del.Entries, sqstypes.DeleteMessageBatchRequestEntry{Id: ok.Id,
				ReceiptHandle: byID[aws.ToString(ok.Id)].ReceiptHandle})
		}
		if len(del.Entries) > 0 {
			if _, err := h.d.Queues.DeleteMessageBatch(ctx, del); err != nil {
				return moved, fmt.Errorf("redrive %s: delete: %w", queueName(q.DLQURL), err)
			}
		}
		moved += len(del.Entries)
		if len(sent.Failed) > 0 {
			return moved, fmt.Errorf("redrive to %s: %d messages refused (%s)", queueName(q.URL), len(sent.Failed),
				aws.ToString(sent.Failed[0].Code))
		}
	}
	if err := ctx.Err(); err != nil {
		return moved, errors.Join(errors.New("redrive cut short"), err)
	}
	left, err := h.depth(ctx, q.DLQURL)
	switch {
	case err != nil:
		return moved, fmt.Errorf("redrive %s: moved %d messages, the limit of one run; how many remain is unknown: %w",
			queueName(q.DLQURL), moved, err)
	case left == 0:
		return moved, nil
	}
	return moved, fmt.Errorf("redrive %s: moved %d messages, the limit of one run; about %d remain for the next round",
		queueName(q.DLQURL), moved, left)
}

// queueName is the last path segment of a queue URL.
func queueName(url string) string {
	if i := strings.LastIndex(strings.TrimRight(url, "/"), "/"); i >= 0 {
		return strings.TrimRight(url, "/")[i+1:]
	}
	return url
}
