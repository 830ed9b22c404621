package health

// The health table (HEALTH_TABLE; template.yaml's HealthTable), for whoever
// declares it: on-demand, partition key "provider" (S), sort key "at" (S),
// TTL on "expires_at". It holds four kinds of items:
//
//	provider=<name>       at=<UTC time, fixed width>   probe history, expires after Config.HistoryTTL
//	provider=<name>       at="status"                  the provider's ProviderStatus (version-conditional)
//	provider="_health"    at="reconcile" | "scrub"     markers: last periodic reconcile, scrub cursor
//	provider="_incident"  at=<incident key>            alert incidents (shared/alert)
//
// The health function needs dynamodb:GetItem, PutItem, Query on it; the api
// function (Status) dynamodb:GetItem.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Table layout.
const (
	// DefaultTable is the table name the local stack and tests use when
	// nothing is configured.
	DefaultTable = "ws191-health"
	KeyProvider  = "provider"
	KeyAt        = "at"
	AttrExpires  = "expires_at"
	// StatusAt is the sort key of a provider's status document.
	StatusAt = "status"
	// MarkerPartition holds the health function's own markers.
	MarkerPartition = "_health"
	// historyLayout sorts as text.
	historyLayout = "2006-01-02T15:04:05.000000000Z"
)

// ErrConflict says a conditional write lost: the item changed since it
// was read.
var ErrConflict = errors.New("health: item changed since it was read")

// Store is the health table's adapter.
type Store struct {
	db    *dynamodb.Client
	table string
}

// NewStore returns the adapter of table.
func NewStore(db *dynamodb.Client, table string) (*Store, error) {
	if db == nil || table == "" {
		return nil, errors.New("health: a DynamoDB client and a table name (HEALTH_TABLE) are required")
	}
	return &Store{db: db, table: table}, nil
}

// Table is the table's name.
func (s *Store) Table() string { return s.table }

// HistoryRecord is one probe in a provider's history.
type HistoryRecord struct {
	Provider  string    `json:"provider" dynamodbav:"provider"`
	At        time.Time `json:"at" dynamodbav:"-"`
	OK        bool      `json:"ok" dynamodbav:"ok"`
	Step      string    `json:"step,omitempty" dynamodbav:"step,omitempty"`
	Kind      string    `json:"kind,omitempty" dynamodbav:"kind,omitempty"`
	Error     string    `json:"error,omitempty" dynamodbav:"error,omitempty"`
	LatencyMs int64     `json:"latencyMs" dynamodbav:"latency_ms"`
	State     string    `json:"state" dynamodbav:"state"`
	Breaker   string    `json:"breaker,omitempty" dynamodbav:"breaker,omitempty"`
}

// AddHistory stores rec, to expire after ttl.
func (s *Store) AddHistory(ctx context.Context, rec HistoryRecord, ttl time.Duration) error {
	item, err := attributevalue.MarshalMap(rec)
	if err != nil {
		return err
	}
	item[KeyAt] = str(rec.At.UTC().Format(historyLayout))
	item[AttrExpires] = num(rec.At.Add(ttl).Unix())
	_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(s.table), Item: item})
	if err != nil {
		return fmt.Errorf("health history %s: %w", rec.Provider, err)
	}
	return nil
}

// History returns provider's probes since since, newest first, at most
// limit of them.
func (s *Store) History(ctx context.Context, provider string, since time.Time, limit int) ([]HistoryRecord, error) {
	out, err := s.db.Query(ctx, &dynamodb.QueryInput{
		TableName:                aws.String(s.table),
		KeyConditionExpression:   aws.String("#p = :p AND #at BETWEEN :from AND :to"),
		ExpressionAttributeNames: map[string]string{"#p": KeyProvider, "#at": KeyAt},
		ExpressionAttributeValues: map[string]types.AttributeValue{":p": str(provider),
			":from": str(since.UTC().Format(historyLayout)), ":to": str("9999")},
		ScanIndexForward: aws.Bool(false),
		Limit:            aws.Int32(int32(max(1, limit))),
	})
	if err != nil {
		return nil, fmt.Errorf("health history %s: %w", provider, err)
	}
	recs := make([]HistoryRecord, 0, len(out.Items))
	for _, it := range out.Items {
		var r HistoryRecord
		if err := attributevalue.UnmarshalMap(it, &r); err != nil {
			return nil, err
		}
		if at, ok := it[KeyAt].(*types.AttributeValueMemberS); ok {
			r.At, _ = time.Parse(historyLayout, at.Value)
		}
		recs = append(recs, r)
	}
	return recs, nil
}

// LoadStatus reads provider's status document (consistent read); a
// provider never probed has the zero status (Version 0).
func (s *Store) LoadStatus(ctx context.Context, provider string) (ProviderStatus, error) {
	item, err := s.get(ctx, provider, StatusAt, true)
	if err != nil || item == nil {
		return ProviderStatus{Provider: provider}, err
	}
	var st ProviderStatus
	if err := attributevalue.UnmarshalMap(item, &st); err != nil {
		return ProviderStatus{}, fmt.Errorf("health status %s: %w", provider, err)
	}
	return st, nil
}

