package replicate

// The offline queue: how a message waits for its provider.
//
// SQS counts every receive of a message, and the queue's redrive policy
// dead-letters it after maxReceiveCount receives. A message whose
// provider's breaker is open is received again and again while it waits;
// returned to the queue with a longer visibility timeout it would still be
// dead-lettered after maxReceiveCount waits, however healthy it is, and an
// outage longer than the sum of those timeouts would empty the queue into
// the dead-letter queue. SQS cannot be told not to count a receive, so two
// ways remain: a maxReceiveCount high enough to outlast any outage plus a
// redrive when the provider comes back, or a fresh message.
//
// We re-send. A message refused by an open breaker is sent again to the
// same queue, body and attributes unchanged, with DelaySeconds set to the
// breaker's RetryAfter (plus jitter, at least Config.ParkMin, at most
// Config.ParkMax ≤ 900 s); only once SendMessage has succeeded is the
// original consumed (left out of BatchItemFailures, so the event source
// mapping deletes it). The new message starts with a receive count of
// zero, so:
//   - waiting never counts towards the dead-letter queue, however long the
//     outage: maxReceiveCount keeps its meaning ("this message failed N
//     times"), and the template's small default (8) stays right;
//   - the message is never in the dead-letter queue because of an outage,
//     so recovery does not depend on a redrive (the health function still
//     redrives what did fail N times, after a provider comes back);
//   - the retention clock restarts, so an outage longer than the queue's
//     retention period (14 days) loses nothing either.
//
// The cost: one SendMessage per wait (sqs:SendMessage on the function's own
// queue), and a crash between the send and the delete leaves two messages
// for one copy, which replication absorbs (a delivery of a verified copy is
// a duplicate and is consumed). When the send fails the message is returned
// as a batch item failure whose visibility timeout is the wait: it then
// counts one receive, as before. Waits carry a message attribute
// (AttrWaits) counting them, for logs.
//
// A message that failed (the provider answered, the catalog was
// unreachable, the breaker's record unreadable) is a batch item failure
// whose visibility timeout grows with its receive count,
// retry.VisibilityTimeout(receiveCount, VisibilityBase, VisibilityLimit),
// set with ChangeMessageVisibility on its receipt handle.

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/wedsync/backup-replication/shared/breaker"
	"github.com/wedsync/backup-replication/shared/retry"
)

// AttrWaits is the message attribute (Number) counting how many times a
// message was re-sent to wait for its provider.
const AttrWaits = "replicate-waits"

// maxAttributes is SQS's limit of message attributes per message.
const maxAttributes = 10

// QueueAPI is the part of the SQS client the handler uses on its own
// queue; *sqs.Client implements it.
type QueueAPI interface {
	ChangeMessageVisibility(ctx context.Context, in *sqs.ChangeMessageVisibilityInput, opts ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error)
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, opts ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
}

// refusal reports whether err is a breaker's refusal and, when the breaker
// said when it will let a trial through, how long from now that is.
func refusal(err error, now time.Time) (time.Duration, bool) {
	if !errors.Is(err, breaker.ErrOpen) {
		return 0, false
	}
	var rej *breaker.Rejection
	if errors.As(err, &rej) && !rej.RetryAt.IsZero() {
		return max(rej.RetryAt.Sub(now), 0), true
	}
	return 0, true
}

// parkDelay is how long a waiting message stays away: the breaker's wait,
// at least ParkMin, plus up to a quarter more of jitter so that the
// messages of one outage do not all come back at the same second, at most
// ParkMax.
func (h *Handler) parkDelay(wait time.Duration) time.Duration {
	d := max(wait, h.cfg.ParkMin)
	d += time.Duration(rand.Int64N(int64(d/4) + 1))
	return min(d, h.cfg.ParkMax)
}

