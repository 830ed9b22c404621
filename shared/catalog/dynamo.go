package catalog

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/google/uuid"
)

// ErrInvalidCursor is returned for a listing cursor that this store did not
// issue for the same query.
var ErrInvalidCursor = errors.New("catalog: invalid cursor")

// Listing limits.
const (
	DefaultLimit     = 50
	MaxListLimit     = 200
	MaxByStatusLimit = 1000
)

// timeLayout is fixed-width so that created_at sorts as text.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

// Dynamo is the DynamoDB adapter of Store. It is safe for concurrent use.
type Dynamo struct {
	db  *dynamodb.Client
	cfg Config
	now func() time.Time
}

var _ Store = (*Dynamo)(nil)

// NewDynamo returns a store on the tables named by cfg (see EnsureTables for
// their shape).
func NewDynamo(db *dynamodb.Client, cfg Config) (*Dynamo, error) {
	if db == nil {
		return nil, errors.New("catalog: nil DynamoDB client")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Dynamo{db: db, cfg: cfg, now: func() time.Time { return time.Now().UTC() }}, nil
}

// CreateBackup stores b with version 1. An empty b.ID gets a random UUID;
// an empty status becomes PENDING; a zero CreatedAt becomes now. When b has
// an IdempotencyKey already used in its organisation, the earlier backup is
// returned with created=false and nothing is written.
func (d *Dynamo) CreateBackup(ctx context.Context, b Backup) (Backup, bool, error) {
	if b.OrganizationID == "" {
		return Backup{}, false, errors.New("catalog: create backup: organization id is empty")
	}
	if b.ID == "" {
		b.ID = uuid.NewString()
	}
	if strings.HasPrefix(b.ID, IdempotencyPrefix) {
		return Backup{}, false, fmt.Errorf("catalog: create backup: id may not start with %q", IdempotencyPrefix)
	}
	now := d.now()
	if b.CreatedAt.IsZero() {
		b.CreatedAt = now
	}
	b.CreatedAt, b.UpdatedAt = b.CreatedAt.UTC(), now
	if b.Status == "" {
		b.Status = StatusPending
	}
	b.Version = 1
	item, err := marshal(b)
	if err != nil {
		return Backup{}, false, err
	}
	if b.IdempotencyKey == "" {
		_, err := d.db.PutItem(ctx, &dynamodb.PutItemInput{
			TableName:                aws.String(d.cfg.BackupsTable),
			Item:                     item,
			ConditionExpression:      aws.String("attribute_not_exists(#id)"),
			ExpressionAttributeNames: map[string]string{"#id": AttrID},
		})
		if isConditionFailed(err) {
			return Backup{}, false, fmt.Errorf("catalog: create backup %s: id taken: %w", b.ID, ErrConflict)
		}
		if err != nil {
			return Backup{}, false, fmt.Errorf("catalog: create backup %s: %w", b.ID, err)
		}
		return b, true, nil
	}

	idem := idempotencyID(b.OrganizationID, b.IdempotencyKey)
	for attempt := 0; attempt < 5; attempt++ {
		// 1. Claim the key for b.ID.
		_, err := d.db.PutItem(ctx, &dynamodb.PutItemInput{
			TableName: aws.String(d.cfg.BackupsTable),
			Item: map[string]types.AttributeValue{
				AttrID:       &types.AttributeValueMemberS{Value: idem},
				AttrBackupID: &types.AttributeValueMemberS{Value: b.ID},
			},
			ConditionExpression:      aws.String("attribute_not_exists(#id)"),
			ExpressionAttributeNames: map[string]string{"#id": AttrID},
		})
		if err != nil && !isConditionFailed(err) {
			return Backup{}, false, fmt.Errorf("catalog: create backup %s: claim idempotency key: %w", b.ID, err)
		}
		if err != nil {
			// 2'. The key is held: its backup is the answer. When that
			// backup is not written yet (its writer is in flight or
			// crashed), write it ourselves under the holder's id.
			holder, ok, err := d.idempotencyHolder(ctx, idem)
			if err != nil {
				return Backup{}, false, err
			}
			if !ok {
				continue // vanished between the two calls: claim again
			}
			existing, err := d.GetBackup(ctx, holder)
			if err == nil {
				return existing, false, nil
			}
			if !errors.Is(err, ErrNotFound) {
				return Backup{}, false, err
			}
			b.ID = holder
			if item, err = marshal(b); err != nil {
				return Backup{}, false, err
			}
		}
		// 2. Write the backup under the claimed id; if another request
		// holding the same key wrote it first, that one is the answer.
		_, err = d.db.PutItem(ctx, &dynamodb.PutItemInput{
			TableName:                aws.String(d.cfg.BackupsTable),
			Item:                     item,
			ConditionExpression:      aws.String("attribute_not_exists(#id)"),
			ExpressionAttributeNames: map[string]string{"#id": AttrID},
		})
		if err == nil {
			return b, true, nil
		}
		if !isConditionFailed(err) {
			return Backup{}, false, fmt.Errorf("catalog: create backup %s: %w", b.ID, err)
		}
		existing, err := d.GetBackup(ctx, b.ID)
		if err != nil {
			return Backup{}, false, err
		}
		return existing, false, nil
	}
	return Backup{}, false, fmt.Errorf("catalog: create backup %s: %w", b.ID, ErrConflict)
}

// idempotencyHolder reads which backup id holds an idempotency key.
func (d *Dynamo) idempotencyHolder(ctx context.Context, idem string) (string, bool, error) {
	out, err := d.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(d.cfg.BackupsTable),
		Key:            map[string]types.AttributeValue{AttrID: &types.AttributeValueMemberS{Value: idem}},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return "", false, fmt.Errorf("catalog: read idempotency item: %w", err)
	}
	v, ok := out.Item[AttrBackupID].(*types.AttributeValueMemberS)
	if !ok {
		return "", false, nil
	}
	return v.Value, true, nil
}

