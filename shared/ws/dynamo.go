package ws

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// maxBatch is BatchWriteItem's limit of requests per call.
const maxBatch = 25

// Dynamo is the Store on the connections table (see tables.go).
type Dynamo struct {
	db    *dynamodb.Client
	table string
	now   func() time.Time
}

var _ Store = (*Dynamo)(nil)

// NewDynamo returns the store on table. now is the clock (nil: time.Now).
func NewDynamo(db *dynamodb.Client, table string, now func() time.Time) (*Dynamo, error) {
	if db == nil || table == "" {
		return nil, errors.New("ws: a DynamoDB client and the connections table (CONNECTIONS_TABLE) are required")
	}
	if now == nil {
		now = time.Now
	}
	return &Dynamo{db: db, table: table, now: now}, nil
}

// Connect implements Store.
func (d *Dynamo) Connect(ctx context.Context, c Connection) error {
	item := d.item(c, ItemConnection)
	item[AttrSubject] = str(c.Subject)
	item[AttrConnectedAt] = str(c.ConnectedAt.UTC().Format(time.RFC3339Nano))
	_, err := d.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(d.table), Item: item})
	if err != nil {
		return fmt.Errorf("ws: record connection: %w", err)
	}
	return nil
}

// Connection implements Store.
func (d *Dynamo) Connection(ctx context.Context, id string) (Connection, error) {
	out, err := d.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(d.table), ConsistentRead: aws.Bool(true),
		Key: key(id, ItemConnection)})
	if err != nil {
		return Connection{}, fmt.Errorf("ws: read connection: %w", err)
	}
	if out.Item == nil {
		return Connection{}, ErrNotConnected
	}
	c := Connection{ID: id, OrganizationID: text(out.Item[AttrOrganizationID]), Subject: text(out.Item[AttrSubject]),
		ExpiresAt: time.Unix(number(out.Item[AttrExpiresAt]), 0).UTC()}
	c.ConnectedAt, _ = time.Parse(time.RFC3339Nano, text(out.Item[AttrConnectedAt]))
	if !c.ExpiresAt.After(d.now()) {
		return Connection{}, ErrNotConnected
	}
	return c, nil
}

// Subscribe implements Store.
func (d *Dynamo) Subscribe(ctx context.Context, c Connection, backupID string, max int) error {
	if max > 0 {
		ids, err := d.items(ctx, c.ID)
		if err != nil {
			return err
		}
		n := 0
		for _, b := range ids {
			if b == backupID {
				return nil // already subscribed
			}
			if b != ItemConnection {
				n++
			}
		}
		if n >= max {
			return ErrTooManySubscriptions
		}
	}
	_, err := d.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(d.table), Item: d.item(c, backupID)})
	if err != nil {
		return fmt.Errorf("ws: record subscription: %w", err)
	}
	return nil
}

// Unsubscribe implements Store.
func (d *Dynamo) Unsubscribe(ctx context.Context, connectionID, backupID string) error {
	if backupID == ItemConnection {
		return nil
	}
	_, err := d.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(d.table), Key: key(connectionID, backupID)})
	if err != nil {
		return fmt.Errorf("ws: remove subscription: %w", err)
	}
	return nil
}

// Disconnect implements Store.
func (d *Dynamo) Disconnect(ctx context.Context, connectionID string) error {
	ids, err := d.items(ctx, connectionID)
	if err != nil {
		return err
	}
	for len(ids) > 0 {
		n := min(len(ids), maxBatch)
		reqs := make([]types.WriteRequest, 0, n)
		for _, b := range ids[:n] {
			reqs = append(reqs, types.WriteRequest{DeleteRequest: &types.DeleteRequest{Key: key(connectionID, b)}})
		}
		ids = ids[n:]
		if err := d.batchWrite(ctx, reqs); err != nil {
			return err
		}
	}
	return nil
}

