package gcs

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"

	"github.com/wedsync/backup-replication/shared/storage"
)

// TestRetainUntil extends an object's retention on fake-gcs-server, never
// shortens it, and says NotFound for a missing object and Permanent on a
// provider without retention.
func TestRetainUntil(t *testing.T) {
	g := startGCS(t)
	p := newTestProvider(t, Config{Endpoint: g.URL, Retention: time.Hour})
	plain := newTestProvider(t, Config{Endpoint: g.URL})
	key := "backups/org 1/ünïcode backup"
	body := []byte("tiny")
	sum := sha256.Sum256(body)
	if _, err := p.Put(t.Context(), key, bytes.NewReader(body), int64(len(body)), storage.PutOptions{SHA256: hex.EncodeToString(sum[:])}); err != nil {
		t.Fatal(err)
	}
	stored := func() time.Time {
		t.Helper()
		a, err := p.bucket.Object(key).Attrs(t.Context())
		if err != nil || a.Retention == nil {
			t.Fatalf("attrs: %+v %v", a, err)
		}
		if a.Retention.Mode != "Unlocked" {
			t.Errorf("mode %q, want Unlocked", a.Retention.Mode)
		}
		return a.Retention.RetainUntil.UTC()
	}
	r, ok := storage.As[storage.Retainer](p)
	if !ok {
		t.Fatal("the gcs provider is not a storage.Retainer")
	}
	far := time.Now().UTC().AddDate(1, 0, 0).Truncate(time.Second)
	got, err := r.RetainUntil(t.Context(), key, far.Add(-300*time.Millisecond)) // rounded up to far
	if err != nil || !got.Equal(far) {
		t.Fatalf("extend: %v %v, want %v", got, err, far)
	}
	if s := stored(); !s.Equal(far) {
		t.Errorf("GCS keeps the object until %v, want %v", s, far)
	}
	got, err = r.RetainUntil(t.Context(), key, far.AddDate(0, -6, 0))
	if err != nil || !got.Equal(far) {
		t.Errorf("shorter: %v %v, want the longer %v kept", got, err, far)
	}
	if s := stored(); !s.Equal(far) {
		t.Errorf("a shorter date changed the retention to %v", s)
	}
	if _, err := r.RetainUntil(t.Context(), "backups/missing", far); storage.KindOf(err) != storage.NotFound {
		t.Errorf("missing object: %v, want NotFound", err)
	}
	if _, err := plain.RetainUntil(t.Context(), key, far); storage.KindOf(err) != storage.Permanent {
		t.Errorf("without retention: %v, want a Permanent error", err)
	}
}
