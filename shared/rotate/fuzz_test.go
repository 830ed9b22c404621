package rotate_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/wedsync/backup-replication/shared/rotate"
)

// FuzzRotationEvent decodes arbitrary bodies as the rotation event the
// Lambda runtime hands the handler and validates them: no panic, and a
// valid event always names a known step, a secret and a token.
func FuzzRotationEvent(f *testing.F) {
	files, _ := filepath.Glob("../../events/rotate-*.json")
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"Step":"nope","SecretId":"","ClientRequestToken":""}`))
	f.Add([]byte(`{"Step":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var ev rotate.Event
		if json.Unmarshal(b, &ev) != nil {
			return
		}
		if rotate.ValidateEvent(ev) == nil && (ev.SecretID == "" || ev.ClientRequestToken == "") {
			t.Fatalf("accepted %+v", ev)
		}
	})
}
