package health

import (
	"log/slog"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/wedsync/backup-replication/infra/emulator"
	"github.com/wedsync/backup-replication/shared/config"
	"github.com/wedsync/backup-replication/shared/erase/erasetest"
)

// TestRetainersFollowLocks: the retention run extends locks only on the
// providers that write copies under lock, never on Supabase.
func TestRetainersFollowLocks(t *testing.T) {
	emulator.Require(t, motoErr)
	f := erasetest.New(t, moto, erasetest.Options{S3Lock: time.Hour})
	log := slog.New(slog.DiscardHandler)
	for _, c := range []struct {
		name  string
		locks config.Locks
		want  []string
	}{
		{"no locks", config.Locks{}, []string{}},
		{"s3 only", config.Locks{"s3": {Mode: "GOVERNANCE", Retention: time.Hour}}, []string{"s3"}},
		{"s3 and gcs", config.Locks{"s3": {Mode: "GOVERNANCE", Retention: time.Hour}, "gcs": {Mode: "Unlocked", Retention: time.Hour}},
			[]string{"gcs", "s3"}},
		{"supabase has none", config.Locks{"supabase": {Mode: "GOVERNANCE", Retention: time.Hour}}, []string{}},
	} {
		got := slices.Sorted(maps.Keys(retainers(c.locks, f.Providers, log)))
		if !slices.Equal(got, c.want) && !(len(got) == 0 && len(c.want) == 0) {
			t.Errorf("%s: retainers %v, want %v", c.name, got, c.want)
		}
	}
}
