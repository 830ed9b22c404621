package catalog

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// Attributes of the backups table written by the seal step: the Seal,
// and the claim of the delivery sealing (ClaimSeal).
const (
	AttrSeal         = "seal"
	AttrSealingBy    = "sealing_by"
	AttrSealingUntil = "sealing_until"
)

// SealStore is a Store that also records seals; *Dynamo is one.
type SealStore interface {
	Store
	SetSeal(ctx context.Context, backupID string, s Seal) error
	ClaimSeal(ctx context.Context, backupID, owner string, until time.Time) error
	ReleaseSeal(ctx context.Context, backupID, owner string) error
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
// conditional on the backup's version, having no seal yet and not being
// ERASED, and it raises the version (so that a concurrent UpdateBackup of
// an older read conflicts and rereads rather than writing the seal away).
// It ends any claim (ClaimSeal). Recording the same seal again
// (Seal.Same) succeeds without writing. A different seal already
// recorded, or an ERASED backup, is ErrConflict; a missing backup
// ErrNotFound. A zero SealedAt becomes now.
func (d *Dynamo) SetSeal(ctx context.Context, backupID string, s Seal) error {
	if s.Key == "" || s.Format == "" || s.CipherSHA256 == "" || s.CipherSize <= 0 {
		return errors.New("catalog: set seal: key, format, cipher SHA-256 and size are required")
	}
	if s.SealedAt.IsZero() {
		s.SealedAt = d.now()
	}
	s.SealedAt = s.SealedAt.UTC()
	return d.changeBackup(ctx, "set seal", backupID, func(b *Backup) (bool, error) {
		switch {
		case b.Seal != nil && b.Seal.Same(s):
			return false, nil
		case b.Seal != nil:
			return false, fmt.Errorf("another seal is recorded (cipher sha256 %s): %w", b.Seal.CipherSHA256, ErrConflict)
		case b.Status == StatusErased:
			return false, fmt.Errorf("backup erased: %w", ErrConflict)
		}
		seal := s
		b.Seal, b.SealingBy, b.SealingUntil = &seal, "", nil
		return true, nil
	})
}

// ClaimSeal claims backup id for owner's sealing until the given time, so
// that of concurrent deliveries one seals and the others come back later
// (and are spared the work; S3's conditional writes keep a sealed object
// from being replaced in any case). It succeeds when the backup has no
// seal, is not ERASED and has no claim of another owner that is still
// running (owner may renew its own); otherwise ErrConflict, ErrNotFound
// for a missing backup. The write is conditional on the version, which
// it raises.
func (d *Dynamo) ClaimSeal(ctx context.Context, backupID, owner string, until time.Time) error {
	if owner == "" {
		return errors.New("catalog: claim seal: owner is empty")
	}
	until = until.UTC()
	return d.changeBackup(ctx, "claim seal", backupID, func(b *Backup) (bool, error) {
		switch {
		case b.Seal != nil:
			return false, fmt.Errorf("sealed already: %w", ErrConflict)
		case b.Status == StatusErased:
			return false, fmt.Errorf("backup erased: %w", ErrConflict)
		case b.SealingBy != "" && b.SealingBy != owner && b.SealingUntil != nil && b.SealingUntil.After(d.now()):
			return false, fmt.Errorf("another delivery is sealing it: %w", ErrConflict)
		}
		b.SealingBy, b.SealingUntil = owner, &until
		return true, nil
	})
}

// ReleaseSeal ends owner's claim on backup id, so that a redelivery need
// not wait for it to run out; it does nothing when the claim is not
// owner's, when there is none, or when the backup does not exist.
func (d *Dynamo) ReleaseSeal(ctx context.Context, backupID, owner string) error {
	err := d.changeBackup(ctx, "release seal claim", backupID, func(b *Backup) (bool, error) {
		if owner == "" || b.SealingBy != owner {
			return false, nil
		}
		b.SealingBy, b.SealingUntil = "", nil
		return true, nil
	})
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// maxChangeAttempts bounds changeBackup's reread-and-retry loop.
const maxChangeAttempts = 10

// changeBackup reads the backup, applies change and writes it back
// conditionally on its version (UpdateBackup), rereading and reapplying
// when another write got there first. change reports whether it changed
// anything (nothing is written when it did not) or an error that ends the
// attempt as is.
func (d *Dynamo) changeBackup(ctx context.Context, what, id string, change func(b *Backup) (bool, error)) error {
	for attempt := 0; ; attempt++ {
		b, err := d.GetBackup(ctx, id)
		if err != nil {
			return err
		}
		changed, err := change(&b)
		if err != nil {
			return fmt.Errorf("catalog: %s of %s: %w", what, id, err)
		}
		if !changed {
			return nil
		}
		_, err = d.UpdateBackup(ctx, b)
		if err == nil || !errors.Is(err, ErrConflict) || attempt+1 >= maxChangeAttempts {
			return err
		}
		t := time.NewTimer(time.Duration(rand.Int64N(int64(5*time.Millisecond) << min(attempt, 4))))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}
