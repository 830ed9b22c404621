package keys

import (
	"context"
	"errors"
)

// Create returns the backup's data key (32 bytes) and its record, making
// one when there is none: KMS GenerateDataKey (AES_256) under KeyFor(org)
// with the encryption context Context(org, backup); only the wrapped key
// is stored. It is idempotent: an existing live record is unwrapped and
// returned. A destroyed record gives ErrShredded (a shredded backup never
// gets a new key), a record of another organisation ErrWrongOrganization.
func (s *Store) Create(ctx context.Context, org, backup string) (plain []byte, rec Record, err error) {
	return nil, Record{}, errors.New("keys: Create not implemented yet")
}

// Open unwraps the backup's data key with KMS Decrypt under the same
// encryption context. It returns ErrNotFound, ErrShredded, or
// ErrWrongOrganization when the record is another organisation's.
func (s *Store) Open(ctx context.Context, org, backup string) ([]byte, Record, error) {
	return nil, Record{}, errors.New("keys: Open not implemented yet")
}

// Destroy removes the backup's wrapped key and records when, by whom and
// why (the tombstone stays for audit). It is idempotent: destroying again
// returns the first tombstone unchanged. Destroying a backup that has no
// record writes a tombstone, so that a seal step still in flight cannot
// create a key afterwards (its Create gets ErrShredded).
func (s *Store) Destroy(ctx context.Context, org, backup, by, reason string) (Record, error) {
	return Record{}, errors.New("keys: Destroy not implemented yet")
}

// KeyFor returns the KMS key to wrap org's data keys under: the key behind
// the alias AliasPrefix+org when it exists; else, with CreateOrgKeys, a new
// key given that alias; else DefaultKeyID; else an error.
func (s *Store) KeyFor(ctx context.Context, org string) (string, error) {
	return "", errors.New("keys: KeyFor not implemented yet")
}
