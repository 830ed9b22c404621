package keys

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// Create returns the backup's data key (32 bytes) and its record, making
// one when there is none: KMS GenerateDataKey (AES_256) under KeyFor(org)
// with the encryption context Context(org, backup); only the wrapped key
// is stored, by a put conditional on the item being absent. It is
// idempotent: an existing live record (also one a concurrent Create has
// just written) is unwrapped and returned. A destroyed record gives
// ErrShredded (a shredded backup never gets a new key), a record of another
// organisation ErrWrongOrganization.
func (s *Store) Create(ctx context.Context, org, backup string) (plain []byte, rec Record, err error) {
	if err := checkIDs(org, backup); err != nil {
		return nil, Record{}, err
	}
	existing, found, err := s.get(ctx, backup)
	if err != nil {
		return nil, Record{}, err
	}
	if found {
		return s.unwrap(ctx, org, existing)
	}
	keyID, err := s.KeyFor(ctx, org)
	if err != nil {
		return nil, Record{}, err
	}
	out, err := s.kms.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{
		KeyId: aws.String(keyID), KeySpec: kmstypes.DataKeySpecAes256, EncryptionContext: Context(org, backup),
	})
	if err != nil {
		return nil, Record{}, fmt.Errorf("keys: generate data key for backup %s under %s: %w", backup, keyID, err)
	}
	if len(out.Plaintext) != KeySize || len(out.CiphertextBlob) == 0 {
		return nil, Record{}, fmt.Errorf("keys: KMS returned a %d-byte data key for backup %s, want %d", len(out.Plaintext), backup, KeySize)
	}
	rec = Record{BackupID: backup, OrganizationID: org, KMSKeyID: aws.ToString(out.KeyId),
		Wrapped: out.CiphertextBlob, CreatedAt: s.now().UTC()}
	if rec.KMSKeyID == "" {
		rec.KMSKeyID = keyID
	}
	_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(s.cfg.Table), Item: rec.item(),
		ConditionExpression:      aws.String("attribute_not_exists(#id)"),
		ExpressionAttributeNames: map[string]string{"#id": AttrBackupID},
	})
	if isConditionFailed(err) {
		// Someone else wrote the record first (a concurrent Create, or a
		// Destroy's tombstone): theirs stands.
		clear(out.Plaintext)
		existing, found, err := s.get(ctx, backup)
		if err != nil {
			return nil, Record{}, err
		}
		if !found {
			return nil, Record{}, fmt.Errorf("keys: record of backup %s vanished while creating it", backup)
		}
		return s.unwrap(ctx, org, existing)
	}
	if err != nil {
		return nil, Record{}, fmt.Errorf("keys: store wrapped key of backup %s: %w", backup, err)
	}
	return out.Plaintext, rec, nil
}

// Open unwraps the backup's data key with KMS Decrypt under the same
// encryption context and the record's KMS key. It returns ErrNotFound,
// ErrShredded, or ErrWrongOrganization when the record is another
// organisation's.
func (s *Store) Open(ctx context.Context, org, backup string) ([]byte, Record, error) {
	if err := checkIDs(org, backup); err != nil {
		return nil, Record{}, err
	}
	rec, found, err := s.get(ctx, backup)
	if err != nil {
		return nil, Record{}, err
	}
	if !found {
		return nil, Record{}, fmt.Errorf("%w (backup %s)", ErrNotFound, backup)
	}
	return s.unwrap(ctx, org, rec)
}

// unwrap checks rec against org and decrypts its wrapped key.
func (s *Store) unwrap(ctx context.Context, org string, rec Record) ([]byte, Record, error) {
	if rec.OrganizationID != org {
		return nil, Record{}, fmt.Errorf("%w (backup %s)", ErrWrongOrganization, rec.BackupID)
	}
	if rec.Destroyed() || len(rec.Wrapped) == 0 {
		return nil, rec, fmt.Errorf("%w (backup %s)", ErrShredded, rec.BackupID)
	}
	in := &kms.DecryptInput{CiphertextBlob: rec.Wrapped, EncryptionContext: Context(org, rec.BackupID)}
	if rec.KMSKeyID != "" {
		in.KeyId = aws.String(rec.KMSKeyID)
	}
	out, err := s.kms.Decrypt(ctx, in)
	if err != nil {
		return nil, Record{}, fmt.Errorf("keys: unwrap data key of backup %s: %w", rec.BackupID, err)
	}
	if len(out.Plaintext) != KeySize {
		return nil, Record{}, fmt.Errorf("keys: unwrapped data key of backup %s is %d bytes, want %d", rec.BackupID, len(out.Plaintext), KeySize)
	}
	return out.Plaintext, rec, nil
}

