// Package catalog keeps the record of every backup and of each of its
// replicas, in DynamoDB, changed only with conditional writes so that
// at-least-once, reordered deliveries converge on one truth.
package catalog

import (
	"context"
	"errors"
	"time"
)

// Status is a backup's 3-2-1 standing.
type Status string

// Backup statuses. PENDING: registered, bytes not landed yet. REPLICATING:
// landed, copies under way. PROTECTED / AT_RISK / FAILED come from the
// policy. ERASED: crypto-shredded and deleted.
const (
	StatusPending     Status = "PENDING"
	StatusReplicating Status = "REPLICATING"
	StatusProtected   Status = "PROTECTED"
	StatusAtRisk      Status = "AT_RISK"
	StatusFailed      Status = "FAILED"
	StatusErased      Status = "ERASED"
)

// ReplicaState is the state of one copy on one provider.
type ReplicaState string

// Replica states. A copy counts toward protection only when VERIFIED.
const (
	ReplicaPending  ReplicaState = "PENDING"
	ReplicaCopying  ReplicaState = "COPYING"
	ReplicaVerified ReplicaState = "VERIFIED"
	ReplicaFailed   ReplicaState = "FAILED"
	ReplicaDeleted  ReplicaState = "DELETED"
)

// Backup is one uploaded archive of one organisation.
type Backup struct {
	ID             string    `json:"id" dynamodbav:"id"`
	OrganizationID string    `json:"organizationId" dynamodbav:"organization_id"`
	Name           string    `json:"name" dynamodbav:"name"`
	Size           int64     `json:"size" dynamodbav:"size"`
	SHA256         string    `json:"sha256" dynamodbav:"sha256"`
	ContentType    string    `json:"contentType" dynamodbav:"content_type"`
	IdempotencyKey string    `json:"idempotencyKey,omitempty" dynamodbav:"idempotency_key,omitempty"`
	LandingKey     string    `json:"landingKey" dynamodbav:"landing_key"`
	Status         Status    `json:"status" dynamodbav:"status"`
	StatusReason   string    `json:"statusReason,omitempty" dynamodbav:"status_reason,omitempty"`
	CreatedAt      time.Time `json:"createdAt" dynamodbav:"created_at"`
	UpdatedAt      time.Time `json:"updatedAt" dynamodbav:"updated_at"`
	// LandedAt is when the landing object was first seen; ProtectedAt when
	// the policy first said PROTECTED. Their difference is time to protection.
	LandedAt    *time.Time `json:"landedAt,omitempty" dynamodbav:"landed_at,omitempty"`
	ProtectedAt *time.Time `json:"protectedAt,omitempty" dynamodbav:"protected_at,omitempty"`
	// TimeToProtectedMs is ProtectedAt - LandedAt, recorded once.
	TimeToProtectedMs int64 `json:"timeToProtectedMs,omitempty" dynamodbav:"time_to_protected_ms,omitempty"`
	// Seal describes the sealed (encrypted) object every provider copy
	// holds; nil until the seal step has written it (see seal.go).
	Seal *Seal `json:"seal,omitempty" dynamodbav:"seal,omitempty"`
	// SealingBy and SealingUntil are the seal step's claim on the backup
	// (ClaimSeal): one delivery seals at a time. Internal; not in JSON.
	SealingBy    string     `json:"-" dynamodbav:"sealing_by,omitempty"`
	SealingUntil *time.Time `json:"-" dynamodbav:"sealing_until,omitempty"`
	// Erasure is the erasure receipt once ERASED (see erasure.go).
	Erasure *Erasure `json:"erasure,omitempty" dynamodbav:"erasure,omitempty"`
	// Version increases on every write; updates are conditional on it.
	Version int64 `json:"version" dynamodbav:"version"`
}

