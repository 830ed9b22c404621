package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/wedsync/backup-replication/infra/local/stack"
)

// queueOf is each provider's replication queue (template logical id).
var queueOf = map[string]string{"supabase": "ReplicateSupabaseQueue", "s3": "ReplicateS3Queue", "gcs": "ReplicateGcsQueue"}

// landedEvents returns what a backups/ rule would do for the no-seal
// baseline: put the upload's Object Created event (the shape of
// events/replicate-sqs.json, with the object's own ETag) on each
// provider's replication queue.
func landedEvents(s *stack.Stack, ps []string) func(ctx context.Context, key string, size int64) error {
	sq := sqs.NewFromConfig(s.AWS)
	s3c := s3.NewFromConfig(s.AWS, func(o *s3.Options) { o.UsePathStyle = true })
	return func(ctx context.Context, key string, size int64) error {
		head, err := s3c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.Buckets.Landing), Key: aws.String(key)})
		if err != nil {
			return err
		}
		body, err := json.Marshal(map[string]any{
			"version": "0", "id": fmt.Sprintf("bench-%d", time.Now().UnixNano()), "detail-type": "Object Created",
			"source": "aws.s3", "account": s.Template.Ref("AWS::AccountId"), "time": time.Now().UTC().Format(time.RFC3339),
			"region": s.Template.Ref("AWS::Region"), "resources": []string{"arn:aws:s3:::" + s.Buckets.Landing},
			"detail": map[string]any{
				"version": "0", "bucket": map[string]any{"name": s.Buckets.Landing},
				"object": map[string]any{"key": key, "size": size, "etag": strings.Trim(aws.ToString(head.ETag), `"`),
					"sequencer": fmt.Sprintf("%018X", time.Now().UnixNano())},
				"request-id": "PIPELINEBENCH", "requester": s.Template.Ref("AWS::AccountId"), "reason": "PutObject",
			},
		})
		if err != nil {
			return err
		}
		for _, p := range ps {
			if _, err := sq.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(s.Template.Ref(queueOf[p])),
				MessageBody: aws.String(string(body))}); err != nil {
				return fmt.Errorf("%s queue: %w", p, err)
			}
		}
		return nil
	}
}
