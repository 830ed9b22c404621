package catalog

// The DynamoDB tables, for whoever declares them (template.yaml, the local
// stack). Both tables use on-demand billing and every attribute named below
// is a string (S).
//
//	Backups table  (Config.BackupsTable; env BACKUPS_TABLE)
//	  partition key  id                          a backup's id
//	  GSI by_organization  partition organization_id, sort created_at   projection ALL
//	                       → ListBackups, newest first
//	  GSI by_status        partition status,          sort created_at   projection ALL
//	                       → BackupsByStatus, oldest first
//	  idempotency items    id = "idem#" + escaped organization id + "#" + escaped key,
//	                       with backup_id; they have no organization_id, status or
//	                       created_at, so neither index sees them.
//
//	Replicas table (Config.ReplicasTable; env REPLICAS_TABLE)
//	  partition key  backup_id
//	  sort key       provider
//
// Every item carries a number "version" that each write raises by one and
// is conditional on (optimistic concurrency). created_at is written as
// fixed-width UTC text ("2006-01-02T15:04:05.000000000Z") so that it sorts
// as a string. No TTL on either table: backups are removed by erasure only.
//
// Idempotency (CreateBackup with an IdempotencyKey) takes two conditional
// puts, each attribute_not_exists(id): first the idempotency item, which
// claims the key for a new backup id, then the backup item under that id.
// A request that finds the key held returns the holder's backup, or, when
// the holder has not written it yet (in flight or crashed), writes it under
// the holder's id itself; whichever backup put succeeds reports created,
// every other request gets that backup with created=false. A separate item,
// rather than a conditional put on the backup itself, keeps backup ids
// random (not derived from caller input) and costs nothing in the indexes.
// (Not TransactWriteItems: it would do the same in one call on DynamoDB,
// but moto rolls a failed transaction back by restoring a whole-table
// snapshot, which loses concurrent writes, and the local stack runs on moto.)

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Key and index names of the tables; see the table description above.
const (
	AttrID             = "id"
	AttrOrganizationID = "organization_id"
	AttrStatus         = "status"
	AttrCreatedAt      = "created_at"
	AttrVersion        = "version"
	AttrBackupID       = "backup_id"
	AttrProvider       = "provider"

	IndexByOrganization = "by_organization"
	IndexByStatus       = "by_status"

	// IdempotencyPrefix starts the id of every idempotency item.
	IdempotencyPrefix = "idem#"
)

// Default table names, used by the local stack and tests when nothing is
// configured.
const (
	DefaultBackupsTable  = "ws191-backups"
	DefaultReplicasTable = "ws191-replicas"
)

// Config names the two tables of the catalog.
type Config struct {
	BackupsTable  string // BACKUPS_TABLE
	ReplicasTable string // REPLICAS_TABLE
}

// Validate reports a missing table name.
func (c Config) Validate() error {
	var errs []error
	if c.BackupsTable == "" {
		errs = append(errs, errors.New("catalog: backups table name is empty (BACKUPS_TABLE)"))
	}
	if c.ReplicasTable == "" {
		errs = append(errs, errors.New("catalog: replicas table name is empty (REPLICAS_TABLE)"))
	}
	return errors.Join(errs...)
}

// BackupsTableInput is the CreateTable request for the backups table.
func BackupsTableInput(name string) *dynamodb.CreateTableInput {
	s := types.ScalarAttributeTypeS
	gsi := func(index, pk string) types.GlobalSecondaryIndex {
		return types.GlobalSecondaryIndex{
			IndexName: aws.String(index),
			KeySchema: []types.KeySchemaElement{
				{AttributeName: aws.String(pk), KeyType: types.KeyTypeHash},
				{AttributeName: aws.String(AttrCreatedAt), KeyType: types.KeyTypeRange},
			},
			Projection: &types.Projection{ProjectionType: types.ProjectionTypeAll},
		}
	}
	return &dynamodb.CreateTableInput{
		TableName:   aws.String(name),
		BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String(AttrID), AttributeType: s},
			{AttributeName: aws.String(AttrOrganizationID), AttributeType: s},
			{AttributeName: aws.String(AttrStatus), AttributeType: s},
			{AttributeName: aws.String(AttrCreatedAt), AttributeType: s},
		},
		KeySchema: []types.KeySchemaElement{{AttributeName: aws.String(AttrID), KeyType: types.KeyTypeHash}},
		GlobalSecondaryIndexes: []types.GlobalSecondaryIndex{
			gsi(IndexByOrganization, AttrOrganizationID),
			gsi(IndexByStatus, AttrStatus),
		},
	}
}

// ReplicasTableInput is the CreateTable request for the replicas table.
func ReplicasTableInput(name string) *dynamodb.CreateTableInput {
	s := types.ScalarAttributeTypeS
	return &dynamodb.CreateTableInput{
		TableName:   aws.String(name),
		BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String(AttrBackupID), AttributeType: s},
			{AttributeName: aws.String(AttrProvider), AttributeType: s},
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String(AttrBackupID), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String(AttrProvider), KeyType: types.KeyTypeRange},
		},
	}
}

// EnsureTables creates the catalog's tables when they do not exist and waits
// until they are active. For tests and the local stack; production tables
// come from template.yaml.
func EnsureTables(ctx context.Context, db *dynamodb.Client, names Config) error {
	if err := names.Validate(); err != nil {
		return err
	}
	for _, in := range []*dynamodb.CreateTableInput{BackupsTableInput(names.BackupsTable), ReplicasTableInput(names.ReplicasTable)} {
		_, err := db.CreateTable(ctx, in)
		var inUse *types.ResourceInUseException
		if err != nil && !errors.As(err, &inUse) {
			return fmt.Errorf("catalog: create table %s: %w", *in.TableName, err)
		}
		w := dynamodb.NewTableExistsWaiter(db, func(o *dynamodb.TableExistsWaiterOptions) {
			o.MinDelay, o.MaxDelay = 100*time.Millisecond, 2*time.Second
		})
		if err := w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: in.TableName}, time.Minute); err != nil {
			return fmt.Errorf("catalog: table %s not active: %w", *in.TableName, err)
		}
	}
	return nil
}
