package keys

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// The keys table: one item per backup, partition key backup_id (S).
//
//	backup_id        S   the backup's id (partition key)
//	organization_id  S   its organisation
//	kms_key_id       S   ARN of the KMS key that wrapped the data key
//	wrapped          B   the wrapped data key; removed by Destroy
//	created_at       S   fixed-width UTC text ("2006-01-02T15:04:05.000000000Z")
//	destroyed_at     S   the same form, set by Destroy (tombstone)
//	destroyed_by     S   who destroyed it (audit)
//	reason           S   why
//
// Losing this table loses every backup: template.yaml declares it with
// point-in-time recovery, deletion protection and SSE. TableInput does not
// set PITR (a separate UpdateContinuousBackups call) nor deletion
// protection (tests and the local stack must be able to drop it).
const (
	AttrBackupID       = "backup_id"
	AttrOrganizationID = "organization_id"
	AttrKMSKeyID       = "kms_key_id"
	AttrWrapped        = "wrapped"
	AttrCreatedAt      = "created_at"
	AttrDestroyedAt    = "destroyed_at"
	AttrDestroyedBy    = "destroyed_by"
	AttrReason         = "reason"
)

// TableInput is the CreateTable request for a keys table called name, so
// that the local stack and tests create it the same way: on-demand
// billing, partition key backup_id (S), server-side encryption on.
func TableInput(name string) *dynamodb.CreateTableInput {
	return &dynamodb.CreateTableInput{
		TableName:            aws.String(name),
		BillingMode:          types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String(AttrBackupID), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String(AttrBackupID), KeyType: types.KeyTypeHash}},
		SSESpecification:     &types.SSESpecification{Enabled: aws.Bool(true)},
	}
}

// TableCreator is the part of the DynamoDB client EnsureTable uses.
type TableCreator interface {
	CreateTable(ctx context.Context, in *dynamodb.CreateTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error)
}

// EnsureTable creates the keys table called name (TableInput) unless it
// exists, for the local stack and tests; on AWS the template declares it.
func EnsureTable(ctx context.Context, db TableCreator, name string) error {
	_, err := db.CreateTable(ctx, TableInput(name))
	var inUse *types.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) {
		return fmt.Errorf("keys: create table %s: %w", name, err)
	}
	return nil
}
