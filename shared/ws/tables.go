package ws

// The connections table (Config.Table; env CONNECTIONS_TABLE), as
// template.yaml declares it (ConnectionsTable):
//
//	partition key  connection_id   the API Gateway connection id
//	sort key       backup_id       ItemConnection for the connection itself,
//	                               a backup id or "*" for a subscription
//	GSI by_backup  partition backup_id, sort connection_id, projection ALL
//	               → the subscribers of a backup, and of "*"
//	TTL            expires_at (number, epoch seconds)
//
// Every item carries organization_id (the organization of the token that
// opened the connection): a "*" subscription receives only its own
// organization's backups, and the publisher filters on it. Items expire by
// TTL a little after API Gateway's two-hour connection limit, so a lost
// $disconnect leaves nothing behind for long; DynamoDB deletes expired
// items lazily, so readers also skip items whose expires_at has passed.
//
// Every attribute named below is a string (S) except expires_at (N).

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Attribute and index names of the connections table.
const (
	AttrConnectionID   = "connection_id"
	AttrBackupID       = "backup_id"
	AttrOrganizationID = "organization_id"
	AttrSubject        = "subject"
	AttrConnectedAt    = "connected_at"
	AttrExpiresAt      = "expires_at"

	// IndexByBackup finds the connections subscribed to a backup id (or "*").
	IndexByBackup = "by_backup"

	// ItemConnection is the sort key of a connection's own item. It cannot
	// be a backup id (ids are Crockford base32) nor "*".
	ItemConnection = "#connection"
	// AllBackups subscribes to every backup of the caller's organization,
	// and to provider health and alerts.
	AllBackups = "*"
)

// DefaultTable names the connections table when nothing is configured
// (tests and the local stack without template.yaml).
const DefaultTable = "ws191-connections"

// TableInput is the CreateTable request for the connections table.
func TableInput(name string) *dynamodb.CreateTableInput {
	s := types.ScalarAttributeTypeS
	return &dynamodb.CreateTableInput{
		TableName:   aws.String(name),
		BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String(AttrConnectionID), AttributeType: s},
			{AttributeName: aws.String(AttrBackupID), AttributeType: s},
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String(AttrConnectionID), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String(AttrBackupID), KeyType: types.KeyTypeRange},
		},
		GlobalSecondaryIndexes: []types.GlobalSecondaryIndex{{
			IndexName: aws.String(IndexByBackup),
			KeySchema: []types.KeySchemaElement{
				{AttributeName: aws.String(AttrBackupID), KeyType: types.KeyTypeHash},
				{AttributeName: aws.String(AttrConnectionID), KeyType: types.KeyTypeRange},
			},
			Projection: &types.Projection{ProjectionType: types.ProjectionTypeAll},
		}},
	}
}

// EnsureTables creates the connections table (with its index and TTL)
// when it does not exist and waits until it is active. For tests and the
// local stack; the deployed table comes from template.yaml.
func EnsureTables(ctx context.Context, db *dynamodb.Client, table string) error {
	if table == "" {
		return errors.New("ws: connections table name is empty (CONNECTIONS_TABLE)")
	}
	in := TableInput(table)
	_, err := db.CreateTable(ctx, in)
	var inUse *types.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) {
		return fmt.Errorf("ws: create table %s: %w", table, err)
	}
	w := dynamodb.NewTableExistsWaiter(db, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay, o.MaxDelay = 100*time.Millisecond, 2*time.Second
	})
	if err := w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: in.TableName}, time.Minute); err != nil {
		return fmt.Errorf("ws: table %s not active: %w", table, err)
	}
	ttl, err := db.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: in.TableName})
	if err == nil && ttl.TimeToLiveDescription != nil && ttl.TimeToLiveDescription.TimeToLiveStatus == types.TimeToLiveStatusEnabled {
		return nil
	}
	_, err = db.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{TableName: in.TableName,
		TimeToLiveSpecification: &types.TimeToLiveSpecification{AttributeName: aws.String(AttrExpiresAt), Enabled: aws.Bool(true)}})
	if err != nil {
		return fmt.Errorf("ws: enable TTL on %s: %w", table, err)
	}
	return nil
}
