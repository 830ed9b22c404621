package storagetest

import (
	"testing"
	"time"

	"github.com/wedsync/backup-replication/shared/storage"
)

// Retainer checks the storage.Retainer contract on a provider written
// under lock: p holds the object key, stored reads the retain-until date
// the provider itself keeps for it (straight from its API, not through
// RetainUntil), and plain is the same provider without a lock. A date is
// rounded up to the second, extends the lock, is never shortened, a
// missing object is NotFound and a provider without a lock refuses with
// a Permanent error.
func Retainer(t *testing.T, p, plain storage.Provider, key string, stored func() time.Time) {
	t.Helper()
	r, ok := storage.As[storage.Retainer](p)
	if !ok {
		t.Fatalf("the %s provider is not a storage.Retainer", p.Name())
	}
	far := time.Now().UTC().AddDate(1, 0, 0).Truncate(time.Second)
	got, err := r.RetainUntil(t.Context(), key, far.Add(-300*time.Millisecond)) // rounded up to far
	if err != nil || !got.Equal(far) {
		t.Fatalf("extend: %v %v, want %v", got, err, far)
	}
	if s := stored(); !s.Equal(far) {
		t.Errorf("%s keeps the object until %v, want %v", p.Name(), s, far)
	}
	got, err = r.RetainUntil(t.Context(), key, far.AddDate(0, -6, 0))
	if err != nil || !got.Equal(far) {
		t.Errorf("shorter: %v %v, want the longer %v kept", got, err, far)
	}
	if s := stored(); !s.Equal(far) {
		t.Errorf("a shorter date changed the retention to %v", s)
	}
	if _, err := r.RetainUntil(t.Context(), "backups/missing", far); storage.KindOf(err) != storage.NotFound {
		t.Errorf("missing object: %v (kind %v), want NotFound", err, storage.KindOf(err))
	}
	pr, ok := storage.As[storage.Retainer](plain)
	if !ok {
		t.Fatalf("the plain %s provider is not a storage.Retainer", plain.Name())
	}
	if _, err := pr.RetainUntil(t.Context(), key, far); storage.KindOf(err) != storage.Permanent {
		t.Errorf("without a lock: %v, want a Permanent error", err)
	}
}