// dispose acts on a record's outcome and reports whether the record is
// consumed (false: list it in BatchItemFailures).
func (h *Handler) dispose(ctx context.Context, msg events.SQSMessage, out outcome) bool {
	switch {
	case out.consumed:
		return true
	case out.waiting:
		wait := out.wait
		if out.soon {
			// wait is only the longest it can take: look again sooner,
			// later with each wait.
			wait = min(wait, h.cfg.ParkMin<<min(waitsOf(msg), 10))
		}
		delay := h.parkDelay(wait)
		if err := h.park(ctx, msg, delay); err != nil {
			h.log.WarnContext(ctx, "could not re-send a waiting message; it returns to the queue", "op", "park",
				"message_id", msg.MessageId, "error", Redact(err.Error()))
			h.setVisibility(ctx, msg, delay)
			return false
		}
		return true
	}
	h.setVisibility(ctx, msg, retry.VisibilityTimeout(ReceiveCount(msg), h.cfg.VisibilityBase, h.cfg.VisibilityLimit))
	return false
}

// park re-sends msg to the queue with delay and its waits counted.
func (h *Handler) park(ctx context.Context, msg events.SQSMessage, delay time.Duration) error {
	if h.d.Queue == nil || h.cfg.QueueURL == "" {
		return errors.New("no queue configured (QUEUE_URL)")
	}
	waits := waitsOf(msg)
	attrs := map[string]sqstypes.MessageAttributeValue{
		AttrWaits: {DataType: aws.String("Number"), StringValue: aws.String(strconv.Itoa(waits + 1))},
	}
	for k, a := range msg.MessageAttributes {
		if k == AttrWaits || len(attrs) >= maxAttributes || (a.StringValue == nil && a.BinaryValue == nil) {
			continue
		}
		attrs[k] = sqstypes.MessageAttributeValue{DataType: aws.String(a.DataType), StringValue: a.StringValue, BinaryValue: a.BinaryValue}
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.cfg.Reserve)
	defer cancel()
	_, err := h.d.Queue.SendMessage(sctx, &sqs.SendMessageInput{
		QueueUrl: aws.String(h.cfg.QueueURL), MessageBody: aws.String(msg.Body),
		DelaySeconds: int32(seconds(delay)), MessageAttributes: attrs,
	})
	if err == nil {
		h.log.InfoContext(ctx, "waiting for the provider: message re-sent with a delay", "op", "park",
			"message_id", msg.MessageId, "delay_ms", ms(delay), "waits", waits+1)
	}
	return err
}

// waitsOf is how many times msg was re-sent to wait (AttrWaits).
func waitsOf(msg events.SQSMessage) int {
	waits := 0
	if a, ok := msg.MessageAttributes[AttrWaits]; ok && a.StringValue != nil {
		waits, _ = strconv.Atoi(*a.StringValue)
	}
	return max(waits, 0)
}

// setVisibility hides msg for d from now (SetVisibility).
func (h *Handler) setVisibility(ctx context.Context, msg events.SQSMessage, d time.Duration) {
	SetVisibility(ctx, h.d.Queue, h.cfg.QueueURL, msg, d, h.cfg.Reserve, h.log)
}

// SetVisibility hides msg on queueURL for d from now, bounded by SQS's
// limit and within reserve (best effort: without it the queue's own
// visibility timeout applies; a failure is logged). The replicate and
// seal handlers share it.
func SetVisibility(ctx context.Context, q QueueAPI, queueURL string, msg events.SQSMessage, d, reserve time.Duration, log *slog.Logger) {
	if q == nil || queueURL == "" || msg.ReceiptHandle == "" {
		return
	}
	vctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), reserve)
	defer cancel()
	_, err := q.ChangeMessageVisibility(vctx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl: aws.String(queueURL), ReceiptHandle: aws.String(msg.ReceiptHandle),
		VisibilityTimeout: int32(seconds(min(d, retry.MaxVisibilityTimeout))),
	})
	if err != nil {
		log.WarnContext(ctx, "could not set the message's visibility timeout", "op", "visibility",
			"message_id", msg.MessageId, "error", Redact(err.Error()))
		return
	}
	log.DebugContext(ctx, "message returns later", "op", "visibility", "message_id", msg.MessageId,
		"attempt", ReceiveCount(msg), "delay_ms", ms(d))
}

// seconds rounds d up to whole seconds.
func seconds(d time.Duration) int64 {
	return int64(math.Ceil(d.Seconds()))
}
