package retention_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/retention"
)

// at parses a UTC time "2006-01-02T15:04:05".
func at(t testing.TB, s string) time.Time {
	t.Helper()
	v, err := time.Parse("2006-01-02T15:04:05", s)
	if err != nil {
		t.Fatal(err)
	}
	return v.UTC()
}

// bk is a backup created at when, PROTECTED unless status says otherwise;
// its id is its creation time, so expectations read as dates.
func bk(t testing.TB, when string, status ...catalog.Status) catalog.Backup {
	st := catalog.StatusProtected
	if len(status) > 0 {
		st = status[0]
	}
	return catalog.Backup{ID: when, OrganizationID: "org1", CreatedAt: at(t, when), Status: st}
}

func ids(bs []catalog.Backup) []string {
	out := []string{}
	for _, b := range bs {
		out = append(out, b.ID)
	}
	return out
}

func TestExpired(t *testing.T) {
	p30 := retention.Policy{KeepAllDays: 30}
	std := retention.Policy{KeepAllDays: 30, WeeklyMonths: 6, MonthlyYears: 7}
	now := "2025-03-15T12:00:00" // a Saturday
	cases := []struct {
		name    string
		policy  retention.Policy
		now     string
		backups []string // PROTECTED backups by creation time
		extra   []catalog.Backup
		expired []string // oldest first
	}{
		{name: "no backups", policy: std, now: now},
		{name: "all within keep-all", policy: p30, now: now,
			backups: []string{"2025-02-13T12:00:00", "2025-03-01T00:00:00", "2025-03-15T11:59:59", "2025-03-16T00:00:00"}},
		{name: "exactly on the keep-all boundary is kept, a second older expires", policy: p30, now: now,
			backups: []string{"2025-02-13T11:59:59", "2025-02-13T12:00:00"}, expired: []string{"2025-02-13T11:59:59"}},
		{name: "newest of each ISO week kept in the weekly window", policy: retention.Policy{KeepAllDays: 1, WeeklyMonths: 6}, now: now,
			// Week 2025-W06 (Mon 3 Feb .. Sun 9 Feb) and 2025-W07.
			backups: []string{"2025-02-03T09:00:00", "2025-02-05T09:00:00", "2025-02-09T23:59:59",
				"2025-02-10T00:00:00", "2025-02-12T10:00:00"},
			expired: []string{"2025-02-03T09:00:00", "2025-02-05T09:00:00", "2025-02-10T00:00:00"}},
		{name: "ISO week across the new year", policy: retention.Policy{KeepAllDays: 1, WeeklyMonths: 6}, now: now,
			// 30 Dec 2024 (Mon) .. 5 Jan 2025 (Sun) is 2025-W01; 29 Dec 2024 is 2024-W52.
			backups: []string{"2024-12-29T10:00:00", "2024-12-30T10:00:00", "2025-01-02T10:00:00"},
			expired: []string{"2024-12-30T10:00:00"}},
		{name: "weekly window boundary inclusive", policy: retention.Policy{KeepAllDays: 1, WeeklyMonths: 1}, now: now,
			// now - 1 month = 2025-02-15T12:00:00 (a Saturday): its week's newest at exactly that instant is kept.
			backups: []string{"2025-02-08T12:00:00", "2025-02-15T12:00:00"},
			expired: []string{"2025-02-08T12:00:00"}},
		{name: "weekly window: a week whose newest is a second too old expires", policy: retention.Policy{KeepAllDays: 1, WeeklyMonths: 1}, now: now,
			backups: []string{"2025-02-15T11:59:59"}, expired: []string{"2025-02-15T11:59:59"}},
		{name: "newest of each month kept in the monthly window", policy: retention.Policy{KeepAllDays: 1, MonthlyYears: 1}, now: now,
			backups: []string{"2024-11-01T00:00:00", "2024-11-30T23:59:59", "2024-12-01T00:00:00", "2024-12-31T08:00:00",
				"2025-01-15T00:00:00"},
			expired: []string{"2024-11-01T00:00:00", "2024-12-01T00:00:00"}},
		{name: "monthly window boundary inclusive", policy: retention.Policy{KeepAllDays: 1, MonthlyYears: 2}, now: now,
			backups: []string{"2023-03-15T11:59:59", "2023-03-15T12:00:00", "2023-02-28T00:00:00"},
			// 15 Mar 2023 12:00 is the newest of March 2023 and exactly two years old.
			expired: []string{"2023-02-28T00:00:00", "2023-03-15T11:59:59"}},
		{name: "weeks then months", policy: retention.Policy{KeepAllDays: 7, WeeklyMonths: 1, MonthlyYears: 1}, now: now,
			backups: []string{
				"2024-12-10T00:00:00", "2024-12-20T00:00:00", // December: 20th is the month's newest
				"2025-01-05T00:00:00", "2025-01-31T00:00:00", // January: 31st
				"2025-02-16T00:00:00", "2025-02-18T00:00:00", "2025-02-20T00:00:00", // W07 Sun 16th, W08 18th and 20th
				"2025-03-10T00:00:00", // keep-all
			},
			expired: []string{"2024-12-10T00:00:00", "2025-01-05T00:00:00", "2025-02-18T00:00:00"}},
		{name: "everything older than the windows expires", policy: std, now: now,
			backups: []string{"2017-12-31T23:00:00", "2018-03-15T11:00:00", "2018-03-15T12:00:00"},
			expired: []string{"2017-12-31T23:00:00", "2018-03-15T11:00:00"}},
		{name: "a FAILED backup never stands for its week; it expires after keep-all", policy: retention.Policy{KeepAllDays: 1, WeeklyMonths: 6}, now: now,
			backups: []string{"2025-02-03T09:00:00"},
			extra: []catalog.Backup{bk(t, "2025-02-07T09:00:00", catalog.StatusFailed),
				bk(t, "2025-02-08T09:00:00", catalog.StatusPending), bk(t, "2025-03-15T09:00:00", catalog.StatusFailed)},
			expired: []string{"2025-02-07T09:00:00", "2025-02-08T09:00:00"}},
		{name: "AT_RISK stands for its week; ERASED is ignored", policy: retention.Policy{KeepAllDays: 1, WeeklyMonths: 6}, now: now,
			backups: []string{"2025-02-03T09:00:00"},
			extra: []catalog.Backup{bk(t, "2025-02-05T09:00:00", catalog.StatusAtRisk),
				bk(t, "2025-02-06T09:00:00", catalog.StatusErased)},
			expired: []string{"2025-02-03T09:00:00"}},
		{name: "equal times: the larger id wins", policy: retention.Policy{KeepAllDays: 1, WeeklyMonths: 6}, now: now,
			extra: []catalog.Backup{
				{ID: "01A", CreatedAt: at(t, "2025-02-05T09:00:00"), Status: catalog.StatusProtected},
				{ID: "01B", CreatedAt: at(t, "2025-02-05T09:00:00"), Status: catalog.StatusProtected}},
			expired: []string{"01A"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var in []catalog.Backup
			for _, s := range c.backups {
				in = append(in, bk(t, s))
			}
			in = append(in, c.extra...)
			// Order of the input must not matter.
			slices.Reverse(in)
			got := ids(retention.Expired(c.policy, in, at(t, c.now)))
			want := c.expired
			if want == nil {
				want = []string{}
			}
			if !slices.Equal(got, want) {
				t.Errorf("expired %v, want %v", got, want)
			}
			for _, d := range retention.Plan(c.policy, in, at(t, c.now)) {
				if d.Reason == "" || d.Backup.Status == catalog.StatusErased {
					t.Errorf("decision %+v", d)
				}
			}
		})
	}
}

