package main

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/wedsync/backup-replication/infra/local/stack"
	"github.com/wedsync/backup-replication/shared/replicate"
)

// queueOf is each provider's replication queue (template logical id).
var queueOf = map[string]string{"supabase": "ReplicateSupabaseQueue", "s3": "ReplicateS3Queue", "gcs": "ReplicateGcsQueue"}

// landedEvents returns what a backups/ rule would do for the no-seal
// baseline: put the upload's Object Created event (with the object's own
// ETag) on each provider's replication queue.
func landedEvents(s *stack.Stack, ps []string) func(ctx context.Context, key string, size int64) error {
	sq := sqs.NewFromConfig(s.AWS)
	s3c := s3.NewFromConfig(s.AWS, func(o *s3.Options) { o.UsePathStyle = true })
	return func(ctx context.Context, key string, size int64) error {
		head, err := s3c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.Buckets.Landing), Key: aws.String(key)})
		if err != nil {
			return err
		}
		body := replicate.ObjectCreated(s.Buckets.Landing, key, size, aws.ToString(head.ETag), "PutObject", time.Now())
		for _, p := range ps {
			if _, err := sq.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(s.Template.Ref(queueOf[p])),
				MessageBody: aws.String(body)}); err != nil {
				return fmt.Errorf("%s queue: %w", p, err)
			}
		}
		return nil
	}
}
