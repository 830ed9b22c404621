package catalog_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/wedsync/backup-replication/infra/emulator"
	"github.com/wedsync/backup-replication/shared/catalog"
)

var (
	motoOnce sync.Once
	moto     *emulator.Moto
	motoErr  error
	tableSeq atomic.Int64
	// serialURL is the serialising proxy in front of moto (newStore).
	serialURL string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if moto != nil {
		moto.Close()
	}
	os.Exit(code)
}

// newStore starts (once) a moto server and gives each test its own tables.
func newStore(t *testing.T) *catalog.Dynamo {
	t.Helper()
	motoOnce.Do(func() {
		if moto, motoErr = emulator.StartMoto(context.Background()); motoErr == nil {
			// One request at a time: moto lets two concurrent conditional
			// writes both pass, DynamoDB does not (the concurrency tests
			// measure our conditions, not moto's races).
			serialURL, motoErr = emulator.Serialize(moto.URL)
		}
	})
	emulator.Require(t, motoErr)
	cfg, err := (&emulator.Moto{URL: serialURL}).AWSConfig(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	db := dynamodb.NewFromConfig(cfg)
	n := tableSeq.Add(1)
	names := catalog.Config{BackupsTable: fmt.Sprintf("backups-%d", n), ReplicasTable: fmt.Sprintf("replicas-%d", n)}
	if err := catalog.EnsureTables(t.Context(), db, names); err != nil {
		t.Fatal(err)
	}
	if err := catalog.EnsureTables(t.Context(), db, names); err != nil {
		t.Fatalf("EnsureTables is not idempotent: %v", err)
	}
	s, err := catalog.NewDynamo(db, names)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const sum = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

func backup(org, name string, created time.Time) catalog.Backup {
	return catalog.Backup{OrganizationID: org, Name: name, Size: 42, SHA256: sum,
		ContentType: "application/zip", LandingKey: "backups/" + org + "/x", CreatedAt: created}
}

func TestBackupRoundTrip(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	landed := time.Date(2026, 6, 1, 12, 0, 0, 123456789, time.UTC)
	in := backup("org-ü 1", `Smith & "Jones" wedding / 2026?`, time.Date(2026, 6, 1, 11, 0, 0, 0, time.UTC))
	in.LandedAt = &landed
	got, created, err := s.CreateBackup(ctx, in)
	if err != nil || !created {
		t.Fatalf("create: %v created=%v", err, created)
	}
	if got.ID == "" || got.Version != 1 || got.Status != catalog.StatusPending {
		t.Fatalf("created %+v", got)
	}
	read, err := s.GetBackup(ctx, got.ID)
	if err != nil {
		t.Fatal(err)
	}
	if read.Name != in.Name || read.OrganizationID != in.OrganizationID || read.SHA256 != sum || read.Size != 42 ||
		!read.CreatedAt.Equal(in.CreatedAt) || read.LandedAt == nil || !read.LandedAt.Equal(landed) ||
		read.ProtectedAt != nil || read.Version != 1 {
		t.Fatalf("read back %+v", read)
	}
	if _, err := s.GetBackup(ctx, "no-such-backup"); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("missing backup: %v", err)
	}
}

func TestUpdateBackupIsConditional(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	b, _, err := s.CreateBackup(ctx, backup("org", "a", time.Time{}))
	if err != nil {
		t.Fatal(err)
	}
	b.Status, b.StatusReason = catalog.StatusAtRisk, "1 of 3 verified copies"
	b2, err := s.UpdateBackup(ctx, b)
	if err != nil || b2.Version != 2 {
		t.Fatalf("update: %v version %d", err, b2.Version)
	}
	b.Status = catalog.StatusProtected // stale: still version 1
	if _, err := s.UpdateBackup(ctx, b); !errors.Is(err, catalog.ErrConflict) {
		t.Fatalf("stale update: %v", err)
	}
	read, _ := s.GetBackup(ctx, b.ID)
	if read.Status != catalog.StatusAtRisk || read.StatusReason != "1 of 3 verified copies" || read.Version != 2 {
		t.Fatalf("stored %+v", read)
	}
	ghost := b2
	ghost.ID = "ghost"
	if _, err := s.UpdateBackup(ctx, ghost); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("update of a missing backup: %v", err)
	}
}

