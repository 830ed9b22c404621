package alert

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// put writes inc with version prev+1 if the stored version is still prev
// (0: no item yet), and returns it as written; errConflict otherwise.
func (m *Manager) put(ctx context.Context, inc Incident, prev int64) (Incident, error) {
	inc.Version = prev + 1
	item, err := attributevalue.MarshalMap(inc)
	if err != nil {
		return Incident{}, err
	}
	item[m.cfg.PartitionKey] = str(m.cfg.Partition)
	item[m.cfg.SortKey] = str(inc.Key)
	if inc.ExpiresAt > 0 {
		item[m.cfg.TTLAttribute] = &types.AttributeValueMemberN{Value: strconv.FormatInt(inc.ExpiresAt, 10)}
	}
	in := &dynamodb.PutItemInput{TableName: aws.String(m.cfg.Table), Item: item}
	if prev == 0 {
		in.ConditionExpression = aws.String("attribute_not_exists(#sk)")
		in.ExpressionAttributeNames = map[string]string{"#sk": m.cfg.SortKey}
	} else {
		in.ConditionExpression = aws.String("#version = :prev")
		in.ExpressionAttributeNames = map[string]string{"#version": "version"}
		in.ExpressionAttributeValues = map[string]types.AttributeValue{":prev": &types.AttributeValueMemberN{Value: strconv.FormatInt(prev, 10)}}
	}
	if _, err := m.db.PutItem(ctx, in); err != nil {
		var cf *types.ConditionalCheckFailedException
		if errors.As(err, &cf) {
			return Incident{}, errConflict
		}
		return Incident{}, err
	}
	return inc, nil
}

func (m *Manager) key(key string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{m.cfg.PartitionKey: str(m.cfg.Partition), m.cfg.SortKey: str(key)}
}

// get reads incident key with a consistent read; a missing one is the zero
// Incident (version 0) and found false.
func (m *Manager) get(ctx context.Context, key string) (Incident, bool, error) {
	out, err := m.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(m.cfg.Table), Key: m.key(key),
		ConsistentRead: aws.Bool(true)})
	if err != nil {
		return Incident{}, false, fmt.Errorf("alert %s: read: %w", Sanitize(key), err)
	}
	if out.Item == nil {
		return Incident{Key: key}, false, nil
	}
	inc, err := m.decode(key, out.Item)
	return inc, err == nil, err
}

// query pages through the incidents whose key starts with prefix and that
// pass filter, which may use #state and #done.
func (m *Manager) query(ctx context.Context, prefix, filter string, vals map[string]types.AttributeValue) ([]Incident, error) {
	cond := "#pk = :pk"
	all := map[string]types.AttributeValue{":pk": str(m.cfg.Partition)}
	for k, v := range vals {
		all[k] = v
	}
	names := map[string]string{"#pk": m.cfg.PartitionKey}
	if prefix != "" {
		cond += " AND begins_with(#sk, :prefix)"
		all[":prefix"] = str(prefix)
		names["#sk"] = m.cfg.SortKey
	}
	for _, n := range []string{"state", "done"} {
		if containsWord(filter, "#"+n) {
			names["#"+n] = n
		}
	}
	in := &dynamodb.QueryInput{TableName: aws.String(m.cfg.Table), KeyConditionExpression: aws.String(cond),
		FilterExpression: aws.String(filter), ExpressionAttributeNames: names, ExpressionAttributeValues: all,
		ConsistentRead: aws.Bool(true)}
	var out []Incident
	for {
		page, err := m.db.Query(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("alert: list incidents: %w", err)
		}
		for _, item := range page.Items {
			sk, _ := item[m.cfg.SortKey].(*types.AttributeValueMemberS)
			if sk == nil {
				continue
			}
			inc, err := m.decode(sk.Value, item)
			if err != nil {
				return nil, err
			}
			out = append(out, inc)
		}
		if len(page.LastEvaluatedKey) == 0 {
			return out, nil
		}
		in.ExclusiveStartKey = page.LastEvaluatedKey
	}
}

func (m *Manager) decode(key string, item map[string]types.AttributeValue) (Incident, error) {
	var inc Incident
	if err := attributevalue.UnmarshalMap(item, &inc); err != nil {
		return Incident{}, fmt.Errorf("alert %s: decode: %w", Sanitize(key), err)
	}
	inc.Key = key
	if n, ok := item[m.cfg.TTLAttribute].(*types.AttributeValueMemberN); ok {
		inc.ExpiresAt, _ = strconv.ParseInt(n.Value, 10, 64)
	}
	return inc, nil
}

// containsWord reports whether expr mentions the placeholder w.
func containsWord(expr, w string) bool {
	for i := 0; i+len(w) <= len(expr); i++ {
		if expr[i:i+len(w)] == w && (i+len(w) == len(expr) || !isNameChar(expr[i+len(w)])) {
			return true
		}
	}
	return false
}

func isNameChar(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func str(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }
