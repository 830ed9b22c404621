package catalog_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/wedsync/backup-replication/shared/catalog"
)

// rawDB is a client on the package's moto server (newStore starts it).
func rawDB(t *testing.T) *dynamodb.Client {
	t.Helper()
	cfg, err := moto.AWSConfig(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return dynamodb.NewFromConfig(cfg)
}

// count is how many items a table holds.
func count(t *testing.T, db *dynamodb.Client, table string) int {
	t.Helper()
	out, err := db.Scan(t.Context(), &dynamodb.ScanInput{TableName: aws.String(table)})
	if err != nil {
		t.Fatal(err)
	}
	return len(out.Items)
}

// TestCreateBackupRefusesBadInput: a backup without an organisation, with
// an id in the idempotency namespace, or with an id already taken is
// refused, and nothing is written.
func TestCreateBackupRefusesBadInput(t *testing.T) {
	s := newStore(t)
	db := rawDB(t)
	ctx := t.Context()
	taken, _, err := s.CreateBackup(ctx, backup("org", "first", time.Time{}))
	if err != nil {
		t.Fatal(err)
	}
	dup := backup("org", "second", time.Time{})
	dup.ID = taken.ID
	cases := []struct {
		name     string
		in       catalog.Backup
		conflict bool
		want     string
	}{
		{"no organisation", backup("", "x", time.Time{}), false, "organization id is empty"},
		{"idempotency namespace", func() catalog.Backup {
			b := backup("org", "x", time.Time{})
			b.ID = catalog.IdempotencyPrefix + "org#key"
			return b
		}(), false, catalog.IdempotencyPrefix},
		{"id taken", dup, true, taken.ID},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, created, err := s.CreateBackup(ctx, c.in)
			if err == nil || created || !strings.Contains(err.Error(), c.want) || errors.Is(err, catalog.ErrConflict) != c.conflict {
				t.Fatalf("CreateBackup = created %v, %v; want an error saying %q (conflict %v)", created, err, c.want, c.conflict)
			}
		})
	}
	if n := count(t, db, s.Config().BackupsTable); n != 1 {
		t.Fatalf("the backups table holds %d items, want only the first backup", n)
	}
	if got, _ := s.GetBackup(ctx, taken.ID); got.Name != "first" || got.Version != 1 {
		t.Fatalf("the first backup was changed: %+v", got)
	}
}

// TestCreateBackupFinishesACrashedCreate: when a request claimed an
// idempotency key and crashed before writing its backup, a retry with the
// same key writes the backup under the id that was claimed (one backup,
// not two), and a further retry returns it.
func TestCreateBackupFinishesACrashedCreate(t *testing.T) {
	s := newStore(t)
	db := rawDB(t)
	ctx := t.Context()
	const org, key, claimed = "org-crash", "upload-7", "claimed-by-the-crashed-request"
	if _, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(s.Config().BackupsTable),
		Item: map[string]types.AttributeValue{
			catalog.AttrID:       &types.AttributeValueMemberS{Value: catalog.IdempotencyPrefix + org + "#" + key},
			catalog.AttrBackupID: &types.AttributeValueMemberS{Value: claimed},
		}}); err != nil {
		t.Fatal(err)
	}
	in := backup(org, "retry", time.Time{})
	in.IdempotencyKey = key
	got, created, err := s.CreateBackup(ctx, in)
	if err != nil || !created || got.ID != claimed {
		t.Fatalf("retry after a crash: id %q created %v (%v), want the claimed id %q written", got.ID, created, err, claimed)
	}
	again, created, err := s.CreateBackup(ctx, in)
	if err != nil || created || again.ID != claimed {
		t.Fatalf("second retry: id %q created %v (%v), want the same backup, not created", again.ID, created, err)
	}
	page, err := s.ListBackups(ctx, catalog.ListQuery{OrganizationID: org})
	if err != nil || len(page.Backups) != 1 {
		t.Fatalf("organisation has %d backups (%v), want 1", len(page.Backups), err)
	}
}

