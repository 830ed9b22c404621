package catalog

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// AttrSeal is the backups table attribute holding a backup's Seal.
const AttrSeal = "seal"

// SealStore is a Store that also records seals; *Dynamo is one.
type SealStore interface {
	Store
	SetSeal(ctx context.Context, backupID string, s Seal) error
}

var _ SealStore = (*Dynamo)(nil)

// Seal describes the sealed object of a backup: the ciphertext every
// provider copy holds (shared/seal's format), written once by the seal
// step. The plaintext's size and SHA-256 stay Backup.Size and
// Backup.SHA256, proven while sealing.
type Seal struct {
	// Key is the sealed object's key in the landing bucket,
	// sealed/{organizationId}/{backupId}.
	Key string `json:"key" dynamodbav:"key"`
	// Format is the sealed format (seal.Format).
	Format string `json:"format" dynamodbav:"format"`
	// KMSKeyID is the KMS key the backup's data key is wrapped under.
	KMSKeyID string `json:"kmsKeyId" dynamodbav:"kms_key_id"`
	// CipherSHA256 (hex) and CipherSize are those of the sealed bytes: what
	// every provider copy must match.
	CipherSHA256 string    `json:"cipherSha256" dynamodbav:"cipher_sha256"`
	CipherSize   int64     `json:"cipherSize" dynamodbav:"cipher_size"`
	SealedAt     time.Time `json:"sealedAt" dynamodbav:"sealed_at"`
}

// Same reports whether s and o describe the same sealed object (SealedAt
// aside: two deliveries recording one object may see different clocks).
func (s Seal) Same(o Seal) bool {
	return s.Key == o.Key && s.Format == o.Format && s.KMSKeyID == o.KMSKeyID &&
		strings.EqualFold(s.CipherSHA256, o.CipherSHA256) && s.CipherSize == o.CipherSize
}

// SetSeal records s as the seal of backup id, once: the write is
// conditional on the backup existing, having no seal yet and not being
// ERASED, and it raises the backup's version (so that a concurrent
// UpdateBackup of an older read conflicts and rereads rather than writing
// the seal away). Recording the same seal again (Seal.Same) succeeds
// without writing. A different seal already recorded, or an ERASED
// backup, is ErrConflict; a missing backup ErrNotFound. A zero SealedAt
// becomes now.
func (d *Dynamo) SetSeal(ctx context.Context, backupID string, s Seal) error {
	if backupID == "" || strings.HasPrefix(backupID, IdempotencyPrefix) {
		return fmt.Errorf("catalog: set seal %q: %w", backupID, ErrNotFound)
	}
	if s.Key == "" || s.Format == "" || s.CipherSHA256 == "" || s.CipherSize <= 0 {
		return errors.New("catalog: set seal: key, format, cipher SHA-256 and size are required")
	}
	now := d.now()
	if s.SealedAt.IsZero() {
		s.SealedAt = now
	}
	s.SealedAt = s.SealedAt.UTC()
	av, err := marshal(s)
	if err != nil {
		return err
	}
	_, err = d.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:        aws.String(d.cfg.BackupsTable),
		Key:              map[string]types.AttributeValue{AttrID: &types.AttributeValueMemberS{Value: backupID}},
		UpdateExpression: aws.String("SET #seal = :seal, #v = #v + :one, #u = :now"),
		ConditionExpression: aws.String("attribute_exists(#id) AND attribute_not_exists(#seal) AND " +
			"(attribute_not_exists(#st) OR #st <> :erased)"),
		ExpressionAttributeNames: map[string]string{"#id": AttrID, "#seal": AttrSeal, "#v": AttrVersion,
			"#u": "updated_at", "#st": AttrStatus},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":seal":   &types.AttributeValueMemberM{Value: av},
			":one":    number(1),
			":now":    &types.AttributeValueMemberS{Value: now.UTC().Format(timeLayout)},
			":erased": &types.AttributeValueMemberS{Value: string(StatusErased)},
		},
	})
	if err == nil {
		return nil
	}
	if !isConditionFailed(err) {
		return fmt.Errorf("catalog: set seal of %s: %w", backupID, err)
	}
	b, gerr := d.GetBackup(ctx, backupID)
	switch {
	case gerr != nil:
		return gerr
	case b.Seal != nil && b.Seal.Same(s):
		return nil
	case b.Seal != nil:
		return fmt.Errorf("catalog: set seal of %s: another seal is recorded (cipher sha256 %s): %w",
			backupID, b.Seal.CipherSHA256, ErrConflict)
	case b.Status == StatusErased:
		return fmt.Errorf("catalog: set seal of %s: backup erased: %w", backupID, ErrConflict)
	}
	return fmt.Errorf("catalog: set seal of %s: %w", backupID, ErrConflict)
}
