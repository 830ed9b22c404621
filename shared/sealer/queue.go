package sealer

import (
	"context"

	"github.com/aws/aws-lambda-go/events"

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
	replicate.SetVisibility(ctx, h.d.Queue, h.cfg.QueueURL, msg,
		retry.VisibilityTimeout(replicate.ReceiveCount(msg), h.cfg.VisibilityBase, h.cfg.VisibilityLimit), h.cfg.Reserve, h.log)
	return false
}