func TestCreateBackupIdempotency(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	in := backup("org", "a", time.Time{})
	in.IdempotencyKey = "client-key#1"
	first, created, err := s.CreateBackup(ctx, in)
	if err != nil || !created {
		t.Fatalf("first: %v %v", err, created)
	}
	again, created, err := s.CreateBackup(ctx, in)
	if err != nil || created || again.ID != first.ID {
		t.Fatalf("second: %v created=%v id %s vs %s", err, created, again.ID, first.ID)
	}
	other := in
	other.OrganizationID = "org#client-key"
	other.IdempotencyKey = "1"
	o, created, err := s.CreateBackup(ctx, other)
	if err != nil || !created || o.ID == first.ID {
		t.Fatalf("same key text in another organisation: %v created=%v", err, created)
	}

	// Many concurrent requests with one fresh key: one backup.
	in.IdempotencyKey = "concurrent"
	var wg sync.WaitGroup
	ids := make([]string, 8)
	var createdN atomic.Int32
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, c, err := s.CreateBackup(ctx, in)
			if err != nil {
				t.Errorf("concurrent create: %v", err)
				return
			}
			if c {
				createdN.Add(1)
			}
			ids[i] = b.ID
		}()
	}
	wg.Wait()
	if createdN.Load() != 1 {
		t.Fatalf("%d creates reported created", createdN.Load())
	}
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("different backups for one key: %v", ids)
		}
	}
	page, err := s.ListBackups(ctx, catalog.ListQuery{OrganizationID: "org", Limit: 200})
	if err != nil || len(page.Backups) != 2 {
		t.Fatalf("org has %d backups (%v), want 2", len(page.Backups), err)
	}
	if _, err := s.GetBackup(ctx, catalog.IdempotencyPrefix+"org#concurrent"); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("idempotency item readable as a backup: %v", err)
	}
}

