package retention

import (
	"fmt"
	"sort"
	"time"

	"github.com/wedsync/backup-replication/shared/catalog"
)

// Decision is what a policy says about one backup.
type Decision struct {
	Backup catalog.Backup
	// Keep is false when the backup expires.
	Keep bool
	// Reason says which rule keeps it ("keep-all", "weekly 2025-W07",
	// "monthly 2024-03") or why it expires.
	Reason string
	// KeepUntil, for a kept backup, is the latest date any rule that keeps
	// it would keep it: CreatedAt + KeepAllDays days for keep-all,
	// CreatedAt + WeeklyMonths months for its week's representative,
	// CreatedAt + MonthlyYears years for its month's. The representative
	// rules count only once their week or month has ended at now: until
	// then a newer backup may still take the backup's place. Zero when the
	// backup expires.
	KeepUntil time.Time
}

// Restorable reports whether a backup in status s has copies to restore
// from, and so may stand for its week or month.
func Restorable(s catalog.Status) bool {
	return s == catalog.StatusProtected || s == catalog.StatusAtRisk
}

// Plan applies p to one organisation's backups at now and returns a
// decision for each backup that is not ERASED, newest first. It is a pure
// function of its arguments.
func Plan(p Policy, backups []catalog.Backup, now time.Time) []Decision {
	now = now.UTC()
	keepAllFrom := now.Add(-time.Duration(p.KeepAllDays) * 24 * time.Hour)
	weeklyFrom := now.AddDate(0, -p.WeeklyMonths, 0)
	monthlyFrom := now.AddDate(-p.MonthlyYears, 0, 0)

	live := make([]catalog.Backup, 0, len(backups))
	for _, b := range backups {
		if b.Status != catalog.StatusErased {
			live = append(live, b)
		}
	}
	sort.Slice(live, func(i, j int) bool { return newer(live[i], live[j]) })

	// The newest restorable backup of each ISO week and of each month.
	weekRep, monthRep := map[string]string{}, map[string]string{}
	for _, b := range live {
		if !Restorable(b.Status) {
			continue
		}
		w, m := weekOf(b.CreatedAt), monthOf(b.CreatedAt)
		if _, ok := weekRep[w]; !ok {
			weekRep[w] = b.ID
		}
		if _, ok := monthRep[m]; !ok {
			monthRep[m] = b.ID
		}
	}

	out := make([]Decision, 0, len(live))
	for _, b := range live {
		at := b.CreatedAt.UTC()
		w, m := weekOf(at), monthOf(at)
		d := Decision{Backup: b, Keep: true, KeepUntil: keepUntil(p, b, now, weekRep[w] == b.ID && !at.Before(weeklyFrom),
			monthRep[m] == b.ID && !at.Before(monthlyFrom), !at.Before(keepAllFrom))}
		switch {
		case !at.Before(keepAllFrom):
			d.Reason = "keep-all"
		case weekRep[w] == b.ID && !at.Before(weeklyFrom):
			d.Reason = "weekly " + w
		case monthRep[m] == b.ID && !at.Before(monthlyFrom):
			d.Reason = "monthly " + m
		case !Restorable(b.Status):
			d.Keep, d.Reason = false, fmt.Sprintf("%s and older than %d days", b.Status, p.KeepAllDays)
		default:
			d.Keep, d.Reason = false, "expired under the retention policy ("+p.String()+")"
		}
		if !d.Keep {
			d.KeepUntil = time.Time{}
		}
		out = append(out, d)
	}
	return out
}

// keepUntil is Decision.KeepUntil of b, kept by the rules flagged.
func keepUntil(p Policy, b catalog.Backup, now time.Time, weekly, monthly, keepAll bool) time.Time {
	at := b.CreatedAt.UTC()
	var until time.Time
	if keepAll {
		until = at.Add(time.Duration(p.KeepAllDays) * 24 * time.Hour)
	}
	if weekly && !now.Before(weekEnd(at)) {
		until = later(until, at.AddDate(0, p.WeeklyMonths, 0))
	}
	if monthly && !now.Before(monthEnd(at)) {
		until = later(until, at.AddDate(p.MonthlyYears, 0, 0))
	}
	return until
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// weekEnd is the start (Monday 00:00 UTC) of the ISO week after t's.
func weekEnd(t time.Time) time.Time {
	t = t.UTC()
	days := (8 - int(t.Weekday())) % 7 // to next Monday; Monday itself: 7
	if days == 0 {
		days = 7
	}
	return time.Date(t.Year(), t.Month(), t.Day()+days, 0, 0, 0, 0, time.UTC)
}

// monthEnd is the start of the calendar month (UTC) after t's.
func monthEnd(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, time.UTC)
}

// Expired returns the backups p lets expire at now, oldest first.
func Expired(p Policy, backups []catalog.Backup, now time.Time) []catalog.Backup {
	plan := Plan(p, backups, now)
	var out []catalog.Backup
	for i := len(plan) - 1; i >= 0; i-- {
		if !plan[i].Keep {
			out = append(out, plan[i].Backup)
		}
	}
	return out
}

// newer orders backups newest first: by creation time, then by id (ids
// are time-ordered), so equal times still give one order.
func newer(a, b catalog.Backup) bool {
	if !a.CreatedAt.Equal(b.CreatedAt) {
		return a.CreatedAt.After(b.CreatedAt)
	}
	return a.ID > b.ID
}

// weekOf is t's ISO 8601 week in UTC, e.g. "2025-W07".
func weekOf(t time.Time) string {
	y, w := t.UTC().ISOWeek()
	return fmt.Sprintf("%04d-W%02d", y, w)
}

// monthOf is t's calendar month in UTC, e.g. "2024-03".
func monthOf(t time.Time) string { return t.UTC().Format("2006-01") }
