package breaker

// The breakers table, for whoever declares it (template.yaml, the local
// stack): on-demand billing, partition key "name" (S), one item per
// breaker, no sort key, no TTL. Item attributes:
//
//	name                  S  the breaker's (provider's) name
//	state                 S  "closed", "half-open" or "open"
//	generation            N  raised on every state change and interval reset
//	version               N  raised on every write; every write is
//	                         conditional on it (it covers the generation)
//	requests, total_successes, total_failures, total_exclusions,
//	consecutive_successes, consecutive_failures   N  the Counts
//	expiry_ms             N  Unix ms: open → when a trial may start;
//	                         closed → when counts clear (0: never)
//	opened_at_ms          N  Unix ms the breaker last opened
//	changed_at_ms         N  Unix ms of the last state change
//	trials                M  half-open trial leases: id → lease expiry (Unix ms)
//	half_open_inflight    N  the number of trials (for people reading the table)
//
// Functions need dynamodb:GetItem, dynamodb:PutItem and dynamodb:UpdateItem
// on the table.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Table layout.
const (
	// DefaultTable is the table name used by the local stack and tests
	// when nothing is configured (env BREAKERS_TABLE in the functions).
	DefaultTable = "ws191-breakers"
	// KeyName is the partition key (S): the breaker's name.
	KeyName = "name"
	// AttrVersion is the number every write is conditional on.
	AttrVersion = "version"
)

// DynamoStore is the DynamoDB adapter of Store: one item per breaker, read
// with consistent reads and changed only by conditional writes — PutItem
// conditional on the version read, or (Count) an UpdateItem of atomic
// counters conditional on the generation. It is safe for concurrent use.
type DynamoStore struct {
	db    *dynamodb.Client
	table string
}

var _ Store = (*DynamoStore)(nil)

// NewDynamoStore returns a Store on table (see the table description at
// the top of dynamo.go; EnsureTable creates it).
func NewDynamoStore(db *dynamodb.Client, table string) (*DynamoStore, error) {
	if db == nil {
		return nil, errors.New("breaker: nil DynamoDB client")
	}
	if table == "" {
		return nil, errors.New("breaker: breakers table name is empty (BREAKERS_TABLE)")
	}
	return &DynamoStore{db: db, table: table}, nil
}

// item is a Record as stored.
type item struct {
	Name                 string           `dynamodbav:"name"`
	State                string           `dynamodbav:"state"`
	Generation           uint64           `dynamodbav:"generation"`
	Version              uint64           `dynamodbav:"version"`
	Requests             uint32           `dynamodbav:"requests"`
	TotalSuccesses       uint32           `dynamodbav:"total_successes"`
	TotalFailures        uint32           `dynamodbav:"total_failures"`
	TotalExclusions      uint32           `dynamodbav:"total_exclusions"`
	ConsecutiveSuccesses uint32           `dynamodbav:"consecutive_successes"`
	ConsecutiveFailures  uint32           `dynamodbav:"consecutive_failures"`
	ExpiryMs             int64            `dynamodbav:"expiry_ms"`
	OpenedAtMs           int64            `dynamodbav:"opened_at_ms"`
	ChangedAtMs          int64            `dynamodbav:"changed_at_ms"`
	Trials               map[string]int64 `dynamodbav:"trials,omitempty"`
	HalfOpenInflight     int              `dynamodbav:"half_open_inflight"`
}

// Load implements Store with a consistent read.
func (d *DynamoStore) Load(ctx context.Context, name string) (Record, error) {
	out, err := d.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(d.table),
		Key:            map[string]types.AttributeValue{KeyName: &types.AttributeValueMemberS{Value: name}},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return Record{}, fmt.Errorf("load %q from %s: %w", name, d.table, err)
	}
	if out.Item == nil {
		return Record{Name: name}, nil
	}
	var it item
	if err := attributevalue.UnmarshalMap(out.Item, &it); err != nil {
		return Record{}, fmt.Errorf("load %q from %s: %w", name, d.table, err)
	}
	return fromItem(it)
}

// Save implements Store with a PutItem conditional on the version.
func (d *DynamoStore) Save(ctx context.Context, rec Record, prev uint64) error {
	rec.Version = prev + 1
	av, err := attributevalue.MarshalMap(toItem(rec))
	if err != nil {
		return fmt.Errorf("save %q: %w", rec.Name, err)
	}
	in := &dynamodb.PutItemInput{TableName: aws.String(d.table), Item: av}
	if prev == 0 {
		in.ConditionExpression = aws.String("attribute_not_exists(#k)")
		in.ExpressionAttributeNames = map[string]string{"#k": KeyName}
	} else {
		in.ConditionExpression = aws.String("#v = :v")
		in.ExpressionAttributeNames = map[string]string{"#v": AttrVersion}
		in.ExpressionAttributeValues = map[string]types.AttributeValue{
			":v": &types.AttributeValueMemberN{Value: fmt.Sprint(prev)},
		}
	}
	_, err = d.db.PutItem(ctx, in)
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return fmt.Errorf("save %q at version %d: %w", rec.Name, prev, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("save %q to %s: %w", rec.Name, d.table, err)
	}
	return nil
}

