package keys

import (
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// item is the record as a DynamoDB item (see the table description).
func (r Record) item() map[string]types.AttributeValue {
	it := map[string]types.AttributeValue{
		AttrBackupID:       str(r.BackupID),
		AttrOrganizationID: str(r.OrganizationID),
	}
	if r.KMSKeyID != "" {
		it[AttrKMSKeyID] = str(r.KMSKeyID)
	}
	if len(r.Wrapped) > 0 {
		it[AttrWrapped] = &types.AttributeValueMemberB{Value: r.Wrapped}
	}
	if !r.CreatedAt.IsZero() {
		it[AttrCreatedAt] = str(formatTime(r.CreatedAt))
	}
	if r.DestroyedAt != nil {
		it[AttrDestroyedAt] = str(formatTime(*r.DestroyedAt))
	}
	if r.DestroyedBy != "" {
		it[AttrDestroyedBy] = str(r.DestroyedBy)
	}
	if r.Reason != "" {
		it[AttrReason] = str(r.Reason)
	}
	return it
}

// parseRecord reads an item written by item or Destroy.
func parseRecord(it map[string]types.AttributeValue) (Record, error) {
	r := Record{
		BackupID: sval(it, AttrBackupID), OrganizationID: sval(it, AttrOrganizationID),
		KMSKeyID: sval(it, AttrKMSKeyID), DestroyedBy: sval(it, AttrDestroyedBy), Reason: sval(it, AttrReason),
	}
	if b, ok := it[AttrWrapped].(*types.AttributeValueMemberB); ok {
		r.Wrapped = b.Value
	}
	if r.BackupID == "" || r.OrganizationID == "" {
		return Record{}, fmt.Errorf("keys: malformed key record %q: no backup or organization id", r.BackupID)
	}
	var err error
	if v := sval(it, AttrCreatedAt); v != "" {
		if r.CreatedAt, err = time.Parse(time.RFC3339Nano, v); err != nil {
			return Record{}, fmt.Errorf("keys: key record of backup %s: %s: %w", r.BackupID, AttrCreatedAt, err)
		}
	}
	if v := sval(it, AttrDestroyedAt); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return Record{}, fmt.Errorf("keys: key record of backup %s: %s: %w", r.BackupID, AttrDestroyedAt, err)
		}
		r.DestroyedAt = &t
	}
	return r, nil
}

func str(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }

func sval(it map[string]types.AttributeValue, name string) string {
	if s, ok := it[name].(*types.AttributeValueMemberS); ok {
		return s.Value
	}
	return ""
}