// GetBackup reads a backup with a strongly consistent read.
func (d *Dynamo) GetBackup(ctx context.Context, id string) (Backup, error) {
	if id == "" || strings.HasPrefix(id, IdempotencyPrefix) {
		return Backup{}, fmt.Errorf("catalog: backup %q: %w", id, ErrNotFound)
	}
	out, err := d.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(d.cfg.BackupsTable),
		Key:            map[string]types.AttributeValue{AttrID: &types.AttributeValueMemberS{Value: id}},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return Backup{}, fmt.Errorf("catalog: get backup %s: %w", id, err)
	}
	if len(out.Item) == 0 {
		return Backup{}, fmt.Errorf("catalog: backup %s: %w", id, ErrNotFound)
	}
	var b Backup
	if err := attributevalue.UnmarshalMap(out.Item, &b); err != nil {
		return Backup{}, fmt.Errorf("catalog: decode backup %s: %w", id, err)
	}
	return b, nil
}

// UpdateBackup replaces the stored backup with b when the stored version is
// b.Version, and returns b with the next version and UpdatedAt now. It
// returns ErrConflict when another write got there first and ErrNotFound
// when there is no such backup.
func (d *Dynamo) UpdateBackup(ctx context.Context, b Backup) (Backup, error) {
	if b.ID == "" || strings.HasPrefix(b.ID, IdempotencyPrefix) {
		return Backup{}, fmt.Errorf("catalog: update backup %q: %w", b.ID, ErrNotFound)
	}
	prev := b.Version
	b.Version++
	b.UpdatedAt = d.now()
	item, err := marshal(b)
	if err != nil {
		return Backup{}, err
	}
	_, err = d.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                 aws.String(d.cfg.BackupsTable),
		Item:                      item,
		ConditionExpression:       aws.String("attribute_exists(#id) AND #v = :v"),
		ExpressionAttributeNames:  map[string]string{"#id": AttrID, "#v": AttrVersion},
		ExpressionAttributeValues: map[string]types.AttributeValue{":v": number(prev)},
	})
	if isConditionFailed(err) {
		if _, gerr := d.GetBackup(ctx, b.ID); errors.Is(gerr, ErrNotFound) {
			return Backup{}, gerr
		}
		return Backup{}, fmt.Errorf("catalog: update backup %s at version %d: %w", b.ID, prev, ErrConflict)
	}
	if err != nil {
		return Backup{}, fmt.Errorf("catalog: update backup %s: %w", b.ID, err)
	}
	return b, nil
}