// batchWrite writes reqs, retrying what DynamoDB leaves unprocessed.
func (d *Dynamo) batchWrite(ctx context.Context, reqs []types.WriteRequest) error {
	for attempt := 0; len(reqs) > 0; attempt++ {
		if attempt > 0 {
			t := time.NewTimer(time.Duration(25<<min(attempt, 6)) * time.Millisecond)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
		}
		out, err := d.db.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]types.WriteRequest{d.table: reqs}})
		if err != nil {
			return fmt.Errorf("ws: remove connection: %w", err)
		}
		reqs = out.UnprocessedItems[d.table]
	}
	return nil
}

// items returns the sort keys of every item of a connection.
func (d *Dynamo) items(ctx context.Context, connectionID string) ([]string, error) {
	var out []string
	p := dynamodb.NewQueryPaginator(d.db, &dynamodb.QueryInput{
		TableName:                 aws.String(d.table),
		KeyConditionExpression:    aws.String("#c = :c"),
		ProjectionExpression:      aws.String("#b"),
		ExpressionAttributeNames:  map[string]string{"#c": AttrConnectionID, "#b": AttrBackupID},
		ExpressionAttributeValues: map[string]types.AttributeValue{":c": str(connectionID)},
		ConsistentRead:            aws.Bool(true),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("ws: read connection: %w", err)
		}
		for _, it := range page.Items {
			out = append(out, text(it[AttrBackupID]))
		}
	}
	return out, nil
}

// Subscribers implements Store.
func (d *Dynamo) Subscribers(ctx context.Context, backupID, organizationID string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	add := func(ids []string) {
		for _, id := range ids {
			if !seen[id] {
				seen[id] = true
				out = append(out, id)
			}
		}
	}
	if backupID != "" && backupID != AllBackups {
		ids, err := d.subscribed(ctx, backupID, organizationID)
		if err != nil {
			return nil, err
		}
		add(ids)
	}
	ids, err := d.subscribed(ctx, AllBackups, organizationID)
	if err != nil {
		return nil, err
	}
	add(ids)
	return out, nil
}

// subscribed queries the index for live subscriptions to backupID, of
// organizationID only unless it is "".
func (d *Dynamo) subscribed(ctx context.Context, backupID, organizationID string) ([]string, error) {
	names := map[string]string{"#b": AttrBackupID, "#c": AttrConnectionID, "#e": AttrExpiresAt}
	values := map[string]types.AttributeValue{":b": str(backupID), ":now": num(d.now().Unix())}
	filter := "#e > :now"
	if organizationID != "" {
		names["#o"] = AttrOrganizationID
		values[":o"] = str(organizationID)
		filter += " AND #o = :o"
	}
	p := dynamodb.NewQueryPaginator(d.db, &dynamodb.QueryInput{
		TableName:                 aws.String(d.table),
		IndexName:                 aws.String(IndexByBackup),
		KeyConditionExpression:    aws.String("#b = :b"),
		FilterExpression:          aws.String(filter),
		ProjectionExpression:      aws.String("#c"),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
	})
	var out []string
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("ws: find subscribers: %w", err)
		}
		for _, it := range page.Items {
			out = append(out, text(it[AttrConnectionID]))
		}
	}
	return out, nil
}

func (d *Dynamo) item(c Connection, backupID string) map[string]types.AttributeValue {
	it := key(c.ID, backupID)
	it[AttrOrganizationID] = str(c.OrganizationID)
	it[AttrExpiresAt] = num(c.ExpiresAt.Unix())
	return it
}

func key(connectionID, backupID string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{AttrConnectionID: str(connectionID), AttrBackupID: str(backupID)}
}

func str(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }

func num(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}

func text(v types.AttributeValue) string {
	if s, ok := v.(*types.AttributeValueMemberS); ok {
		return s.Value
	}
	return ""
}

func number(v types.AttributeValue) int64 {
	if n, ok := v.(*types.AttributeValueMemberN); ok {
		i, _ := strconv.ParseInt(n.Value, 10, 64)
		return i
	}
	return 0
}
