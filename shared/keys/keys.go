// Package keys keeps the per-backup data keys of sealed backups (package
// seal) as envelope keys: KMS GenerateDataKey makes a 32-byte data key under
// the organisation's KMS key, with the encryption context
// {"organizationId": org, "backupId": backup}; only the wrapped (encrypted)
// form is stored, one DynamoDB item per backup. Opening a backup's key is a
// KMS Decrypt with the same context, so a wrapped key moved to another
// organisation or backup cannot be unwrapped.
//
// Destroy removes the wrapped key and leaves a tombstone (who, when, why)
// for audit: every sealed copy of that backup, immutable ones included, is
// unreadable from then on (crypto-shredding).
//
// The package never logs, and no error it returns carries key material.
package keys

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"
)

// DefaultAliasPrefix is Config.AliasPrefix when empty.
const DefaultAliasPrefix = "alias/ws191/org/"

// DefaultTable is the keys table's name in the local stack and tests.
const DefaultTable = "ws191-keys"

// KeySize is the size of a data key in bytes (AES-256, as seal.KeySize).
const KeySize = 32

// Config configures a Store.
type Config struct {
	// Table is the DynamoDB keys table (KEYS_TABLE).
	Table string
	// DefaultKeyID is the KMS key (id, ARN or alias) used for an
	// organisation without its own key (KMS_KEY_ID). Empty: every
	// organisation needs its own key (an alias, or CreateOrgKeys).
	DefaultKeyID string
	// AliasPrefix + organisation id is the alias of an organisation's own
	// key (KMS_KEY_ALIAS_PREFIX; default DefaultAliasPrefix).
	AliasPrefix string
	// CreateOrgKeys makes KeyFor create an organisation's key and alias when
	// it has none (KMS_CREATE_ORG_KEYS).
	CreateOrgKeys bool
}

// Validate reports every missing or inconsistent setting, naming the
// environment variable.
func (c Config) Validate() error {
	var errs []error
	if c.Table == "" {
		errs = append(errs, errors.New("KEYS_TABLE is required"))
	}
	if p := c.aliasPrefix(); !aliasPrefixRE.MatchString(p) {
		errs = append(errs, fmt.Errorf("KMS_KEY_ALIAS_PREFIX %q must start with alias/ and use only A-Z a-z 0-9 / _ -", p))
	}
	return errors.Join(errs...)
}

func (c Config) aliasPrefix() string {
	if c.AliasPrefix == "" {
		return DefaultAliasPrefix
	}
	return c.AliasPrefix
}

var (
	aliasPrefixRE = regexp.MustCompile(`^alias/[A-Za-z0-9/_-]*$`)
	aliasOrgRE    = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
)

// Record is a backup's key record. Wrapped is empty once destroyed.
type Record struct {
	BackupID       string
	OrganizationID string
	// KMSKeyID is the ARN of the KMS key that wrapped the data key.
	KMSKeyID string
	// Wrapped is the KMS ciphertext of the data key (not secret on its own:
	// only KMS, with the right context, can unwrap it).
	Wrapped     []byte
	CreatedAt   time.Time
	DestroyedAt *time.Time
	DestroyedBy string
	Reason      string
}

// LogValue logs the record without its wrapped key (the wrapped key is not
// usable without KMS, but has no business in logs either).
func (r Record) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("backup_id", r.BackupID), slog.String("organization_id", r.OrganizationID),
		slog.String("kms_key_id", r.KMSKeyID), slog.Bool("wrapped", len(r.Wrapped) > 0)}
	if r.DestroyedAt != nil {
		attrs = append(attrs, slog.Time("destroyed_at", *r.DestroyedAt), slog.String("destroyed_by", r.DestroyedBy),
			slog.String("reason", r.Reason))
	}
	return slog.GroupValue(attrs...)
}

// Destroyed reports whether the record is a tombstone.
func (r Record) Destroyed() bool { return r.DestroyedAt != nil }

// ErrShredded reports a destroyed key: the backup is unreadable for ever.
var ErrShredded = errors.New("keys: data key destroyed (backup crypto-shredded)")

// ErrNotFound reports a backup without a key record.
var ErrNotFound = errors.New("keys: no data key for this backup")

// ErrWrongOrganization reports a key record of another organisation.
var ErrWrongOrganization = errors.New("keys: data key belongs to another organization")

// KMS is the part of the KMS client a Store uses (*kms.Client).
type KMS interface {
	GenerateDataKey(ctx context.Context, in *kms.GenerateDataKeyInput, optFns ...func(*kms.Options)) (*kms.GenerateDataKeyOutput, error)
	Decrypt(ctx context.Context, in *kms.DecryptInput, optFns ...func(*kms.Options)) (*kms.DecryptOutput, error)
	DescribeKey(ctx context.Context, in *kms.DescribeKeyInput, optFns ...func(*kms.Options)) (*kms.DescribeKeyOutput, error)
	CreateKey(ctx context.Context, in *kms.CreateKeyInput, optFns ...func(*kms.Options)) (*kms.CreateKeyOutput, error)
	CreateAlias(ctx context.Context, in *kms.CreateAliasInput, optFns ...func(*kms.Options)) (*kms.CreateAliasOutput, error)
	ScheduleKeyDeletion(ctx context.Context, in *kms.ScheduleKeyDeletionInput, optFns ...func(*kms.Options)) (*kms.ScheduleKeyDeletionOutput, error)
}

// DynamoDB is the part of the DynamoDB client a Store uses
// (*dynamodb.Client).
type DynamoDB interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
}

var (
	_ KMS      = (*kms.Client)(nil)
	_ DynamoDB = (*dynamodb.Client)(nil)
)

// Store creates, opens and destroys data keys.
type Store struct {
	cfg Config
	kms KMS
	db  DynamoDB
	now func() time.Time
}

// New returns a Store after checking cfg.
func New(cfg Config, kms KMS, db DynamoDB) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if kms == nil || db == nil {
		return nil, errors.New("keys: a KMS and a DynamoDB client are required")
	}
	cfg.AliasPrefix = cfg.aliasPrefix()
	return &Store{cfg: cfg, kms: kms, db: db, now: time.Now}, nil
}

// Context is the KMS encryption context of a backup's data key.
func Context(org, backup string) map[string]string {
	return map[string]string{"organizationId": org, "backupId": backup}
}
