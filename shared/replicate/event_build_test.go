package replicate

import (
	"encoding/json"
	"testing"
	"time"
)

// TestObjectCreatedParses: the event ObjectCreated writes is one
// ParseEvent reads back as the same object, for a landing key and a
// sealed key, with a quoted ETag unquoted, and carries its reason.
func TestObjectCreatedParses(t *testing.T) {
	at := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	for _, key := range []string{"backups/org-1/B1", "sealed/org-1/B1"} {
		body := ObjectCreated("landing", key, 4096, `"abc123"`, "HealthReconcile", at)
		ev, err := ParseEvent(body)
		if err != nil {
			t.Fatalf("%s: %v\n%s", key, err, body)
		}
		want := ObjectEvent{Bucket: "landing", Key: key, Size: 4096, ETag: "abc123", OrganizationID: "org-1", BackupID: "B1",
			Sealed: key[0] == 's'}
		if ev != want {
			t.Errorf("%s: parsed %+v, want %+v", key, ev, want)
		}
		var raw struct {
			Time   string
			Detail struct{ Reason string }
		}
		if json.Unmarshal([]byte(body), &raw) != nil || raw.Detail.Reason != "HealthReconcile" || raw.Time != "2026-06-01T12:00:00Z" {
			t.Errorf("%s: reason %q, time %q", key, raw.Detail.Reason, raw.Time)
		}
	}
}