func TestListBackupsPages(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var want []string // newest first
	for i := 0; i < 7; i++ {
		// Whole seconds and fractions mixed: the fixed-width encoding must
		// still sort them by time.
		created := t0.Add(time.Duration(i) * 1500 * time.Millisecond)
		b, _, err := s.CreateBackup(ctx, backup("org", fmt.Sprint(i), created))
		if err != nil {
			t.Fatal(err)
		}
		want = append([]string{b.ID}, want...)
		if i%2 == 0 {
			b.Status = catalog.StatusProtected
			if _, err := s.UpdateBackup(ctx, b); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, _, err := s.CreateBackup(ctx, backup("other-org", "x", t0)); err != nil {
		t.Fatal(err)
	}

	var got []string
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		p, err := s.ListBackups(ctx, catalog.ListQuery{OrganizationID: "org", Limit: 3, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Backups) > 3 {
			t.Fatalf("page of %d", len(p.Backups))
		}
		for _, b := range p.Backups {
			got = append(got, b.ID)
		}
		if p.Next == "" {
			break
		}
		cursor = p.Next
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("listing\n got %v\nwant %v", got, want)
	}

	var protected int
	cursor = ""
	for {
		p, err := s.ListBackups(ctx, catalog.ListQuery{OrganizationID: "org", Status: catalog.StatusProtected, Limit: 2, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range p.Backups {
			if b.Status != catalog.StatusProtected {
				t.Fatalf("status filter let %s through", b.Status)
			}
			protected++
		}
		if p.Next == "" {
			break
		}
		cursor = p.Next
	}
	if protected != 4 {
		t.Fatalf("%d protected, want 4", protected)
	}

	first, _ := s.ListBackups(ctx, catalog.ListQuery{OrganizationID: "org", Limit: 1})
	for _, bad := range []string{"%%%", "bm90IGpzb24", first.Next[:len(first.Next)-2]} {
		if _, err := s.ListBackups(ctx, catalog.ListQuery{OrganizationID: "org", Cursor: bad}); !errors.Is(err, catalog.ErrInvalidCursor) {
			t.Errorf("cursor %q: %v", bad, err)
		}
	}
	if _, err := s.ListBackups(ctx, catalog.ListQuery{OrganizationID: "other-org", Cursor: first.Next}); !errors.Is(err, catalog.ErrInvalidCursor) {
		t.Errorf("another organisation's cursor accepted: %v", err)
	}
}

func TestBackupsByStatusOldestFirst(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var want []string
	for i := 0; i < 5; i++ {
		b := backup(fmt.Sprintf("org-%d", i%2), fmt.Sprint(i), t0.Add(time.Duration(i)*time.Minute))
		b.Status = catalog.StatusAtRisk
		out, _, err := s.CreateBackup(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, out.ID)
	}
	var got []string
	cursor := ""
	for {
		p, err := s.BackupsByStatus(ctx, catalog.StatusAtRisk, 2, cursor)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range p.Backups {
			got = append(got, b.ID)
		}
		if p.Next == "" {
			break
		}
		cursor = p.Next
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("by status\n got %v\nwant %v", got, want)
	}
	if p, err := s.BackupsByStatus(ctx, catalog.StatusProtected, 0, ""); err != nil || len(p.Backups) != 0 {
		t.Fatalf("no protected backups expected: %v %v", p, err)
	}
}

func TestReplicaVersions(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	r := catalog.Replica{BackupID: "b1", Provider: "gcs", State: catalog.ReplicaCopying, Key: "backups/org/b1", Attempts: 1}
	r1, err := s.PutReplica(ctx, r)
	if err != nil || r1.Version != 1 {
		t.Fatalf("create: %v %d", err, r1.Version)
	}
	if _, err := s.PutReplica(ctx, r); !errors.Is(err, catalog.ErrConflict) {
		t.Fatalf("second create: %v", err)
	}
	r1.State, r1.VerifiedSHA256, r1.Evidence = catalog.ReplicaVerified, sum, "gcs-crc32c+md5"
	r2, err := s.PutReplica(ctx, r1)
	if err != nil || r2.Version != 2 {
		t.Fatalf("update: %v", err)
	}
	if _, err := s.PutReplica(ctx, r1); !errors.Is(err, catalog.ErrConflict) {
		t.Fatalf("stale update: %v", err)
	}
	ghost := r2
	ghost.BackupID = "ghost"
	if _, err := s.PutReplica(ctx, ghost); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("update of a missing replica: %v", err)
	}
	if _, err := s.PutReplica(ctx, catalog.Replica{BackupID: "b1", Provider: "s3", State: catalog.ReplicaPending}); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetReplica(ctx, "b1", "gcs")
	if err != nil || got.State != catalog.ReplicaVerified || got.Evidence != "gcs-crc32c+md5" || got.Version != 2 {
		t.Fatalf("get: %+v %v", got, err)
	}
	all, err := s.Replicas(ctx, "b1")
	if err != nil || len(all) != 2 || all[0].Provider != "gcs" || all[1].Provider != "s3" {
		t.Fatalf("replicas: %+v %v", all, err)
	}
	if _, err := s.GetReplica(ctx, "b1", "supabase"); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("missing replica: %v", err)
	}
}

// Many writers read the same version of one replica and write at once:
// exactly one wins each round, the rest see ErrConflict.
func TestConcurrentReplicaWriters(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	if _, err := s.PutReplica(ctx, catalog.Replica{BackupID: "b1", Provider: "s3", State: catalog.ReplicaPending}); err != nil {
		t.Fatal(err)
	}
	const rounds, writers = 5, 12
	for round := 0; round < rounds; round++ {
		cur, err := s.GetReplica(ctx, "b1", "s3")
		if err != nil {
			t.Fatal(err)
		}
		var wins, conflicts atomic.Int32
		winner := make(chan int, writers)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := cur
				r.Attempts = w
				r.LastError = fmt.Sprintf("writer %d", w)
				<-start
				_, err := s.PutReplica(ctx, r)
				switch {
				case err == nil:
					wins.Add(1)
					winner <- w
				case errors.Is(err, catalog.ErrConflict):
					conflicts.Add(1)
				default:
					t.Errorf("writer %d: %v", w, err)
				}
			}()
		}
		close(start)
		wg.Wait()
		if wins.Load() != 1 || conflicts.Load() != writers-1 {
			t.Fatalf("round %d: %d wins, %d conflicts", round, wins.Load(), conflicts.Load())
		}
		w := <-winner
		after, _ := s.GetReplica(ctx, "b1", "s3")
		if after.Version != cur.Version+1 || after.LastError != fmt.Sprintf("writer %d", w) {
			t.Fatalf("round %d: stored %+v, winner %d", round, after, w)
		}
	}
}
