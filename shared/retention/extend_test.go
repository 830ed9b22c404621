package retention_test

import (
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/wedsync/backup-replication/infra/emulator"
	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/erase"
	"github.com/wedsync/backup-replication/shared/erase/erasetest"
	"github.com/wedsync/backup-replication/shared/retention"
	"github.com/wedsync/backup-replication/shared/storage"
)

// TestApplyExtendsLocksOfKeptCopies: on an S3 bucket under object lock
// (GOVERNANCE, written for an hour), a run extends the lock of each kept
// backup's copy to the date the policy keeps it until and records it on
// the replica; an expiring backup is erased, not extended; a second run
// extends nothing more.
func TestApplyExtendsLocksOfKeptCopies(t *testing.T) {
	f := erasetest.New(t, emulator.SharedMoto(t), erasetest.Options{S3Lock: time.Hour})
	ctx := t.Context()
	now := time.Now().UTC()
	// Two backups of a month three months back: the newer one stands for
	// the month, the older one expires. Sub-second times on purpose.
	base := time.Date(now.Year(), now.Month()-3, 10, 12, 0, 0, 123456789, time.UTC)
	expiring := f.Put(t, "org1", []byte("older of the month"), base, "")
	monthly := f.Put(t, "org1", []byte("month keeper"), base.Add(26*time.Hour), "")
	// Created now: its week and month are still open, so only keep-all counts.
	fresh := f.Put(t, "org1", []byte("fresh"), now, "")

	cfg, err := retention.ParseConfig([]byte(`{"organizations":{"org1":{"keepAllDays":7,"weeklyMonths":1,"monthlyYears":1}}}`))
	if err != nil {
		t.Fatal(err)
	}
	e, err := erase.New(erase.Deps{Catalog: f.Catalog, Keys: f.Keys, Providers: f.Providers, Landing: f.Landing})
	if err != nil {
		t.Fatal(err)
	}
	s3r, ok := storage.As[storage.Retainer](f.Providers["s3"])
	if !ok {
		t.Fatal("the s3 provider is not a storage.Retainer")
	}
	r, err := retention.NewRunner(cfg, retention.Deps{Catalog: f.Catalog, Eraser: e,
		Retainers: map[string]storage.Retainer{"s3": s3r}})
	if err != nil {
		t.Fatal(err)
	}
	first, err := r.Apply(ctx)
	if err != nil {
		t.Fatalf("first run: %+v: %v", first, err)
	}
	if !slices.Equal(first.Erased, []string{expiring.Backup.ID}) || first.Extended != 2 {
		t.Fatalf("first run: %+v, want %s erased and two copies extended", first, expiring.Backup.ID)
	}

	lockOf := func(key string) time.Time {
		t.Helper()
		head, err := f.S3.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String(f.S3Bucket), Key: aws.String(key)})
		if err != nil {
			t.Fatalf("head %s: %v", key, err)
		}
		return aws.ToTime(head.ObjectLockRetainUntilDate).UTC()
	}
	for _, c := range []struct {
		name  string
		st    erasetest.Stored
		until time.Time
	}{
		{"monthly keeper", monthly, monthly.Backup.CreatedAt.AddDate(1, 0, 0)},
		{"fresh backup", fresh, fresh.Backup.CreatedAt.Add(7 * 24 * time.Hour)},
	} {
		want := storage.CeilSecond(c.until)
		if got := lockOf(c.st.Backup.LandingKey); !got.Equal(want) {
			t.Errorf("%s: S3 locks the copy until %v, want %v", c.name, got, want)
		}
		rp, err := f.Catalog.GetReplica(ctx, c.st.Backup.ID, "s3")
		if err != nil || rp.RetainedUntil == nil || !rp.RetainedUntil.Equal(want) {
			t.Errorf("%s: replica records %v (%v), want %v", c.name, rp.RetainedUntil, err, want)
		}
		// Other providers are not under lock: not touched.
		if rp, _ := f.Catalog.GetReplica(ctx, c.st.Backup.ID, "gcs"); rp.RetainedUntil != nil {
			t.Errorf("%s: gcs replica records a lock: %v", c.name, rp.RetainedUntil)
		}
	}
	b, err := f.Catalog.GetBackup(ctx, expiring.Backup.ID)
	if err != nil || b.Status != catalog.StatusErased {
		t.Errorf("expiring backup: %s %v, want ERASED", b.Status, err)
	}
	if rp, _ := f.Catalog.GetReplica(ctx, expiring.Backup.ID, "s3"); rp.RetainedUntil != nil {
		t.Errorf("the expiring backup's copy was extended to %v", rp.RetainedUntil)
	}

	second, err := r.Apply(ctx)
	if err != nil || second.Extended != 0 || len(second.Erased) != 0 {
		t.Fatalf("second run: %+v %v, want nothing extended or erased", second, err)
	}
}

// TestApplyExtendsPastARefusingProvider: a provider that refuses to
// extend (gcs here, written without retention) is reported for each copy
// and does not stop the s3 copies from being extended.
func TestApplyExtendsPastARefusingProvider(t *testing.T) {
	f := erasetest.New(t, emulator.SharedMoto(t), erasetest.Options{S3Lock: time.Hour})
	ctx := t.Context()
	a := f.Put(t, "org1", []byte("first"), time.Time{}, "")
	b := f.Put(t, "org1", []byte("second"), time.Time{}, "")
	f.Put(t, "org1", []byte("old, makes org1 a candidate"), time.Now().AddDate(0, 0, -10), catalog.StatusFailed)
	cfg, _ := retention.ParseConfig([]byte(`{"keepAllDays":7}`))
	e, err := erase.New(erase.Deps{Catalog: f.Catalog, Keys: f.Keys, Providers: f.Providers, Landing: f.Landing})
	if err != nil {
		t.Fatal(err)
	}
	rets := map[string]storage.Retainer{}
	for _, name := range []string{"gcs", "s3"} {
		rets[name], _ = storage.As[storage.Retainer](f.Providers[name])
	}
	r, err := retention.NewRunner(cfg, retention.Deps{Catalog: f.Catalog, Eraser: e, Retainers: rets})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := r.Apply(ctx)
	if err == nil || rep.Extended != 2 || len(rep.Errors) != 2 {
		t.Fatalf("run: %+v %v, want both s3 copies extended and both gcs copies reported", rep, err)
	}
	for _, st := range []erasetest.Stored{a, b} {
		if rp, _ := f.Catalog.GetReplica(ctx, st.Backup.ID, "s3"); rp.RetainedUntil == nil {
			t.Errorf("%s: s3 copy not extended", st.Backup.ID)
		}
		if rp, _ := f.Catalog.GetReplica(ctx, st.Backup.ID, "gcs"); rp.RetainedUntil != nil {
			t.Errorf("%s: gcs copy recorded as extended", st.Backup.ID)
		}
	}
}
