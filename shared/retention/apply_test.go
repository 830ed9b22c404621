package retention_test

import (
	"os"
	"slices"
	"testing"
	"time"

	"github.com/wedsync/backup-replication/infra/emulator"
	"github.com/wedsync/backup-replication/infra/faultproxy"
	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/erase"
	"github.com/wedsync/backup-replication/shared/erase/erasetest"
	"github.com/wedsync/backup-replication/shared/retention"
)

func TestMain(m *testing.M) { os.Exit(emulator.RunSharingMoto(m)) }

// TestApplyErasesExpiredBackups runs the policy over the catalog on the
// emulators: expired backups are erased from every provider, oldest
// first and at most MaxPerRun per run, kept ones and organisations
// without a policy are left alone.
func TestApplyErasesExpiredBackups(t *testing.T) {
	f := erasetest.New(t, emulator.SharedMoto(t), erasetest.Options{})
	ctx := t.Context()
	now := time.Now().UTC()
	day := 24 * time.Hour
	// org1: keep all 7 days, nothing else. Three backups older than that.
	old1 := f.Put(t, "org1", []byte("old one"), now.Add(-40*day), "")
	old2 := f.Put(t, "org1", []byte("old two"), now.Add(-20*day), catalog.StatusFailed)
	old3 := f.Put(t, "org1", []byte("old three"), now.Add(-10*day), "")
	fresh := f.Put(t, "org1", []byte("fresh"), now.Add(-2*day), "")
	// org2 keeps 30 days; org3 has no policy at all.
	keep2 := f.Put(t, "org2", []byte("org2 backup"), now.Add(-20*day), "")
	keep3 := f.Put(t, "org3", []byte("org3 backup"), now.Add(-400*day), "")

	cfg, err := retention.ParseConfig([]byte(`{"organizations":{"org1":{"keepAllDays":7},"org2":{"keepAllDays":30}},"maxPerRun":2}`))
	if err != nil {
		t.Fatal(err)
	}
	e, err := erase.New(erase.Deps{Catalog: f.Catalog, Keys: f.Keys, Providers: f.Providers, Landing: f.Landing})
	if err != nil {
		t.Fatal(err)
	}
	r, err := retention.NewRunner(cfg, retention.Deps{Catalog: f.Catalog, Eraser: e})
	if err != nil {
		t.Fatal(err)
	}
	first, err := r.Apply(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{old1.Backup.ID, old2.Backup.ID}; !slices.Equal(first.Erased, want) || !first.CutShort || first.Expired != 3 {
		t.Fatalf("first run: %+v, want erased %v (oldest first), cut short, 3 expired", first, want)
	}
	second, err := r.Apply(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(second.Erased, []string{old3.Backup.ID}) || second.CutShort {
		t.Fatalf("second run: %+v", second)
	}
	third, err := r.Apply(ctx)
	if err != nil || len(third.Erased) != 0 || third.Expired != 0 {
		t.Fatalf("third run: %+v %v", third, err)
	}
	for _, st := range []erasetest.Stored{old1, old2, old3} {
		b, err := f.Catalog.GetBackup(ctx, st.Backup.ID)
		if err != nil || !erase.Complete(b) || b.Erasure.RequestedBy != retention.By {
			t.Errorf("%s: %+v %v", st.Backup.ID, b.Erasure, err)
		}
		for name, p := range f.Providers {
			if erasetest.Present(t, p, st.Backup.LandingKey) {
				t.Errorf("%s still holds expired %s", name, st.Backup.ID)
			}
		}
	}
	for _, st := range []erasetest.Stored{fresh, keep2, keep3} {
		b, err := f.Catalog.GetBackup(ctx, st.Backup.ID)
		if err != nil || b.Status == catalog.StatusErased {
			t.Errorf("%s (%s) was erased: %v", st.Backup.ID, st.Backup.OrganizationID, err)
		}
		for name, p := range f.Providers {
			if !erasetest.Present(t, p, st.Backup.LandingKey) {
				t.Errorf("%s lost kept %s", name, st.Backup.ID)
			}
		}
	}
}

func TestApplyDisabledDoesNothing(t *testing.T) {
	f := erasetest.New(t, emulator.SharedMoto(t), erasetest.Options{})
	old := f.Put(t, "org1", []byte("ancient"), time.Now().AddDate(-20, 0, 0), "")
	e, err := erase.New(erase.Deps{Catalog: f.Catalog, Keys: f.Keys, Providers: f.Providers, Landing: f.Landing})
	if err != nil {
		t.Fatal(err)
	}
	r, err := retention.NewRunner(retention.Config{}, retention.Deps{Catalog: f.Catalog, Eraser: e})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := r.Apply(t.Context())
	if err != nil || rep.Organizations != 0 || len(rep.Erased) != 0 {
		t.Fatalf("%+v %v", rep, err)
	}
	if b, _ := f.Catalog.GetBackup(t.Context(), old.Backup.ID); b.Status == catalog.StatusErased {
		t.Error("erased without a policy")
	}
}

// TestApplyFinishesCutShortErasures: an erasure an outage cut short (key
// destroyed, a copy left) is finished by the next run, with its requester.
func TestApplyFinishesCutShortErasures(t *testing.T) {
	f := erasetest.New(t, emulator.SharedMoto(t), erasetest.Options{SupabaseProxy: true})
	ctx := t.Context()
	st := f.Put(t, "org1", []byte("recent, erased on request"), time.Time{}, "")
	e, err := erase.New(erase.Deps{Catalog: f.Catalog, Keys: f.Keys, Providers: f.Providers, Landing: f.Landing})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.SupabaseProxy.Set(faultproxy.Fault{Mode: faultproxy.Error5xx}); err != nil {
		t.Fatal(err)
	}
	b, err := e.Erase(ctx, erase.Request{OrganizationID: "org1", BackupID: st.Backup.ID, By: "user-1", Reason: "requested by the organization"})
	if err != nil || erase.Complete(b) {
		t.Fatalf("erasure during the outage: %+v %v", b.Erasure, err)
	}
	f.SupabaseProxy.Pass()
	cfg, _ := retention.ParseConfig([]byte(`{"keepAllDays":30}`))
	r, err := retention.NewRunner(cfg, retention.Deps{Catalog: f.Catalog, Eraser: e})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := r.Apply(ctx)
	if err != nil || !slices.Equal(rep.Resumed, []string{st.Backup.ID}) || len(rep.Erased) != 0 {
		t.Fatalf("run: %+v %v", rep, err)
	}
	b, _ = f.Catalog.GetBackup(ctx, st.Backup.ID)
	if !erase.Complete(b) || b.Erasure.RequestedBy != "user-1" {
		t.Errorf("after the run: %+v", b.Erasure)
	}
	if erasetest.Present(t, f.Providers["supabase"], st.Backup.LandingKey) {
		t.Error("supabase still holds the copy")
	}
}