// Count implements Store with one UpdateItem of atomic ADDs, conditional
// on the generation, the state and the interval, returning the new item.
func (d *DynamoStore) Count(ctx context.Context, name string, gen uint64, now time.Time, o Outcome) (Record, error) {
	update := map[Outcome]string{
		Success:  "ADD #version :one, #requests :one, #ts :one, #cs :one SET #cf = :zero",
		Failure:  "ADD #version :one, #requests :one, #tf :one, #cf :one SET #cs = :zero",
		Excluded: "ADD #version :one, #requests :one, #te :one",
	}[o]
	if update == "" {
		return Record{}, fmt.Errorf("count %q: unknown outcome %d", name, o)
	}
	cond := "#generation = :gen AND #state = :closed AND (#expiry = :zero OR #expiry > :now)"
	names := map[string]string{}
	for ph, attr := range map[string]string{
		"#version": AttrVersion, "#requests": "requests", "#generation": "generation", "#state": "state",
		"#expiry": "expiry_ms", "#ts": "total_successes", "#tf": "total_failures", "#te": "total_exclusions",
		"#cs": "consecutive_successes", "#cf": "consecutive_failures",
	} {
		if strings.Contains(update, ph) || strings.Contains(cond, ph) { // DynamoDB rejects unused names
			names[ph] = attr
		}
	}
	n := func(v int64) types.AttributeValue { return &types.AttributeValueMemberN{Value: fmt.Sprint(v)} }
	out, err := d.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                aws.String(d.table),
		Key:                      map[string]types.AttributeValue{KeyName: &types.AttributeValueMemberS{Value: name}},
		UpdateExpression:         aws.String(update),
		ConditionExpression:      aws.String(cond),
		ExpressionAttributeNames: names,
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":one": n(1), ":zero": n(0), ":gen": &types.AttributeValueMemberN{Value: fmt.Sprint(gen)},
			":closed": &types.AttributeValueMemberS{Value: StateClosed.String()}, ":now": n(now.UnixMilli()),
		},
		ReturnValues: types.ReturnValueAllNew,
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return Record{}, fmt.Errorf("count %q in generation %d: %w", name, gen, ErrConflict)
	}
	if err != nil {
		return Record{}, fmt.Errorf("count %q in %s: %w", name, d.table, err)
	}
	var it item
	if err := attributevalue.UnmarshalMap(out.Attributes, &it); err != nil {
		return Record{}, fmt.Errorf("count %q: %w", name, err)
	}
	return fromItem(it)
}

func toItem(r Record) item {
	it := item{
		Name: r.Name, State: r.State.String(), Generation: r.Generation, Version: r.Version,
		Requests: r.Counts.Requests, TotalSuccesses: r.Counts.TotalSuccesses,
		TotalFailures: r.Counts.TotalFailures, TotalExclusions: r.Counts.TotalExclusions,
		ConsecutiveSuccesses: r.Counts.ConsecutiveSuccesses, ConsecutiveFailures: r.Counts.ConsecutiveFailures,
		ExpiryMs: unixMs(r.Expiry), OpenedAtMs: unixMs(r.OpenedAt), ChangedAtMs: unixMs(r.ChangedAt),
		HalfOpenInflight: len(r.Trials),
	}
	if len(r.Trials) > 0 {
		it.Trials = make(map[string]int64, len(r.Trials))
		for id, t := range r.Trials {
			it.Trials[id] = unixMs(t)
		}
	}
	return it
}

func fromItem(it item) (Record, error) {
	st, err := parseState(it.State)
	if err != nil {
		return Record{}, fmt.Errorf("breaker %q: %w", it.Name, err)
	}
	r := Record{
		Name: it.Name, State: st, Generation: it.Generation, Version: it.Version,
		Counts: Counts{Requests: it.Requests, TotalSuccesses: it.TotalSuccesses, TotalFailures: it.TotalFailures,
			TotalExclusions: it.TotalExclusions, ConsecutiveSuccesses: it.ConsecutiveSuccesses,
			ConsecutiveFailures: it.ConsecutiveFailures},
		Expiry: fromMs(it.ExpiryMs), OpenedAt: fromMs(it.OpenedAtMs), ChangedAt: fromMs(it.ChangedAtMs),
	}
	if len(it.Trials) > 0 {
		r.Trials = make(map[string]time.Time, len(it.Trials))
		for id, ms := range it.Trials {
			r.Trials[id] = fromMs(ms)
		}
	}
	return r, nil
}

func unixMs(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMs(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

// EnsureTable creates the breakers table (on-demand, partition key name)
// unless it exists, and waits until it is active. For tests and the local
// stack; deployed tables come from template.yaml.
func EnsureTable(ctx context.Context, db *dynamodb.Client, table string) error {
	_, err := db.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String(table),
		BillingMode:          types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String(KeyName), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String(KeyName), KeyType: types.KeyTypeHash}},
	})
	var inUse *types.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) {
		return fmt.Errorf("breaker: create table %s: %w", table, err)
	}
	w := dynamodb.NewTableExistsWaiter(db, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay, o.MaxDelay = 100*time.Millisecond, time.Second
	})
	if err := w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)}, 30*time.Second); err != nil {
		return fmt.Errorf("breaker: wait for table %s: %w", table, err)
	}
	return nil
}
