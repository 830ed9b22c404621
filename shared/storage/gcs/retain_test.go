package gcs

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"

	"github.com/wedsync/backup-replication/shared/storage"
	"github.com/wedsync/backup-replication/shared/storage/storagetest"
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
	storagetest.Retainer(t, p, plain, key, stored)
}