// Replica is one copy of a backup on one provider.
type Replica struct {
	BackupID string       `json:"backupId" dynamodbav:"backup_id"`
	Provider string       `json:"provider" dynamodbav:"provider"`
	State    ReplicaState `json:"state" dynamodbav:"state"`
	Key      string       `json:"key" dynamodbav:"key"`
	Bytes    int64        `json:"bytes" dynamodbav:"bytes"`
	// VerifiedSHA256 is the SHA-256 proven for the stored copy; Evidence
	// says how ("sha256-readback", "s3-checksum-sha256", "gcs-crc32c+md5", "etag-md5").
	VerifiedSHA256 string     `json:"verifiedSha256,omitempty" dynamodbav:"verified_sha256,omitempty"`
	Evidence       string     `json:"evidence,omitempty" dynamodbav:"evidence,omitempty"`
	Attempts       int        `json:"attempts" dynamodbav:"attempts"`
	LastError      string     `json:"lastError,omitempty" dynamodbav:"last_error,omitempty"`
	LastErrorKind  string     `json:"lastErrorKind,omitempty" dynamodbav:"last_error_kind,omitempty"`
	Immutable      bool       `json:"immutable,omitempty" dynamodbav:"immutable,omitempty"`
	ResumeState    string     `json:"-" dynamodbav:"resume_state,omitempty"`
	StartedAt      *time.Time `json:"startedAt,omitempty" dynamodbav:"started_at,omitempty"`
	VerifiedAt     *time.Time `json:"verifiedAt,omitempty" dynamodbav:"verified_at,omitempty"`
	UpdatedAt      time.Time  `json:"updatedAt" dynamodbav:"updated_at"`
	Version        int64      `json:"version" dynamodbav:"version"`
	// Note says, for a person, why the copy exists or went away, e.g.
	// "standing in for s3" on a standby's failover copy.
	Note string `json:"note,omitempty" dynamodbav:"note,omitempty"`
	// RetainedUntil is the copy's object lock retain-until date as last
	// set or read by the retention run; nil when it has not looked.
	RetainedUntil *time.Time `json:"retainedUntil,omitempty" dynamodbav:"retained_until,omitempty"`
}

// Errors of the store.
var (
	ErrNotFound = errors.New("catalog: not found")
	// ErrConflict means a conditional write lost to another writer; reread
	// and decide again.
	ErrConflict = errors.New("catalog: concurrent update")
)

// Page is one page of a listing; Next is empty on the last page.
type Page struct {
	Backups []Backup `json:"backups"`
	Next    string   `json:"next,omitempty"`
}

// ListQuery selects backups of one organisation, optionally by status.
type ListQuery struct {
	OrganizationID string
	Status         Status // empty: any
	Limit          int    // default 50, at most 200
	Cursor         string // Page.Next of the previous page
}

// Store is the catalog's port; the DynamoDB adapter implements it.
type Store interface {
	// CreateBackup stores b unless a backup with the same organisation and
	// idempotency key exists, in which case it returns that one and
	// created=false.
	CreateBackup(ctx context.Context, b Backup) (out Backup, created bool, err error)
	GetBackup(ctx context.Context, id string) (Backup, error)
	ListBackups(ctx context.Context, q ListQuery) (Page, error)
	// UpdateBackup writes b if the stored version is still b.Version, and
	// returns it with the new version; ErrConflict otherwise.
	UpdateBackup(ctx context.Context, b Backup) (Backup, error)

	// Replicas returns every replica record of a backup.
	Replicas(ctx context.Context, backupID string) ([]Replica, error)
	GetReplica(ctx context.Context, backupID, provider string) (Replica, error)
	// PutReplica writes r if the stored version is still r.Version (0: the
	// record must not exist yet), and returns it with the new version.
	PutReplica(ctx context.Context, r Replica) (Replica, error)

	// BackupsByStatus pages through backups of any organisation in a status
	// (for /status, reconcile and alerts), oldest first.
	BackupsByStatus(ctx context.Context, s Status, limit int, cursor string) (Page, error)
}
