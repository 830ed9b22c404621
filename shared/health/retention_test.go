package health

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wedsync/backup-replication/infra/emulator"
	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/erase"
	"github.com/wedsync/backup-replication/shared/erase/erasetest"
	"github.com/wedsync/backup-replication/shared/retention"
)

// TestScheduledRetentionHourly runs the maintenance part of the scheduled
// run with a retention policy: expired backups are erased from every
// provider by the first run, later runs within the hour leave retention
// alone, and the first run after the hour applies it again.
func TestScheduledRetentionHourly(t *testing.T) {
	emulator.Require(t, motoErr)
	f := erasetest.New(t, moto, erasetest.Options{})
	ctx := t.Context()
	now := time.Now().UTC()
	old := f.Put(t, "org1", []byte("last year's timeline"), now.AddDate(-1, 0, 0), "")
	fresh := f.Put(t, "org1", []byte("this week's timeline"), now.Add(-time.Hour), "")
	cfg, err := retention.ParseConfig([]byte(`{"keepAllDays":30}`))
	if err != nil {
		t.Fatal(err)
	}
	er, err := erase.New(erase.Deps{Catalog: f.Catalog, Keys: f.Keys, Providers: f.Providers, Landing: f.Landing})
	if err != nil {
		t.Fatal(err)
	}
	runner, err := retention.NewRunner(cfg, retention.Deps{Catalog: f.Catalog, Eraser: er})
	if err != nil {
		t.Fatal(err)
	}
	table := "health-" + randHex()
	if err := EnsureTable(ctx, f.DB, table); err != nil {
		t.Fatal(err)
	}
	store, err := NewStore(f.DB, table)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	clock := now
	h, err := New(Config{Providers: []string{"supabase", "s3", "gcs"}, SingleRound: true}, Deps{
		Providers: f.Providers, Catalog: f.Catalog, Policy: testPolicy, Store: store, Retention: runner,
		Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return clock },
	})
	if err != nil {
		t.Fatal(err)
	}
	first := h.Maintain(ctx)
	if first.Retention == nil || len(first.Retention.Erased) != 1 || first.Retention.Erased[0] != old.Backup.ID {
		t.Fatalf("first run: %+v (errors %v)", first.Retention, first.Errors)
	}
	for name, p := range f.Providers {
		if erasetest.Present(t, p, old.Backup.LandingKey) {
			t.Errorf("%s still holds the expired backup", name)
		}
		if !erasetest.Present(t, p, fresh.Backup.LandingKey) {
			t.Errorf("%s lost the fresh backup", name)
		}
	}
	if b, _ := f.Catalog.GetBackup(ctx, old.Backup.ID); !erase.Complete(b) || !strings.HasPrefix(b.Erasure.Reason, "retention") {
		t.Errorf("expired backup: %+v", b.Erasure)
	}
	mu.Lock()
	clock = now.Add(59 * time.Minute)
	mu.Unlock()
	if again := h.Maintain(ctx); again.Retention != nil {
		t.Errorf("retention ran again within the hour: %+v", again.Retention)
	}
	mu.Lock()
	clock = now.Add(61 * time.Minute)
	mu.Unlock()
	later := h.Maintain(ctx)
	if later.Retention == nil || len(later.Retention.Erased) != 0 {
		t.Errorf("run after the hour: %+v", later.Retention)
	}
	if b, _ := f.Catalog.GetBackup(ctx, fresh.Backup.ID); b.Status == catalog.StatusErased {
		t.Error("the fresh backup was erased")
	}
}

func TestLoadRetentionEnv(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	off, err := LoadRetentionEnv(env(nil))
	if err != nil || off.Policy.Enabled() || off.Keys != nil {
		t.Errorf("nothing set: %+v %v", off, err)
	}
	if _, err := LoadRetentionEnv(env(map[string]string{"RETENTION_POLICY": `{"keepAllDays":30}`})); err == nil ||
		!strings.Contains(err.Error(), "KEYS_TABLE") {
		t.Errorf("policy without keys: %v", err)
	}
	on, err := LoadRetentionEnv(env(map[string]string{"RETENTION_POLICY": `{"keepAllDays":30}`, "KEYS_TABLE": "k", "KMS_KEY_ID": "alias/x"}))
	if err != nil || !on.Policy.Enabled() || on.Keys == nil || on.Keys.Table != "k" {
		t.Errorf("policy with keys: %+v %v", on, err)
	}
	e, err := LoadEnv(env(map[string]string{"RETENTION_POLICY": `{"keepAllDays":0}`, "KEYS_TABLE": "k", "KMS_KEY_ID": "alias/x"}))
	if err == nil || !strings.Contains(err.Error(), "RETENTION_POLICY") || e.Retention.Policy.Enabled() {
		t.Errorf("LoadEnv with a bad policy: %v", err)
	}
}
