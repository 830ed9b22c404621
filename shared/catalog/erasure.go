package catalog

import "time"

// Erasure is the receipt of a backup's erasure (DELETE /backups/{id}, or
// the retention policy), kept on the backup record once its status is
// ERASED. It holds no key material and no URLs.
type Erasure struct {
	// RequestedBy is who asked: the caller's subject, or "retention".
	RequestedBy string `json:"requestedBy" dynamodbav:"requested_by"`
	// Reason says why ("requested by the organization", the retention rule).
	Reason    string    `json:"reason" dynamodbav:"reason"`
	StartedAt time.Time `json:"startedAt" dynamodbav:"started_at"`
	// Key is what happened to the backup's data key: KeyDestroyed (every
	// sealed copy is unreadable from KeyDestroyedAt on) or KeyNone (the
	// backup was never sealed: no key existed, a tombstone now forbids one).
	Key            string     `json:"key" dynamodbav:"key"`
	KeyDestroyedAt *time.Time `json:"keyDestroyedAt,omitempty" dynamodbav:"key_destroyed_at,omitempty"`
	// Copies has one entry per provider and per landing object.
	Copies []ErasedCopy `json:"copies" dynamodbav:"copies"`
	// CompletedAt is set once every copy is verified absent or retained
	// under lock; until then a repeated erasure carries on.
	CompletedAt *time.Time `json:"completedAt,omitempty" dynamodbav:"completed_at,omitempty"`
}

// What happened to a backup's data key.
const (
	KeyDestroyed = "destroyed"
	KeyNone      = "none"
)

// Outcomes of one copy's erasure.
const (
	// ErasedDeleted: the object was there, was deleted, and a read-back
	// (Stat) proves it absent.
	ErasedDeleted = "deleted"
	// ErasedAbsent: there was nothing to delete, and Stat proves it absent.
	ErasedAbsent = "absent"
	// ErasedRetained: the provider holds the copy under object lock or
	// retention until RetainedUntil; it cannot be deleted before then and
	// is unreadable once the key is destroyed.
	ErasedRetained = "retained"
	// ErasedFailed: the copy could not be deleted or proved absent (an
	// outage); the erasure is incomplete and is retried.
	ErasedFailed = "failed"
	// ErasedNotConfigured: a replica record names a provider this
	// deployment cannot reach; its copy is unreadable but not deleted.
	ErasedNotConfigured = "not_configured"
)

// ErasedCopy is the receipt of one copy.
type ErasedCopy struct {
	// Provider is the provider's name, or "landing" for the landing bucket.
	Provider string `json:"provider" dynamodbav:"provider"`
	// Key is the object's key on the provider.
	Key     string `json:"key" dynamodbav:"key"`
	Outcome string `json:"outcome" dynamodbav:"outcome"`
	// DeletedAt is when the delete of an existing object succeeded.
	DeletedAt *time.Time `json:"deletedAt,omitempty" dynamodbav:"deleted_at,omitempty"`
	// VerifiedAbsent: a Stat after the delete found nothing.
	VerifiedAbsent bool `json:"verifiedAbsent" dynamodbav:"verified_absent"`
	// RetainedUntil is when a retained copy's lock ends.
	RetainedUntil *time.Time `json:"retainedUntil,omitempty" dynamodbav:"retained_until,omitempty"`
	// Unreadable: whatever remains cannot be decrypted (key destroyed).
	Unreadable bool `json:"unreadable" dynamodbav:"unreadable"`
	// Detail says it for a person, e.g. "retained under lock until
	// 2027-01-01 (unreadable)".
	Detail string `json:"detail,omitempty" dynamodbav:"detail,omitempty"`
}

// Done reports whether c needs no further attempt.
func (c ErasedCopy) Done() bool { return c.Outcome != ErasedFailed }
