package retention

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"time"

	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/erase"
	"github.com/wedsync/backup-replication/shared/storage"
)

// Eraser is the erasure path; *erase.Eraser implements it.
type Eraser interface {
	Erase(ctx context.Context, req erase.Request) (catalog.Backup, error)
}

var _ Eraser = (*erase.Eraser)(nil)

// By is the Request.By of erasures the policy asks for.
const By = "retention"

// Deps are what a Runner works through.
type Deps struct {
	Catalog catalog.Store
	Eraser  Eraser
	Now     func() time.Time // default time.Now
	Logger  *slog.Logger     // default: discard
	// Retainers, by provider name, are the providers whose copies are
	// written under object lock: Apply extends the lock of every VERIFIED
	// copy of a kept backup there to the backup's KeepUntil. Nil or empty:
	// locks are left as written.
	Retainers map[string]storage.Retainer
}

// Runner applies a Config to the catalog. Build it with NewRunner.
type Runner struct {
	cfg Config
	d   Deps
	log *slog.Logger
}

// NewRunner checks cfg and d and returns a Runner.
func NewRunner(cfg Config, d Deps) (*Runner, error) {
	errs := []error{cfg.Validate()}
	if d.Catalog == nil || d.Eraser == nil {
		errs = append(errs, errors.New("retention: a catalog and an eraser are required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	return &Runner{cfg: cfg.WithDefaults(), d: d, log: d.Logger}, nil
}

// Report is what one run did.
type Report struct {
	// Organizations is how many organisations had backups old enough to
	// look at.
	Organizations int `json:"organizations"`
	// Expired is how many backups the policies let expire.
	Expired int `json:"expired"`
	// Erased are the backups erased in this run (complete or not).
	Erased []string `json:"erased,omitempty"`
	// Resumed are earlier erasures, cut short by an outage, carried on.
	Resumed []string `json:"resumed,omitempty"`
	// Incomplete is how many erasures of this run left a copy behind.
	Incomplete int `json:"incomplete,omitempty"`
	// CutShort says the run stopped at MaxPerRun or ScanLimit; the next
	// run carries on.
	CutShort bool `json:"cutShort,omitempty"`
	// Extended is how many copies this run had the provider keep locked
	// until at least their backup's KeepUntil, and recorded so (see
	// Deps.Retainers); copies already recorded so are not counted.
	Extended int      `json:"extended"`
	Errors   []string `json:"errors,omitempty"`
}

// candidateStatuses are the statuses whose old backups may expire.
var candidateStatuses = []catalog.Status{catalog.StatusProtected, catalog.StatusAtRisk, catalog.StatusFailed,
	catalog.StatusPending, catalog.StatusReplicating}

// Apply runs once: it carries on erasures an outage cut short, then, per
// organisation with backups older than the shortest keep-all window, it
// erases what its policy lets expire, oldest first, at most MaxPerRun
// backups in all, and extends the object locks of the copies its policy
// keeps (see extend). Problems are reported and logged; Apply goes on with
// the next organisation.
func (r *Runner) Apply(ctx context.Context) (Report, error) {
	var rep Report
	if !r.cfg.Enabled() {
		return rep, nil
	}
	var errs []error
	budget := r.cfg.MaxPerRun
	// Carrying on takes at most half the budget, so that a provider down
	// for days cannot stop new expiries.
	budget -= r.resume(ctx, &rep, max(1, budget/2), &errs)
	orgs, complete, err := r.candidates(ctx)
	errs = append(errs, err)
	rep.Organizations, rep.CutShort = len(orgs), rep.CutShort || !complete
	now := r.d.Now()
	ext := r.newExtension()
	for _, org := range orgs {
		if budget <= 0 && len(r.d.Retainers) == 0 {
			rep.CutShort = true
			break
		}
		p, _ := r.cfg.For(org)
		backups, all, err := r.backupsOf(ctx, org)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !all {
			// Deciding on part of an organisation's backups could expire
			// one that a backup beyond the limit does not replace.
			rep.CutShort = true
			errs = append(errs, fmt.Errorf("organization %s has more than %d backups: not applied", org, r.cfg.ScanLimit))
			continue
		}
		plan := Plan(p, backups, now)
		slices.Reverse(plan) // oldest first
		for _, d := range plan {
			if d.Keep {
				continue
			}
			rep.Expired++
			if budget <= 0 {
				rep.CutShort = true
				continue
			}
			budget--
			b, err := r.d.Eraser.Erase(ctx, erase.Request{OrganizationID: org, BackupID: d.Backup.ID, By: By, Reason: "retention: " + d.Reason})
			if err != nil {
				errs = append(errs, fmt.Errorf("erase %s: %w", d.Backup.ID, err))
				continue
			}
			rep.Erased = append(rep.Erased, b.ID)
			if !erase.Complete(b) {
				rep.Incomplete++
			}
		}
		r.extend(ctx, plan, &rep, ext, &errs)
	}
	for _, err := range errs {
		if err != nil {
			rep.Errors = append(rep.Errors, err.Error())
		}
	}
	r.log.InfoContext(ctx, "retention applied", "op", "retention", "organizations", rep.Organizations, "expired", rep.Expired,
		"erased", len(rep.Erased), "resumed", len(rep.Resumed), "incomplete", rep.Incomplete, "extended", rep.Extended,
		"extend_failed", ext.failed, "cut_short", rep.CutShort, "errors", len(rep.Errors))
	return rep, errors.Join(errs...)
}

// resume carries on erasures that did not complete, within budget, and
// returns how many it tried.
func (r *Runner) resume(ctx context.Context, rep *Report, budget int, errs *[]error) int {
	var todo []catalog.Backup
	// Erased backups accumulate; only the first ScanLimit are looked at.
	_, err := r.eachByStatus(ctx, catalog.StatusErased, func(b catalog.Backup) bool {
		if b.Erasure != nil && b.Erasure.CompletedAt == nil {
			todo = append(todo, b)
		}
		return true
	})
	*errs = append(*errs, err)
	n := 0
	for _, b := range todo {
		if n >= budget {
			rep.CutShort = true
			break
		}
		n++
		out, err := r.d.Eraser.Erase(ctx, erase.Request{OrganizationID: b.OrganizationID, BackupID: b.ID, By: b.Erasure.RequestedBy, Reason: b.Erasure.Reason})
		if err != nil {
			*errs = append(*errs, fmt.Errorf("carry on erasing %s: %w", b.ID, err))
			continue
		}
		rep.Resumed = append(rep.Resumed, out.ID)
	}
	return n
}

// candidates returns, sorted, the organisations with a policy that have a
// backup older than the shortest keep-all window, and whether every
// status was scanned to its end.
func (r *Runner) candidates(ctx context.Context) ([]string, bool, error) {
	cutoff := r.d.Now().Add(-time.Duration(r.cfg.minKeepAllDays()) * 24 * time.Hour)
	orgs := map[string]bool{}
	all := true
	var errs []error
	for _, s := range candidateStatuses {
		complete, err := r.eachByStatus(ctx, s, func(b catalog.Backup) bool {
			if !b.CreatedAt.Before(cutoff) {
				return false // oldest first: the rest are younger
			}
			if _, ok := r.cfg.For(b.OrganizationID); ok {
				orgs[b.OrganizationID] = true
			}
			return true
		})
		all = all && complete
		errs = append(errs, err)
	}
	out := make([]string, 0, len(orgs))
	for o := range orgs {
		out = append(out, o)
	}
	sort.Strings(out)
	return out, all, errors.Join(errs...)
}

// eachByStatus calls fn for backups in status s, oldest first, until fn
// returns false or ScanLimit backups were seen; it reports whether it
// stopped before the limit.
func (r *Runner) eachByStatus(ctx context.Context, s catalog.Status, fn func(catalog.Backup) bool) (bool, error) {
	cursor, n := "", 0
	for n < r.cfg.ScanLimit {
		page, err := r.d.Catalog.BackupsByStatus(ctx, s, min(100, r.cfg.ScanLimit-n), cursor)
		if err != nil {
			return false, err
		}
		for _, b := range page.Backups {
			n++
			if !fn(b) {
				return true, nil
			}
		}
		if page.Next == "" {
			return true, nil
		}
		cursor = page.Next
	}
	return false, nil
}

// backupsOf reads org's backups, up to ScanLimit, and reports whether it
// read them all.
func (r *Runner) backupsOf(ctx context.Context, org string) ([]catalog.Backup, bool, error) {
	var out []catalog.Backup
	cursor := ""
	for len(out) < r.cfg.ScanLimit {
		page, err := r.d.Catalog.ListBackups(ctx, catalog.ListQuery{OrganizationID: org, Limit: 200, Cursor: cursor})
		if err != nil {
			return nil, false, err
		}
		out = append(out, page.Backups...)
		if page.Next == "" {
			return out, true, nil
		}
		cursor = page.Next
	}
	return out, false, nil
}