// TestTwoYearsOfDailyBackups runs the standard policy (all for 30 days,
// weekly for 6 months, monthly for 7 years) over two years of daily
// backups and compares with the set worked out by the calendar: the last
// 30 days, the Sundays of the last 6 months, and the last day of each
// month.
func TestTwoYearsOfDailyBackups(t *testing.T) {
	p := retention.Policy{KeepAllDays: 30, WeeklyMonths: 6, MonthlyYears: 7}
	now := at(t, "2026-01-01T12:00:00")
	first := at(t, "2024-01-02T03:00:00")
	var all []catalog.Backup
	want := map[string]bool{}
	for d := first; !d.After(now); d = d.AddDate(0, 0, 1) {
		b := catalog.Backup{ID: d.Format("2006-01-02"), OrganizationID: "org1", CreatedAt: d, Status: catalog.StatusProtected}
		all = append(all, b)
		recent := !d.Before(now.AddDate(0, 0, -30))
		sundayInHalfYear := d.Weekday() == time.Sunday && !d.Before(at(t, "2025-07-01T12:00:00"))
		lastOfMonth := d.AddDate(0, 0, 1).Month() != d.Month()
		if recent || sundayInHalfYear || lastOfMonth {
			want[b.ID] = true
		}
	}
	expired := retention.Expired(p, all, now)
	gone := map[string]bool{}
	for _, b := range expired {
		gone[b.ID] = true
	}
	var wrong []string
	for _, b := range all {
		if gone[b.ID] == want[b.ID] {
			wrong = append(wrong, fmt.Sprintf("%s (%s): kept=%v want %v", b.ID, b.CreatedAt.Weekday(), !gone[b.ID], want[b.ID]))
		}
	}
	if len(wrong) > 0 {
		t.Fatalf("%d backups decided wrongly:\n%s", len(wrong), strings.Join(wrong, "\n"))
	}
	// 30 days (3 Dec 2025 .. 1 Jan 2026) + the 22 Sundays 6 Jul .. 30 Nov 2025
	// (those of December are within the 30 days) + 23 month ends (Jan 2024 ..
	// Nov 2025) less the two that are also such Sundays (31 Aug, 30 Nov 2025).
	if kept := len(all) - len(expired); kept != 30+22+23-2 {
		t.Errorf("kept %d of %d, want %d", kept, len(all), 30+22+23-2)
	}
	t.Logf("%d daily backups: %d kept, %d expire", len(all), len(all)-len(expired), len(expired))
}