// Destroy removes the backup's wrapped key and records when, by whom and
// why (the tombstone stays for audit). It is idempotent: destroying again
// returns the first tombstone unchanged. Destroying a backup that has no
// record writes a tombstone, so that a seal step still in flight cannot
// create a key afterwards (its Create gets ErrShredded). by is required; a
// record of another organisation gives ErrWrongOrganization.
func (s *Store) Destroy(ctx context.Context, org, backup, by, reason string) (Record, error) {
	if err := checkIDs(org, backup); err != nil {
		return Record{}, err
	}
	if by == "" {
		return Record{}, errors.New("keys: destroy needs who destroys (by)")
	}
	set := "#org = if_not_exists(#org, :org), #at = :at, #by = :by"
	names := map[string]string{"#id": AttrBackupID, "#org": AttrOrganizationID, "#at": AttrDestroyedAt,
		"#by": AttrDestroyedBy, "#wrapped": AttrWrapped}
	values := map[string]types.AttributeValue{":org": str(org), ":at": str(formatTime(s.now())), ":by": str(by)}
	if reason != "" {
		set += ", #reason = :reason"
		names["#reason"] = AttrReason
		values[":reason"] = str(reason)
	}
	out, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(s.cfg.Table), Key: map[string]types.AttributeValue{AttrBackupID: str(backup)},
		UpdateExpression:          aws.String("SET " + set + " REMOVE #wrapped"),
		ConditionExpression:       aws.String("attribute_not_exists(#at) AND (attribute_not_exists(#id) OR #org = :org)"),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
		ReturnValues:              types.ReturnValueAllNew,
	})
	if isConditionFailed(err) {
		rec, found, err := s.get(ctx, backup)
		switch {
		case err != nil:
			return Record{}, err
		case found && rec.OrganizationID != org:
			return Record{}, fmt.Errorf("%w (backup %s)", ErrWrongOrganization, backup)
		case found && rec.Destroyed():
			return rec, nil // destroyed before: the first tombstone stands
		}
		return Record{}, fmt.Errorf("keys: destroy key of backup %s: the record changed under the update", backup)
	}
	if err != nil {
		return Record{}, fmt.Errorf("keys: destroy key of backup %s: %w", backup, err)
	}
	return parseRecord(out.Attributes)
}

// KeyFor returns the KMS key to wrap org's data keys under: the key behind
// the alias AliasPrefix+org when it exists; else, with CreateOrgKeys, a new
// key given that alias; else DefaultKeyID; else an error. It returns the
// key's ARN when it looked the key up, DefaultKeyID as configured.
func (s *Store) KeyFor(ctx context.Context, org string) (string, error) {
	if !aliasOrgRE.MatchString(org) {
		// No alias can name this organisation's key.
		if s.cfg.DefaultKeyID != "" {
			return s.cfg.DefaultKeyID, nil
		}
		return "", fmt.Errorf("keys: organization id %q cannot be part of a KMS alias (1-64 of A-Z a-z 0-9 _ -)", org)
	}
	alias := s.cfg.AliasPrefix + org
	arn, found, err := s.describe(ctx, alias)
	switch {
	case err != nil:
		return "", err
	case found:
		return arn, nil
	case s.cfg.CreateOrgKeys:
		return s.createOrgKey(ctx, org, alias)
	case s.cfg.DefaultKeyID != "":
		return s.cfg.DefaultKeyID, nil
	}
	return "", fmt.Errorf("keys: organization %s has no KMS key (%s) and no default key is configured", org, alias)
}

// describe resolves a key id or alias to its key's ARN.
func (s *Store) describe(ctx context.Context, id string) (arn string, found bool, err error) {
	out, err := s.kms.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(id)})
	var nf *kmstypes.NotFoundException
	if errors.As(err, &nf) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("keys: describe KMS key %s: %w", id, err)
	}
	if out.KeyMetadata == nil || aws.ToString(out.KeyMetadata.Arn) == "" {
		return "", false, fmt.Errorf("keys: KMS described %s without an ARN", id)
	}
	return aws.ToString(out.KeyMetadata.Arn), true, nil
}

// createOrgKey creates a symmetric key for org and names it alias. When
// another instance named its own key first, that key wins and ours is
// scheduled for deletion (it wrapped nothing).
func (s *Store) createOrgKey(ctx context.Context, org, alias string) (string, error) {
	out, err := s.kms.CreateKey(ctx, &kms.CreateKeyInput{
		Description: aws.String("ws191 data keys of organization " + org),
		KeySpec:     kmstypes.KeySpecSymmetricDefault, KeyUsage: kmstypes.KeyUsageTypeEncryptDecrypt,
		Tags: []kmstypes.Tag{{TagKey: aws.String("ws191:organizationId"), TagValue: aws.String(org)}},
	})
	if err != nil {
		return "", fmt.Errorf("keys: create KMS key of organization %s: %w", org, err)
	}
	keyID, arn := aws.ToString(out.KeyMetadata.KeyId), aws.ToString(out.KeyMetadata.Arn)
	_, err = s.kms.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String(alias), TargetKeyId: aws.String(keyID)})
	var exists *kmstypes.AlreadyExistsException
	if errors.As(err, &exists) {
		// Best effort: an unused key costs money, not data.
		s.kms.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(keyID), PendingWindowInDays: aws.Int32(7)})
		arn, found, err := s.describe(ctx, alias)
		if err != nil {
			return "", err
		}
		if !found {
			return "", fmt.Errorf("keys: alias %s exists and does not (concurrent change); try again", alias)
		}
		return arn, nil
	}
	if err != nil {
		return "", fmt.Errorf("keys: name KMS key of organization %s %s: %w", org, alias, err)
	}
	return arn, nil
}

func checkIDs(org, backup string) error {
	if org == "" || backup == "" {
		return errors.New("keys: organization and backup ids are required")
	}
	return nil
}

func isConditionFailed(err error) bool {
	var cf *types.ConditionalCheckFailedException
	return errors.As(err, &cf)
}

// get reads a backup's record (strongly consistent).
func (s *Store) get(ctx context.Context, backup string) (Record, bool, error) {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(s.cfg.Table), Key: map[string]types.AttributeValue{AttrBackupID: str(backup)},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return Record{}, false, fmt.Errorf("keys: read key record of backup %s: %w", backup, err)
	}
	if len(out.Item) == 0 {
		return Record{}, false, nil
	}
	rec, err := parseRecord(out.Item)
	return rec, err == nil, err
}

// timeLayout is fixed-width UTC, so that times sort as text.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }
