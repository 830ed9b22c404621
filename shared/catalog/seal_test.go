package catalog_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wedsync/backup-replication/shared/catalog"
)

func sealOf(b catalog.Backup, cipherSum string) catalog.Seal {
	return catalog.Seal{Key: "sealed/" + b.OrganizationID + "/" + b.ID, Format: "tink-aes256-gcm-hkdf-1mb",
		KMSKeyID: "arn:aws:kms:us-east-1:123456789012:key/org", CipherSHA256: cipherSum, CipherSize: 42 + 100,
		SealedAt: time.Date(2026, 6, 1, 12, 0, 0, 5, time.UTC)}
}

const otherSum = "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752"

// TestSetSealOnce: a seal is recorded once, read back whole, survives a
// later UpdateBackup, and a second, different seal is refused without
// replacing the first; recording the same seal again is fine.
func TestSetSealOnce(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	b, _, err := s.CreateBackup(ctx, backup("org-ü", "a", time.Time{}))
	if err != nil {
		t.Fatal(err)
	}
	if b.Seal != nil {
		t.Fatalf("new backup has a seal: %+v", b.Seal)
	}
	want := sealOf(b, sum)
	if err := s.SetSeal(ctx, b.ID, want); err != nil {
		t.Fatalf("set seal: %v", err)
	}
	read, err := s.GetBackup(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if read.Seal == nil || *read.Seal != want {
		t.Fatalf("seal read back %+v, want %+v", read.Seal, want)
	}
	if read.Version != b.Version+1 || !read.UpdatedAt.After(b.UpdatedAt.Add(-time.Nanosecond)) {
		t.Fatalf("SetSeal did not raise the version: %d -> %d", b.Version, read.Version)
	}

	// The same seal again (a duplicate delivery, another clock): no error, no write.
	again := want
	again.SealedAt = want.SealedAt.Add(time.Minute)
	if err := s.SetSeal(ctx, b.ID, again); err != nil {
		t.Fatalf("same seal again: %v", err)
	}
	// A different object: refused, the first stays.
	other := sealOf(b, otherSum)
	if err := s.SetSeal(ctx, b.ID, other); !errors.Is(err, catalog.ErrConflict) {
		t.Fatalf("different seal: %v, want ErrConflict", err)
	}
	read, _ = s.GetBackup(ctx, b.ID)
	if read.Seal == nil || read.Seal.CipherSHA256 != sum || read.Version != b.Version+1 {
		t.Fatalf("after refused seal: %+v version %d", read.Seal, read.Version)
	}

	// An update of a read taken before the seal conflicts (it would write
	// the seal away); one of a fresh read keeps it.
	stale := b
	stale.Status = catalog.StatusReplicating
	if _, err := s.UpdateBackup(ctx, stale); !errors.Is(err, catalog.ErrConflict) {
		t.Fatalf("update of a pre-seal read: %v, want ErrConflict", err)
	}
	read.Status = catalog.StatusReplicating
	if _, err := s.UpdateBackup(ctx, read); err != nil {
		t.Fatal(err)
	}
	read, _ = s.GetBackup(ctx, b.ID)
	if read.Seal == nil || *read.Seal != want || read.Status != catalog.StatusReplicating {
		t.Fatalf("seal lost by an update: %+v", read)
	}

	raw, _ := json.Marshal(read)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	js, _ := m["seal"].(map[string]any)
	for _, k := range []string{"key", "format", "kmsKeyId", "cipherSha256", "cipherSize", "sealedAt"} {
		if _, ok := js[k]; !ok {
			t.Errorf("JSON of the seal lacks %q: %s", k, raw)
		}
	}
}

// TestSetSealRefusals: missing and erased backups, incomplete seals.
func TestSetSealRefusals(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	if err := s.SetSeal(ctx, "no-such-backup", sealOf(catalog.Backup{ID: "x", OrganizationID: "o"}, sum)); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("missing backup: %v", err)
	}
	if err := s.SetSeal(ctx, catalog.IdempotencyPrefix+"o#k", sealOf(catalog.Backup{ID: "x", OrganizationID: "o"}, sum)); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("idempotency item: %v", err)
	}
	b, _, err := s.CreateBackup(ctx, backup("org", "erased", time.Time{}))
	if err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string]func(*catalog.Seal){
		"no key":    func(x *catalog.Seal) { x.Key = "" },
		"no format": func(x *catalog.Seal) { x.Format = "" },
		"no hash":   func(x *catalog.Seal) { x.CipherSHA256 = "" },
		"no size":   func(x *catalog.Seal) { x.CipherSize = 0 },
	} {
		x := sealOf(b, sum)
		bad(&x)
		if err := s.SetSeal(ctx, b.ID, x); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	b.Status = catalog.StatusErased
	if _, err := s.UpdateBackup(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := s.SetSeal(ctx, b.ID, sealOf(b, sum)); !errors.Is(err, catalog.ErrConflict) {
		t.Fatalf("erased backup: %v, want ErrConflict", err)
	}
	read, _ := s.GetBackup(ctx, b.ID)
	if read.Seal != nil {
		t.Fatalf("erased backup got a seal: %+v", read.Seal)
	}
}

// TestSetSealConcurrent: of concurrent deliveries with different sealed
// objects exactly one is recorded; those with the winner's seal succeed.
func TestSetSealConcurrent(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	b, _, err := s.CreateBackup(ctx, backup("org", "race", time.Time{}))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var ok, conflict atomic.Int32
	sums := []string{sum, otherSum}
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.SetSeal(ctx, b.ID, sealOf(b, sums[i%2]))
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, catalog.ErrConflict):
				conflict.Add(1)
			default:
				t.Errorf("set seal: %v", err)
			}
		}()
	}
	wg.Wait()
	read, _ := s.GetBackup(ctx, b.ID)
	if read.Seal == nil || ok.Load() != 4 || conflict.Load() != 4 || read.Version != 2 {
		t.Fatalf("seal %+v: %d recorded, %d refused, version %d; want one seal, 4 and 4, version 2",
			read.Seal, ok.Load(), conflict.Load(), read.Version)
	}
}

// TestClaimSeal: one owner at a time, its own claim renewable, an expired
// claim open to others, release by the owner only, none after the seal;
// of concurrent claims exactly one wins.
func TestClaimSeal(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	b, _, err := s.CreateBackup(ctx, backup("org", "claim", time.Time{}))
	if err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Hour)
	if err := s.ClaimSeal(ctx, b.ID, "a", later); err != nil {
		t.Fatalf("first claim: %v", err)
	}
	if err := s.ClaimSeal(ctx, b.ID, "b", later); !errors.Is(err, catalog.ErrConflict) {
		t.Fatalf("claim of a claimed backup: %v", err)
	}
	if err := s.ClaimSeal(ctx, b.ID, "a", later.Add(time.Minute)); err != nil {
		t.Fatalf("renewal: %v", err)
	}
	if err := s.ReleaseSeal(ctx, b.ID, "b"); err != nil {
		t.Fatal(err)
	}
	if err := s.ClaimSeal(ctx, b.ID, "b", later); !errors.Is(err, catalog.ErrConflict) {
		t.Fatalf("a non-owner's release ended the claim: %v", err)
	}
	if err := s.ReleaseSeal(ctx, b.ID, "a"); err != nil {
		t.Fatal(err)
	}
	if err := s.ClaimSeal(ctx, b.ID, "b", time.Now().Add(-time.Second)); err != nil {
		t.Fatalf("claim after release: %v", err)
	}
	if err := s.ClaimSeal(ctx, b.ID, "c", later); err != nil {
		t.Fatalf("claim after the last one ran out: %v", err)
	}
	read, _ := s.GetBackup(ctx, b.ID)
	if read.SealingBy != "c" || read.SealingUntil == nil || !read.SealingUntil.Equal(later.UTC().Truncate(time.Nanosecond)) {
		t.Fatalf("claim read back %q until %v", read.SealingBy, read.SealingUntil)
	}
	// An update of a fresh read keeps the claim.
	read.Status = catalog.StatusReplicating
	if _, err := s.UpdateBackup(ctx, read); err != nil {
		t.Fatal(err)
	}
	if err := s.ClaimSeal(ctx, b.ID, "d", later); !errors.Is(err, catalog.ErrConflict) {
		t.Fatalf("claim lost by an update: %v", err)
	}
	if err := s.SetSeal(ctx, b.ID, sealOf(b, sum)); err != nil {
		t.Fatal(err)
	}
	read, _ = s.GetBackup(ctx, b.ID)
	if read.SealingBy != "" || read.SealingUntil != nil {
		t.Fatalf("claim left after the seal: %q %v", read.SealingBy, read.SealingUntil)
	}
	if err := s.ClaimSeal(ctx, b.ID, "c", later); !errors.Is(err, catalog.ErrConflict) {
		t.Fatalf("claim of a sealed backup: %v", err)
	}
	if err := s.ClaimSeal(ctx, "no-such-backup", "c", later); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("claim of a missing backup: %v", err)
	}

	fresh, _, err := s.CreateBackup(ctx, backup("org", "claim-race", time.Time{}))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var won atomic.Int32
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.ClaimSeal(ctx, fresh.ID, fmt.Sprint("owner-", i), later)
			if err == nil {
				won.Add(1)
			} else if !errors.Is(err, catalog.ErrConflict) {
				t.Errorf("claim: %v", err)
			}
		}()
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Fatalf("%d concurrent claims won, want 1", won.Load())
	}
}
