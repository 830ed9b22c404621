package catalog

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// maxQueryRounds bounds how many index queries one ListBackups call makes
// while a status filter skips items; the cursor carries on from there.
const maxQueryRounds = 10

// ListBackups pages through an organisation's backups, newest first,
// optionally only those in q.Status. A page may hold fewer than q.Limit
// backups and still have a Next.
func (d *Dynamo) ListBackups(ctx context.Context, q ListQuery) (Page, error) {
	if q.OrganizationID == "" {
		return Page{}, fmt.Errorf("catalog: list backups: organization id is empty")
	}
	limit := clampLimit(q.Limit, MaxListLimit)
	start, err := decodeCursor(q.Cursor, AttrOrganizationID, q.OrganizationID)
	if err != nil {
		return Page{}, err
	}
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(d.cfg.BackupsTable),
		IndexName:                 aws.String(IndexByOrganization),
		KeyConditionExpression:    aws.String("#o = :o"),
		ExpressionAttributeNames:  map[string]string{"#o": AttrOrganizationID},
		ExpressionAttributeValues: map[string]types.AttributeValue{":o": &types.AttributeValueMemberS{Value: q.OrganizationID}},
		ScanIndexForward:          aws.Bool(false),
	}
	if q.Status != "" {
		in.FilterExpression = aws.String("#s = :s")
		in.ExpressionAttributeNames["#s"] = AttrStatus
		in.ExpressionAttributeValues[":s"] = &types.AttributeValueMemberS{Value: string(q.Status)}
	}
	return d.query(ctx, in, start, limit)
}

// BackupsByStatus pages through the backups of every organisation in status
// s, oldest first.
func (d *Dynamo) BackupsByStatus(ctx context.Context, s Status, limit int, cursor string) (Page, error) {
	if s == "" {
		return Page{}, fmt.Errorf("catalog: backups by status: status is empty")
	}
	start, err := decodeCursor(cursor, AttrStatus, string(s))
	if err != nil {
		return Page{}, err
	}
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(d.cfg.BackupsTable),
		IndexName:                 aws.String(IndexByStatus),
		KeyConditionExpression:    aws.String("#s = :s"),
		ExpressionAttributeNames:  map[string]string{"#s": AttrStatus},
		ExpressionAttributeValues: map[string]types.AttributeValue{":s": &types.AttributeValueMemberS{Value: string(s)}},
		ScanIndexForward:          aws.Bool(true),
	}
	return d.query(ctx, in, start, clampLimit(limit, MaxByStatusLimit))
}

// query runs in from start until limit items are collected or the index
// ends. Each round asks for at most the number still wanted, so a filtered
// round never returns more than fits and LastEvaluatedKey is a safe cursor.
func (d *Dynamo) query(ctx context.Context, in *dynamodb.QueryInput, start map[string]types.AttributeValue, limit int) (Page, error) {
	page := Page{Backups: []Backup{}}
	for round := 0; round < maxQueryRounds; round++ {
		in.ExclusiveStartKey = start
		in.Limit = aws.Int32(int32(limit - len(page.Backups)))
		out, err := d.db.Query(ctx, in)
		if err != nil {
			return Page{}, fmt.Errorf("catalog: query %s: %w", *in.IndexName, err)
		}
		var bs []Backup
		if err := attributevalue.UnmarshalListOfMaps(out.Items, &bs); err != nil {
			return Page{}, fmt.Errorf("catalog: decode backups: %w", err)
		}
		page.Backups = append(page.Backups, bs...)
		start = out.LastEvaluatedKey
		if len(start) == 0 || len(page.Backups) >= limit {
			break
		}
	}
	if len(start) > 0 {
		next, err := encodeCursor(start)
		if err != nil {
			return Page{}, err
		}
		page.Next = next
	}
	return page, nil
}

func clampLimit(n, max int) int {
	if n <= 0 {
		return DefaultLimit
	}
	if n > max {
		return max
	}
	return n
}

// encodeCursor turns a LastEvaluatedKey (string attributes only) into
// URL-safe base64 of its JSON.
func encodeCursor(key map[string]types.AttributeValue) (string, error) {
	plain := make(map[string]string, len(key))
	for k, v := range key {
		s, ok := v.(*types.AttributeValueMemberS)
		if !ok {
			return "", fmt.Errorf("catalog: cursor attribute %s is not a string", k)
		}
		plain[k] = s.Value
	}
	b, err := json.Marshal(plain)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// decodeCursor reverses encodeCursor and checks that the cursor belongs to
// the index being queried (it has id, created_at and partition attribute
// part equal to want).
func decodeCursor(cursor, part, want string) (map[string]types.AttributeValue, error) {
	if cursor == "" {
		return nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return nil, ErrInvalidCursor
	}
	var plain map[string]string
	if err := json.Unmarshal(b, &plain); err != nil || len(plain) != 3 ||
		plain[AttrID] == "" || plain[AttrCreatedAt] == "" || plain[part] != want {
		return nil, ErrInvalidCursor
	}
	key := make(map[string]types.AttributeValue, len(plain))
	for k, v := range plain {
		key[k] = &types.AttributeValueMemberS{Value: v}
	}
	return key, nil
}
