package sealer_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/wedsync/backup-replication/shared/sealer"
)

// TestFailedMessageStaysAway: a message that cannot be sealed yet (no
// backup record) is returned with a visibility timeout, so it does not
// come straight back; a sealed one is consumed.
func TestFailedMessageStaysAway(t *testing.T) {
	w := newWorld(t)
	cfg, _ := moto.AWSConfig(w.ctx)
	q := sqs.NewFromConfig(cfg)
	// The queue's own visibility timeout is 0: only the handler's can keep
	// a received message away.
	made, err := q.CreateQueue(w.ctx, &sqs.CreateQueueInput{QueueName: aws.String(fmt.Sprintf("seal-%d", seq.Add(1))),
		Attributes: map[string]string{"VisibilityTimeout": "0"}})
	if err != nil {
		t.Fatal(err)
	}
	url := aws.ToString(made.QueueUrl)
	h, err := sealer.New(sealer.Config{LandingBucket: w.bucket, QueueURL: url, VisibilityBase: time.Hour},
		sealer.Deps{Landing: w.s3, Store: w.store, Keys: w.keys, Queue: q})
	if err != nil {
		t.Fatal(err)
	}
	stray := w.event(w.bucket, "backups/org/not-registered", 5)
	if _, err := q.SendMessage(w.ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(stray.Body)}); err != nil {
		t.Fatal(err)
	}
	got, err := q.ReceiveMessage(w.ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 1, MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{"All"}})
	if err != nil || len(got.Messages) != 1 {
		t.Fatalf("receive: %v %d", err, len(got.Messages))
	}
	m := got.Messages[0]
	msg := events.SQSMessage{MessageId: aws.ToString(m.MessageId), ReceiptHandle: aws.ToString(m.ReceiptHandle),
		Body: aws.ToString(m.Body), Attributes: map[string]string{"ApproximateReceiveCount": "1"}}
	if failed := w.handle(h, msg); len(failed) != 1 {
		t.Fatalf("failed %v, want the stray message back", failed)
	}
	again, err := q.ReceiveMessage(w.ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Messages) != 0 {
		t.Fatal("the failed message came straight back: no visibility timeout was set")
	}
}