func TestParseConfig(t *testing.T) {
	c, err := retention.ParseConfig([]byte(`{"keepAllDays":30,"weeklyMonths":6,"monthlyYears":7,
		"organizations":{"org_big":{"keepAllDays":90,"weeklyMonths":12,"monthlyYears":10}},"maxPerRun":5}`))
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := c.For("org_big"); !ok || p.KeepAllDays != 90 {
		t.Errorf("override: %+v %v", p, ok)
	}
	if p, ok := c.For("other"); !ok || p != (retention.Policy{KeepAllDays: 30, WeeklyMonths: 6, MonthlyYears: 7}) {
		t.Errorf("default: %+v %v", p, ok)
	}
	if c.WithDefaults().MaxPerRun != 5 || c.WithDefaults().ScanLimit != retention.DefaultScanLimit {
		t.Errorf("limits %+v", c.WithDefaults())
	}
	only, err := retention.ParseConfig([]byte(`{"organizations":{"org_a":{"keepAllDays":7}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := only.For("org_b"); ok || !only.Enabled() {
		t.Errorf("overrides only: %+v", only)
	}
	if (retention.Config{}).Enabled() {
		t.Error("the zero Config expires things")
	}
	for _, bad := range []string{
		`{"keepAllDays":0}`, `{"keepAllDays":30,"weeklyMonths":-1}`, `{"keepAllDays":30,"keepAll":5}`,
		`{"weeklyMonths":6}`, `{"organizations":{"org_a":{"keepAllDays":0}}}`, `{"keepAllDays":30} {}`, `[]`,
	} {
		if _, err := retention.ParseConfig([]byte(bad)); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
