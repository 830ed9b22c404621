package stack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	cfdynamodb "github.com/awslabs/goformation/v7/cloudformation/dynamodb"
	cfevents "github.com/awslabs/goformation/v7/cloudformation/events"
	cfkms "github.com/awslabs/goformation/v7/cloudformation/kms"
	cfs3 "github.com/awslabs/goformation/v7/cloudformation/s3"
	cfsqs "github.com/awslabs/goformation/v7/cloudformation/sqs"

	"github.com/wedsync/backup-replication/infra/local/samtemplate"
)

// awsClients are the moto clients the stack creates resources with.
type awsClients struct {
	s3      *s3.Client
	sqs     *sqs.Client
	ddb     *dynamodb.Client
	events  *eventbridge.Client
	sns     *sns.Client
	secrets *secretsmanager.Client
	iam     *iam.Client
	kms     *kms.Client
}

func newAWSClients(cfg aws.Config) *awsClients {
	return &awsClients{
		s3:      s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true }),
		sqs:     sqs.NewFromConfig(cfg),
		ddb:     dynamodb.NewFromConfig(cfg),
		events:  eventbridge.NewFromConfig(cfg),
		sns:     sns.NewFromConfig(cfg),
		secrets: secretsmanager.NewFromConfig(cfg),
		iam:     iam.NewFromConfig(cfg),
		kms:     kms.NewFromConfig(cfg),
	}
}

// createSecrets creates the template's secrets with dev values and returns
// their ARNs by logical id (moto, like AWS, adds a random suffix).
func (c *awsClients) createSecrets(ctx context.Context, t *samtemplate.Template, values map[string]string) (map[string]string, error) {
	arns := map[string]string{}
	for _, id := range t.IDs("AWS::SecretsManager::Secret") {
		val, ok := values[id]
		if !ok {
			val = "{}"
		}
		out, err := c.secrets.CreateSecret(ctx, &secretsmanager.CreateSecretInput{
			Name: aws.String(t.Name(id)), SecretString: aws.String(val),
			Description: aws.String("local dev value for " + id),
		})
		if err != nil {
			return nil, fmt.Errorf("secret %s: %w", id, err)
		}
		arns[id] = aws.ToString(out.ARN)
	}
	return arns, nil
}

// createKeys creates the template's KMS keys (moto picks their ids, so,
// like secrets' ARNs, they are only known afterwards) and returns what
// Ref and Fn::GetAtt must answer for them: refs by "LogicalId" (the key
// id), attrs by "LogicalId.Arn" and "LogicalId.KeyId".
func (c *awsClients) createKeys(ctx context.Context, t *samtemplate.Template) (refs, attrs map[string]string, err error) {
	refs, attrs = map[string]string{}, map[string]string{}
	for _, id := range t.IDs("AWS::KMS::Key") {
		k := t.Resources[id].(*cfkms.Key)
		out, err := c.kms.CreateKey(ctx, &kms.CreateKeyInput{Description: k.Description})
		if err != nil {
			return nil, nil, fmt.Errorf("key %s: %w", id, err)
		}
		meta := out.KeyMetadata
		if k.EnableKeyRotation != nil && *k.EnableKeyRotation {
			if _, err := c.kms.EnableKeyRotation(ctx, &kms.EnableKeyRotationInput{KeyId: meta.KeyId}); err != nil {
				return nil, nil, fmt.Errorf("key %s: rotation: %w", id, err)
			}
		}
		refs[id] = aws.ToString(meta.KeyId)
		attrs[id+".KeyId"] = aws.ToString(meta.KeyId)
		attrs[id+".Arn"] = aws.ToString(meta.Arn)
	}
	return refs, attrs, nil
}