// TestIdempotencyItemsAreNotBackups: the idempotency namespace can be
// neither read nor overwritten as a backup, so a client cannot erase a
// claim by naming it.
func TestIdempotencyItemsAreNotBackups(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	in := backup("org", "a", time.Time{})
	in.IdempotencyKey = "k"
	first, _, err := s.CreateBackup(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"", catalog.IdempotencyPrefix + "org#k"} {
		if _, err := s.GetBackup(ctx, id); !errors.Is(err, catalog.ErrNotFound) {
			t.Errorf("GetBackup(%q) = %v, want ErrNotFound", id, err)
		}
		b := first
		b.ID = id
		if _, err := s.UpdateBackup(ctx, b); !errors.Is(err, catalog.ErrNotFound) {
			t.Errorf("UpdateBackup(%q) = %v, want ErrNotFound", id, err)
		}
	}
	if again, created, err := s.CreateBackup(ctx, in); err != nil || created || again.ID != first.ID {
		t.Fatalf("the key no longer finds its backup: %q created %v (%v)", again.ID, created, err)
	}
}

// TestListingArgumentsAndCursors: listings refuse a missing organisation
// or status, and a cursor issued for another listing (another status of
// BackupsByStatus, or an organisation's listing) is ErrInvalidCursor.
func TestListingArgumentsAndCursors(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	t0 := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	for i := range 3 {
		b := backup("org", fmt.Sprint(i), t0.Add(time.Duration(i)*time.Second))
		b.Status = catalog.StatusFailed
		if _, _, err := s.CreateBackup(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.ListBackups(ctx, catalog.ListQuery{}); err == nil || !strings.Contains(err.Error(), "organization id is empty") {
		t.Errorf("ListBackups without an organisation: %v", err)
	}
	if _, err := s.BackupsByStatus(ctx, "", 10, ""); err == nil || !strings.Contains(err.Error(), "status is empty") {
		t.Errorf("BackupsByStatus without a status: %v", err)
	}
	byStatus, err := s.BackupsByStatus(ctx, catalog.StatusFailed, 1, "")
	if err != nil || len(byStatus.Backups) != 1 || byStatus.Next == "" {
		t.Fatalf("first FAILED page: %d backups, next %q (%v)", len(byStatus.Backups), byStatus.Next, err)
	}
	byOrg, err := s.ListBackups(ctx, catalog.ListQuery{OrganizationID: "org", Limit: 1})
	if err != nil || byOrg.Next == "" {
		t.Fatalf("first org page: next %q (%v)", byOrg.Next, err)
	}
	cases := []struct {
		name string
		call func() error
	}{
		{"a FAILED cursor for PROTECTED", func() error {
			_, err := s.BackupsByStatus(ctx, catalog.StatusProtected, 10, byStatus.Next)
			return err
		}},
		{"an organisation cursor for a status listing", func() error {
			_, err := s.BackupsByStatus(ctx, catalog.StatusFailed, 10, byOrg.Next)
			return err
		}},
		{"a status cursor for an organisation listing", func() error {
			_, err := s.ListBackups(ctx, catalog.ListQuery{OrganizationID: "org", Cursor: byStatus.Next})
			return err
		}},
		{"a FAILED cursor for an organisation named FAILED", func() error {
			_, err := s.ListBackups(ctx, catalog.ListQuery{OrganizationID: string(catalog.StatusFailed), Cursor: byStatus.Next})
			return err
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.call(); !errors.Is(err, catalog.ErrInvalidCursor) {
				t.Fatalf("%v, want ErrInvalidCursor", err)
			}
		})
	}
	next, err := s.BackupsByStatus(ctx, catalog.StatusFailed, 5000, byStatus.Next)
	if err != nil || len(next.Backups) != 2 || next.Next != "" {
		t.Fatalf("the rest with a limit over the maximum: %d backups, next %q (%v), want the 2 others and no next", len(next.Backups), next.Next, err)
	}
}

// TestPutReplicaNeedsItsKey: a replica without backup id or provider is
// refused and nothing is written.
func TestPutReplicaNeedsItsKey(t *testing.T) {
	s := newStore(t)
	db := rawDB(t)
	for _, r := range []catalog.Replica{{Provider: "s3"}, {BackupID: "b1"}, {}} {
		if _, err := s.PutReplica(t.Context(), r); err == nil || !strings.Contains(err.Error(), "required") {
			t.Errorf("PutReplica(%+v) = %v, want refused", r, err)
		}
	}
	if n := count(t, db, s.Config().ReplicasTable); n != 0 {
		t.Fatalf("replicas table holds %d items", n)
	}
	if rs, err := s.Replicas(t.Context(), "b1"); err != nil || len(rs) != 0 {
		t.Fatalf("Replicas of a backup with none: %v, %v; want empty", rs, err)
	}
}

// TestMissingTablesAreNotNotFound: when the tables are unavailable every
// operation fails with an error that is neither ErrNotFound nor
// ErrConflict, so callers answer "unavailable", never "no such backup".
func TestMissingTablesAreNotNotFound(t *testing.T) {
	newStore(t) // starts moto
	s, err := catalog.NewDynamo(rawDB(t), catalog.Config{BackupsTable: "absent-b", ReplicasTable: "absent-r"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	withKey := backup("org", "k", time.Time{})
	withKey.IdempotencyKey = "k"
	ops := map[string]func() error{
		"CreateBackup":       func() error { _, _, err := s.CreateBackup(ctx, backup("org", "x", time.Time{})); return err },
		"CreateBackup (key)": func() error { _, _, err := s.CreateBackup(ctx, withKey); return err },
		"GetBackup":          func() error { _, err := s.GetBackup(ctx, "b1"); return err },
		"UpdateBackup": func() error {
			_, err := s.UpdateBackup(ctx, catalog.Backup{ID: "b1", OrganizationID: "org"})
			return err
		},
		"ListBackups":     func() error { _, err := s.ListBackups(ctx, catalog.ListQuery{OrganizationID: "org"}); return err },
		"BackupsByStatus": func() error { _, err := s.BackupsByStatus(ctx, catalog.StatusAtRisk, 0, ""); return err },
		"Replicas":        func() error { _, err := s.Replicas(ctx, "b1"); return err },
		"GetReplica":      func() error { _, err := s.GetReplica(ctx, "b1", "s3"); return err },
		"PutReplica":      func() error { _, err := s.PutReplica(ctx, catalog.Replica{BackupID: "b1", Provider: "s3"}); return err },
	}
	for name, op := range ops {
		t.Run(name, func(t *testing.T) {
			err := op()
			if err == nil || errors.Is(err, catalog.ErrNotFound) || errors.Is(err, catalog.ErrConflict) {
				t.Fatalf("%s on missing tables = %v, want an error that is neither ErrNotFound nor ErrConflict", name, err)
			}
		})
	}
}

// TestConfigNamesBothTables: a store or table set-up without table names
// is refused, naming each variable.
func TestConfigNamesBothTables(t *testing.T) {
	if _, err := catalog.NewDynamo(nil, catalog.Config{BackupsTable: "b", ReplicasTable: "r"}); err == nil {
		t.Error("NewDynamo without a client succeeded")
	}
	newStore(t)
	_, err := catalog.NewDynamo(rawDB(t), catalog.Config{})
	for _, want := range []string{"BACKUPS_TABLE", "REPLICAS_TABLE"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("NewDynamo with no names: %v, want %s named", err, want)
		}
	}
	if err := catalog.EnsureTables(t.Context(), rawDB(t), catalog.Config{BackupsTable: "b"}); err == nil || !strings.Contains(err.Error(), "REPLICAS_TABLE") {
		t.Errorf("EnsureTables without the replicas table: %v", err)
	}
}

// TestCorruptRecordIsAnErrorNotAPanic: a backup item whose attributes have
// the wrong types is reported as an error naming the backup.
func TestCorruptRecordIsAnErrorNotAPanic(t *testing.T) {
	s := newStore(t)
	db := rawDB(t)
	ctx := t.Context()
	for table, item := range map[string]map[string]types.AttributeValue{
		s.Config().BackupsTable: {catalog.AttrID: &types.AttributeValueMemberS{Value: "corrupt"},
			"size": &types.AttributeValueMemberS{Value: "big"}},
		s.Config().ReplicasTable: {catalog.AttrBackupID: &types.AttributeValueMemberS{Value: "corrupt"},
			catalog.AttrProvider: &types.AttributeValueMemberS{Value: "s3"}, "bytes": &types.AttributeValueMemberS{Value: "many"}},
	} {
		if _, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: item}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.GetBackup(ctx, "corrupt"); err == nil || errors.Is(err, catalog.ErrNotFound) || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("GetBackup of a corrupt item: %v", err)
	}
	if _, err := s.GetReplica(ctx, "corrupt", "s3"); err == nil || errors.Is(err, catalog.ErrNotFound) {
		t.Errorf("GetReplica of a corrupt item: %v", err)
	}
	if _, err := s.Replicas(ctx, "corrupt"); err == nil {
		t.Error("Replicas with a corrupt item succeeded")
	}
}