// Replicas returns every replica record of a backup (strongly consistent),
// in provider order.
func (d *Dynamo) Replicas(ctx context.Context, backupID string) ([]Replica, error) {
	var out []Replica
	var start map[string]types.AttributeValue
	for {
		page, err := d.db.Query(ctx, &dynamodb.QueryInput{
			TableName:                 aws.String(d.cfg.ReplicasTable),
			KeyConditionExpression:    aws.String("#b = :b"),
			ExpressionAttributeNames:  map[string]string{"#b": AttrBackupID},
			ExpressionAttributeValues: map[string]types.AttributeValue{":b": &types.AttributeValueMemberS{Value: backupID}},
			ConsistentRead:            aws.Bool(true),
			ExclusiveStartKey:         start,
		})
		if err != nil {
			return nil, fmt.Errorf("catalog: replicas of %s: %w", backupID, err)
		}
		var rs []Replica
		if err := attributevalue.UnmarshalListOfMaps(page.Items, &rs); err != nil {
			return nil, fmt.Errorf("catalog: decode replicas of %s: %w", backupID, err)
		}
		out = append(out, rs...)
		if len(page.LastEvaluatedKey) == 0 {
			return out, nil
		}
		start = page.LastEvaluatedKey
	}
}

// GetReplica reads one replica record (strongly consistent).
func (d *Dynamo) GetReplica(ctx context.Context, backupID, provider string) (Replica, error) {
	out, err := d.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(d.cfg.ReplicasTable),
		Key:            replicaKey(backupID, provider),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return Replica{}, fmt.Errorf("catalog: get replica %s/%s: %w", backupID, provider, err)
	}
	if len(out.Item) == 0 {
		return Replica{}, fmt.Errorf("catalog: replica %s/%s: %w", backupID, provider, ErrNotFound)
	}
	var r Replica
	if err := attributevalue.UnmarshalMap(out.Item, &r); err != nil {
		return Replica{}, fmt.Errorf("catalog: decode replica %s/%s: %w", backupID, provider, err)
	}
	return r, nil
}

// PutReplica writes r when the stored version is r.Version (0: no record
// yet) and returns r with the next version and UpdatedAt now. It returns
// ErrConflict when another write got there first (or a record exists when
// version 0 was given) and ErrNotFound when r.Version > 0 but no record
// exists.
func (d *Dynamo) PutReplica(ctx context.Context, r Replica) (Replica, error) {
	if r.BackupID == "" || r.Provider == "" {
		return Replica{}, errors.New("catalog: put replica: backup id and provider are required")
	}
	prev := r.Version
	r.Version++
	r.UpdatedAt = d.now()
	item, err := marshal(r)
	if err != nil {
		return Replica{}, err
	}
	in := &dynamodb.PutItemInput{TableName: aws.String(d.cfg.ReplicasTable), Item: item}
	if prev == 0 {
		in.ConditionExpression = aws.String("attribute_not_exists(#b)")
		in.ExpressionAttributeNames = map[string]string{"#b": AttrBackupID}
	} else {
		in.ConditionExpression = aws.String("attribute_exists(#b) AND #v = :v")
		in.ExpressionAttributeNames = map[string]string{"#b": AttrBackupID, "#v": AttrVersion}
		in.ExpressionAttributeValues = map[string]types.AttributeValue{":v": number(prev)}
	}
	_, err = d.db.PutItem(ctx, in)
	if isConditionFailed(err) {
		if prev > 0 {
			if _, gerr := d.GetReplica(ctx, r.BackupID, r.Provider); errors.Is(gerr, ErrNotFound) {
				return Replica{}, gerr
			}
		}
		return Replica{}, fmt.Errorf("catalog: put replica %s/%s at version %d: %w", r.BackupID, r.Provider, prev, ErrConflict)
	}
	if err != nil {
		return Replica{}, fmt.Errorf("catalog: put replica %s/%s: %w", r.BackupID, r.Provider, err)
	}
	return r, nil
}

func replicaKey(backupID, provider string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		AttrBackupID: &types.AttributeValueMemberS{Value: backupID},
		AttrProvider: &types.AttributeValueMemberS{Value: provider},
	}
}

// idempotencyID escapes both parts so that "#" inside them cannot make two
// different pairs collide.
func idempotencyID(org, key string) string {
	return IdempotencyPrefix + url.QueryEscape(org) + "#" + url.QueryEscape(key)
}

func marshal(v any) (map[string]types.AttributeValue, error) {
	m, err := attributevalue.MarshalMapWithOptions(v, func(o *attributevalue.EncoderOptions) {
		o.EncodeTime = func(t time.Time) (types.AttributeValue, error) {
			return &types.AttributeValueMemberS{Value: t.UTC().Format(timeLayout)}, nil
		}
	})
	if err != nil {
		return nil, fmt.Errorf("catalog: encode: %w", err)
	}
	return m, nil
}

func number(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: fmt.Sprint(n)}
}

func isConditionFailed(err error) bool {
	var ccf *types.ConditionalCheckFailedException
	return errors.As(err, &ccf)
}

// Config returns the table names the store works on.
func (d *Dynamo) Config() Config { return d.cfg }
