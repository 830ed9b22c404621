package retention_test

import (
	"testing"
	"time"

	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/retention"
)

// TestPlanKeepUntil: a kept backup's KeepUntil is the latest date a rule
// keeping it reaches, the weekly and monthly rules counting only once the
// week or month is over; an expiring backup has none.
func TestPlanKeepUntil(t *testing.T) {
	p := retention.Policy{KeepAllDays: 7, WeeklyMonths: 2, MonthlyYears: 3}
	now := at(t, "2025-03-12T10:00:00") // a Wednesday
	backups := []catalog.Backup{
		bk(t, "2025-03-11T08:00:00"),                       // keep-all; its week and month are open
		bk(t, "2025-03-09T08:00:00"),                       // Sunday: week 10 is over, March is not
		bk(t, "2025-02-20T08:00:00"),                       // stands for February (over) and its week
		bk(t, "2025-02-19T08:00:00"),                       // expires: neither newest of week nor month
		bk(t, "2025-02-10T08:00:00", catalog.StatusFailed), // expires
	}
	want := map[string]time.Time{
		"2025-03-11T08:00:00": at(t, "2025-03-18T08:00:00"),
		"2025-03-09T08:00:00": at(t, "2025-05-09T08:00:00"),
		"2025-02-20T08:00:00": at(t, "2028-02-20T08:00:00"),
		"2025-02-19T08:00:00": {},
		"2025-02-10T08:00:00": {},
	}
	for _, d := range retention.Plan(p, backups, now) {
		if w := want[d.Backup.ID]; !d.KeepUntil.Equal(w) || d.Keep == w.IsZero() {
			t.Errorf("%s (%s): keep %v until %v, want until %v", d.Backup.ID, d.Reason, d.Keep, d.KeepUntil, w)
		}
	}
}
