package sealer

import (
	"context"
	"math"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/wedsync/backup-replication/shared/replicate"
	"github.com/wedsync/backup-replication/shared/retry"
)

// outcome is what became of one record.
type outcome struct {
	consumed bool   // false: report a batch item failure
	what     string // for the log line
	bytes    int64  // plaintext bytes sealed
	err      error
}

func done(what string, bytes int64) outcome { return outcome{consumed: true, what: what, bytes: bytes} }

func retryLater(what string, err error) outcome { return outcome{what: what, err: err} }

// dispose reports whether the record is consumed; a record that is not
// returns to the queue after a visibility timeout growing with its
// receive count (retry.VisibilityTimeout), as replicate's failed messages
// do, until the redrive policy dead-letters it. The seal step has no
// breaker to wait for, so it never re-sends a message.
func (h *Handler) dispose(ctx context.Context, msg events.SQSMessage, out outcome) bool {
	if out.consumed {
		return true
	}
	h.setVisibility(ctx, msg, retry.VisibilityTimeout(receiveCount(msg), h.cfg.VisibilityBase, h.cfg.VisibilityLimit))
	return false
}

// setVisibility hides msg for d from now (best effort: without it the
// queue's own visibility timeout applies).
func (h *Handler) setVisibility(ctx context.Context, msg events.SQSMessage, d time.Duration) {
	if h.d.Queue == nil || h.cfg.QueueURL == "" || msg.ReceiptHandle == "" {
		return
	}
	vctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.cfg.Reserve)
	defer cancel()
	_, err := h.d.Queue.ChangeMessageVisibility(vctx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl: aws.String(h.cfg.QueueURL), ReceiptHandle: aws.String(msg.ReceiptHandle),
		VisibilityTimeout: int32(math.Ceil(min(d, retry.MaxVisibilityTimeout).Seconds())),
	})
	if err != nil {
		h.log.WarnContext(ctx, "could not set the message's visibility timeout", "op", "visibility",
			"message_id", msg.MessageId, "error", replicate.Redact(err.Error()))
		return
	}
	h.log.DebugContext(ctx, "message returns later", "op", "visibility", "message_id", msg.MessageId,
		"attempt", receiveCount(msg), "delay_ms", d.Milliseconds())
}
