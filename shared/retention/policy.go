// Package retention decides which backups an organisation's retention
// policy lets expire, and expires them through the erasure path
// (shared/erase): the data key is destroyed first, then every copy.
//
// A policy keeps every backup younger than KeepAllDays; beyond that, the
// newest backup of each ISO week (UTC) whose newest backup is at most
// WeeklyMonths months old; beyond that, the newest backup of each calendar
// month (UTC) at most MonthlyYears years old. Everything else expires. All
// ages are measured from now and every boundary is inclusive: a backup
// exactly KeepAllDays old is still kept.
//
// Only restorable backups (PROTECTED, AT_RISK) stand for their week or
// month, so a FAILED or half-replicated backup can never cause a good one
// to expire; backups in other states are kept by the keep-all window only.
// ERASED backups are ignored.
package retention

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Defaults of Config.
const (
	// DefaultMaxPerRun bounds the backups one run erases.
	DefaultMaxPerRun = 25
	// DefaultScanLimit bounds the backups one run reads per organisation
	// and per status when it looks for candidates.
	DefaultScanLimit = 10000
)

// Policy is one organisation's retention: see the package comment.
type Policy struct {
	KeepAllDays  int `json:"keepAllDays"`
	WeeklyMonths int `json:"weeklyMonths"`
	MonthlyYears int `json:"monthlyYears"`
}

// Validate reports every problem of p at once. A policy must keep
// everything for at least a day: a zero keep-all window would erase a
// backup the moment it is registered.
func (p Policy) Validate() error {
	var errs []error
	if p.KeepAllDays < 1 || p.KeepAllDays > 36600 {
		errs = append(errs, fmt.Errorf("keepAllDays %d is outside 1..36600", p.KeepAllDays))
	}
	if p.WeeklyMonths < 0 || p.WeeklyMonths > 1200 {
		errs = append(errs, fmt.Errorf("weeklyMonths %d is outside 0..1200", p.WeeklyMonths))
	}
	if p.MonthlyYears < 0 || p.MonthlyYears > 100 {
		errs = append(errs, fmt.Errorf("monthlyYears %d is outside 0..100", p.MonthlyYears))
	}
	return errors.Join(errs...)
}

// String describes p for people, e.g. "all for 30 days, weekly for 6
// months, monthly for 7 years".
func (p Policy) String() string {
	return fmt.Sprintf("all for %d days, weekly for %d months, monthly for %d years", p.KeepAllDays, p.WeeklyMonths, p.MonthlyYears)
}

// Config is the retention of every organisation: a default policy and
// per-organisation overrides. The zero Config is disabled: nothing
// expires unless a policy is configured.
type Config struct {
	// Default applies to organisations without an override; nil: those
	// organisations keep everything.
	Default *Policy `json:"-"`
	// Organizations overrides Default by organisation id.
	Organizations map[string]Policy `json:"organizations,omitempty"`
	// MaxPerRun bounds the backups one run erases (default DefaultMaxPerRun).
	MaxPerRun int `json:"maxPerRun,omitempty"`
	// ScanLimit bounds the backups one run reads (default DefaultScanLimit).
	ScanLimit int `json:"scanLimit,omitempty"`
}

// Enabled reports whether any organisation has a policy.
func (c Config) Enabled() bool { return c.Default != nil || len(c.Organizations) > 0 }

// For returns org's policy and whether it has one.
func (c Config) For(org string) (Policy, bool) {
	if p, ok := c.Organizations[org]; ok {
		return p, true
	}
	if c.Default != nil {
		return *c.Default, true
	}
	return Policy{}, false
}

// minKeepAllDays is the shortest keep-all window of any policy: backups
// younger than that are never candidates.
func (c Config) minKeepAllDays() int {
	n := -1
	if c.Default != nil {
		n = c.Default.KeepAllDays
	}
	for _, p := range c.Organizations {
		if n < 0 || p.KeepAllDays < n {
			n = p.KeepAllDays
		}
	}
	return max(n, 0)
}

// WithDefaults returns c with zero limits set to the defaults.
func (c Config) WithDefaults() Config {
	if c.MaxPerRun == 0 {
		c.MaxPerRun = DefaultMaxPerRun
	}
	if c.ScanLimit == 0 {
		c.ScanLimit = DefaultScanLimit
	}
	return c
}

// Validate reports every problem of c at once, naming the organisation of
// a bad override.
func (c Config) Validate() error {
	var errs []error
	if c.Default != nil {
		if err := c.Default.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("default policy: %w", err))
		}
	}
	orgs := make([]string, 0, len(c.Organizations))
	for org := range c.Organizations {
		orgs = append(orgs, org)
	}
	sort.Strings(orgs)
	for _, org := range orgs {
		if err := c.Organizations[org].Validate(); err != nil {
			errs = append(errs, fmt.Errorf("policy of organization %q: %w", org, err))
		}
	}
	if c.MaxPerRun < 0 || c.ScanLimit < 0 {
		errs = append(errs, errors.New("maxPerRun and scanLimit must not be negative"))
	}
	return errors.Join(errs...)
}

// ParseConfig reads the RETENTION_POLICY document: a default policy, with
// optional per-organisation overrides and limits, e.g.
//
//	{"keepAllDays":30,"weeklyMonths":6,"monthlyYears":7,
//	 "organizations":{"org_123":{"keepAllDays":90,"weeklyMonths":12,"monthlyYears":10}},
//	 "maxPerRun":25}
//
// A document without keepAllDays has no default policy (only the listed
// organisations expire anything). Unknown fields are refused, so a typo
// cannot silently change what is kept.
func ParseConfig(raw []byte) (Config, error) {
	var doc struct {
		KeepAllDays   *int              `json:"keepAllDays"`
		WeeklyMonths  int               `json:"weeklyMonths"`
		MonthlyYears  int               `json:"monthlyYears"`
		Organizations map[string]Policy `json:"organizations"`
		MaxPerRun     int               `json:"maxPerRun"`
		ScanLimit     int               `json:"scanLimit"`
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return Config{}, fmt.Errorf("not a retention policy document: %w", err)
	}
	if dec.More() {
		return Config{}, errors.New("not a retention policy document: data after the JSON object")
	}
	c := Config{Organizations: doc.Organizations, MaxPerRun: doc.MaxPerRun, ScanLimit: doc.ScanLimit}
	switch {
	case doc.KeepAllDays != nil:
		c.Default = &Policy{KeepAllDays: *doc.KeepAllDays, WeeklyMonths: doc.WeeklyMonths, MonthlyYears: doc.MonthlyYears}
	case doc.WeeklyMonths != 0 || doc.MonthlyYears != 0:
		return Config{}, errors.New("weeklyMonths and monthlyYears need keepAllDays")
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}