// createResources creates, in dependency order, what the template declares
// that the local stack needs: buckets (with EventBridge notifications),
// tables, KMS aliases (the keys exist already: createKeys), the SNS topic,
// queues (dead-letter queues first) and rules.
func (c *awsClients) createResources(ctx context.Context, t *samtemplate.Template, visibility time.Duration) error {
	for _, id := range t.IDs("AWS::S3::Bucket") {
		b := t.Resources[id].(*cfs3.Bucket)
		if err := c.createBucket(ctx, t.Name(id), b.NotificationConfiguration != nil && b.NotificationConfiguration.EventBridgeConfiguration != nil); err != nil {
			return fmt.Errorf("bucket %s: %w", id, err)
		}
	}
	for _, id := range t.IDs("AWS::DynamoDB::Table") {
		if err := c.createTable(ctx, t.Name(id), t.Resources[id].(*cfdynamodb.Table)); err != nil {
			return fmt.Errorf("table %s: %w", id, err)
		}
	}
	for _, id := range t.IDs("AWS::KMS::Alias") {
		a := t.Resources[id].(*cfkms.Alias)
		if _, err := c.kms.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String(a.AliasName), TargetKeyId: aws.String(a.TargetKeyId)}); err != nil {
			return fmt.Errorf("alias %s: %w", id, err)
		}
	}
	for _, id := range t.IDs("AWS::SNS::Topic") {
		if _, err := c.sns.CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String(t.Name(id))}); err != nil {
			return fmt.Errorf("topic %s: %w", id, err)
		}
	}
	queues := t.IDs("AWS::SQS::Queue")
	// Queues without a redrive policy (the dead-letter queues) first.
	for _, pass := range []bool{false, true} {
		for _, id := range queues {
			q := t.Resources[id].(*cfsqs.Queue)
			if (q.RedrivePolicy != nil) != pass {
				continue
			}
			if err := c.createQueue(ctx, t.Name(id), q, visibility); err != nil {
				return fmt.Errorf("queue %s: %w", id, err)
			}
		}
	}
	for _, id := range t.IDs("AWS::Events::Rule") {
		if err := c.createRule(ctx, t.Name(id), t.Resources[id].(*cfevents.Rule)); err != nil {
			return fmt.Errorf("rule %s: %w", id, err)
		}
	}
	return nil
}

func (c *awsClients) createBucket(ctx context.Context, name string, eventBridge bool) error {
	_, err := c.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)})
	var owned *s3types.BucketAlreadyOwnedByYou
	if err != nil && !errors.As(err, &owned) {
		return err
	}
	if !eventBridge {
		return nil
	}
	_, err = c.s3.PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{
		Bucket:                    aws.String(name),
		NotificationConfiguration: &s3types.NotificationConfiguration{EventBridgeConfiguration: &s3types.EventBridgeConfiguration{}},
	})
	return err
}

func (c *awsClients) createTable(ctx context.Context, name string, tb *cfdynamodb.Table) error {
	in := &dynamodb.CreateTableInput{TableName: aws.String(name), BillingMode: ddbtypes.BillingModePayPerRequest}
	for _, a := range tb.AttributeDefinitions {
		in.AttributeDefinitions = append(in.AttributeDefinitions, ddbtypes.AttributeDefinition{
			AttributeName: aws.String(a.AttributeName), AttributeType: ddbtypes.ScalarAttributeType(a.AttributeType)})
	}
	in.KeySchema = keySchema(tb.KeySchema)
	for _, g := range tb.GlobalSecondaryIndexes {
		proj := &ddbtypes.Projection{ProjectionType: ddbtypes.ProjectionTypeAll}
		if g.Projection.ProjectionType != nil {
			proj = &ddbtypes.Projection{ProjectionType: ddbtypes.ProjectionType(*g.Projection.ProjectionType), NonKeyAttributes: g.Projection.NonKeyAttributes}
		}
		in.GlobalSecondaryIndexes = append(in.GlobalSecondaryIndexes, ddbtypes.GlobalSecondaryIndex{
			IndexName: aws.String(g.IndexName), KeySchema: keySchema(g.KeySchema), Projection: proj})
	}
	_, err := c.ddb.CreateTable(ctx, in)
	var inUse *ddbtypes.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) {
		return err
	}
	if ttl := tb.TimeToLiveSpecification; ttl != nil && ttl.Enabled && ttl.AttributeName != nil {
		_, err := c.ddb.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{TableName: aws.String(name),
			TimeToLiveSpecification: &ddbtypes.TimeToLiveSpecification{AttributeName: ttl.AttributeName, Enabled: aws.Bool(true)}})
		if err != nil {
			return fmt.Errorf("ttl: %w", err)
		}
	}
	return nil
}