// SaveStatus writes st if the stored version is still prev (0: none
// stored), as version prev+1; ErrConflict otherwise.
func (s *Store) SaveStatus(ctx context.Context, st ProviderStatus, prev int64) (ProviderStatus, error) {
	st.Version = prev + 1
	item, err := attributevalue.MarshalMap(st)
	if err != nil {
		return ProviderStatus{}, err
	}
	item[KeyAt] = str(StatusAt)
	if err := s.put(ctx, item, prev); err != nil {
		return ProviderStatus{}, fmt.Errorf("health status %s: %w", st.Provider, err)
	}
	return st, nil
}

// Marker is a small value the health function keeps between runs.
type Marker struct {
	Value   string
	Version int64
}

// LoadMarker reads marker name (zero when absent).
func (s *Store) LoadMarker(ctx context.Context, name string) (Marker, error) {
	item, err := s.get(ctx, MarkerPartition, name, true)
	if err != nil || item == nil {
		return Marker{}, err
	}
	var m struct {
		Value   string `dynamodbav:"value"`
		Version int64  `dynamodbav:"version"`
	}
	err = attributevalue.UnmarshalMap(item, &m)
	return Marker{Value: m.Value, Version: m.Version}, err
}

// SaveMarker writes marker name if its version is still prev; ErrConflict
// otherwise (another run got there first).
func (s *Store) SaveMarker(ctx context.Context, name, value string, prev int64) error {
	item := map[string]types.AttributeValue{KeyProvider: str(MarkerPartition), KeyAt: str(name),
		"value": str(value), "version": num(prev + 1)}
	if err := s.put(ctx, item, prev); err != nil {
		return fmt.Errorf("health marker %s: %w", name, err)
	}
	return nil
}

func (s *Store) get(ctx context.Context, pk, sk string, consistent bool) (map[string]types.AttributeValue, error) {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(s.table),
		Key: map[string]types.AttributeValue{KeyProvider: str(pk), KeyAt: str(sk)}, ConsistentRead: aws.Bool(consistent)})
	if err != nil {
		return nil, fmt.Errorf("health %s/%s: %w", pk, sk, err)
	}
	return out.Item, nil
}

// put writes item (whose "version" is prev+1) if the stored version is prev.
func (s *Store) put(ctx context.Context, item map[string]types.AttributeValue, prev int64) error {
	in := &dynamodb.PutItemInput{TableName: aws.String(s.table), Item: item}
	if prev == 0 {
		in.ConditionExpression = aws.String("attribute_not_exists(#at)")
		in.ExpressionAttributeNames = map[string]string{"#at": KeyAt}
	} else {
		in.ConditionExpression = aws.String("#v = :prev")
		in.ExpressionAttributeNames = map[string]string{"#v": "version"}
		in.ExpressionAttributeValues = map[string]types.AttributeValue{":prev": num(prev)}
	}
	_, err := s.db.PutItem(ctx, in)
	var cf *types.ConditionalCheckFailedException
	if errors.As(err, &cf) {
		return ErrConflict
	}
	return err
}

// TableInput is the CreateTable request for the health table.
func TableInput(name string) *dynamodb.CreateTableInput {
	s := types.ScalarAttributeTypeS
	return &dynamodb.CreateTableInput{
		TableName:   aws.String(name),
		BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String(KeyProvider), AttributeType: s},
			{AttributeName: aws.String(KeyAt), AttributeType: s}},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String(KeyProvider), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String(KeyAt), KeyType: types.KeyTypeRange}},
	}
}

// EnsureTable creates the health table with its TTL when it does not
// exist, and waits until it is active. For tests and the local stack;
// production declares it in template.yaml.
func EnsureTable(ctx context.Context, db *dynamodb.Client, name string) error {
	_, err := db.CreateTable(ctx, TableInput(name))
	var inUse *types.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) {
		return fmt.Errorf("create table %s: %w", name, err)
	}
	if err := dynamodb.NewTableExistsWaiter(db).Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)}, 2*time.Minute); err != nil {
		return fmt.Errorf("table %s: %w", name, err)
	}
	_, err = db.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{TableName: aws.String(name),
		TimeToLiveSpecification: &types.TimeToLiveSpecification{AttributeName: aws.String(AttrExpires), Enabled: aws.Bool(true)}})
	if err != nil {
		// DynamoDB refuses to enable a TTL that is already enabled.
		d, derr := db.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(name)})
		if derr != nil || d.TimeToLiveDescription == nil || aws.ToString(d.TimeToLiveDescription.AttributeName) != AttrExpires {
			return fmt.Errorf("table %s: TTL: %w", name, err)
		}
	}
	return nil
}

func str(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }

func num(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}