func keySchema(ks []cfdynamodb.Table_KeySchema) []ddbtypes.KeySchemaElement {
	out := make([]ddbtypes.KeySchemaElement, 0, len(ks))
	for _, k := range ks {
		out = append(out, ddbtypes.KeySchemaElement{AttributeName: aws.String(k.AttributeName), KeyType: ddbtypes.KeyType(k.KeyType)})
	}
	return out
}

// createQueue creates a queue with the template's attributes; visibility,
// when positive, replaces the template's VisibilityTimeout.
func (c *awsClients) createQueue(ctx context.Context, name string, q *cfsqs.Queue, visibility time.Duration) error {
	attrs := map[string]string{}
	setInt := func(k string, v *int) {
		if v != nil {
			attrs[k] = strconv.Itoa(*v)
		}
	}
	setInt("VisibilityTimeout", q.VisibilityTimeout)
	setInt("MessageRetentionPeriod", q.MessageRetentionPeriod)
	setInt("DelaySeconds", q.DelaySeconds)
	setInt("MaximumMessageSize", q.MaximumMessageSize)
	setInt("ReceiveMessageWaitTimeSeconds", q.ReceiveMessageWaitTimeSeconds)
	if visibility > 0 {
		attrs["VisibilityTimeout"] = strconv.Itoa(int(visibility / time.Second))
	}
	if q.RedrivePolicy != nil {
		rp, err := redrivePolicy(q.RedrivePolicy)
		if err != nil {
			return err
		}
		attrs["RedrivePolicy"] = rp
	}
	_, err := c.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: attrs})
	return err
}

// redrivePolicy renders the template's RedrivePolicy object as the JSON
// text SQS takes, maxReceiveCount as a number.
func redrivePolicy(v any) (string, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return "", fmt.Errorf("RedrivePolicy: want an object, got %T", v)
	}
	out := map[string]any{}
	for k, val := range m {
		out[k] = val
	}
	if s, ok := out["maxReceiveCount"].(string); ok {
		n, err := strconv.Atoi(s)
		if err != nil {
			return "", fmt.Errorf("RedrivePolicy.maxReceiveCount %q: %w", s, err)
		}
		out["maxReceiveCount"] = n
	}
	b, err := json.Marshal(out)
	return string(b), err
}

func (c *awsClients) createRule(ctx context.Context, name string, r *cfevents.Rule) error {
	in := &eventbridge.PutRuleInput{Name: aws.String(name), Description: r.Description, State: ebtypes.RuleStateEnabled}
	if r.EventPattern != nil {
		b, err := json.Marshal(r.EventPattern)
		if err != nil {
			return err
		}
		in.EventPattern = aws.String(string(b))
	}
	if r.ScheduleExpression != nil {
		// Schedules are played by the stack itself (see schedule.go).
		return nil
	}
	if _, err := c.events.PutRule(ctx, in); err != nil {
		return err
	}
	var targets []ebtypes.Target
	for _, tg := range r.Targets {
		t := ebtypes.Target{Id: aws.String(tg.Id), Arn: aws.String(tg.Arn), Input: tg.Input, InputPath: tg.InputPath}
		if tg.DeadLetterConfig != nil && tg.DeadLetterConfig.Arn != nil {
			t.DeadLetterConfig = &ebtypes.DeadLetterConfig{Arn: tg.DeadLetterConfig.Arn}
		}
		targets = append(targets, t)
	}
	if len(targets) == 0 {
		return nil
	}
	out, err := c.events.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String(name), Targets: targets})
	if err != nil {
		return err
	}
	if out.FailedEntryCount > 0 {
		return fmt.Errorf("%d targets refused", out.FailedEntryCount)
	}
	return nil
}
