// Package policy holds the 3-2-1 rule as data: which providers exist, what
// role each plays, which failure domain each lives in, and in what order
// downloads try them. Evaluate turns a backup and its replica records into
// a status (PROTECTED, AT_RISK or FAILED) with a reason a person can read.
//
// Nothing here knows how to talk to a provider; handlers consult the table
// instead of spreading if-chains about roles and clouds (STYLE.md 11).
package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Role is what a provider is for.
type Role string

// The roles. A standby receives copies only when another provider is down
// (failover); its verified copies count like any other.
const (
	RolePrimary   Role = "primary"
	RoleSecondary Role = "secondary"
	RoleOffsite   Role = "offsite"
	RoleStandby   Role = "standby"
)

// CloudAWS is the cloud name whose copies do not count as "outside AWS".
const CloudAWS = "aws"

// Provider is one row of the table.
type Provider struct {
	// Name is the provider's configured name ("supabase", "s3", "gcs",
	// "s3-standby"), the same as storage.Provider.Name().
	Name string `json:"name"`
	Role Role   `json:"role"`
	// Cloud is who runs the storage: "aws", "supabase", "gcp".
	Cloud string `json:"cloud"`
	// Domain is the failure domain inside the cloud: a region, account or
	// project ("eu-west-2", "acct-123456789012", "wedsync-prod"). Two copies
	// are in the same failure domain when Cloud and Domain are both equal.
	Domain string `json:"domain"`
	// Order ranks providers for downloads, lowest first.
	Order int `json:"order"`
}

// FailureDomain is the provider's failure domain as one string, "cloud/domain".
func (p Provider) FailureDomain() string { return failureDomain(p.Cloud, p.Domain) }

// Landing describes the landing bucket's copy of every backup.
type Landing struct {
	// Retained says the landing object is kept (no lifecycle expiry); only
	// then does it count as a copy.
	Retained bool   `json:"retained"`
	Cloud    string `json:"cloud"`
	Domain   string `json:"domain"`
}

// Table is the declared policy: the providers and the thresholds of the
// 3-2-1 rule. A zero threshold in JSON means the default (3, 2, 1).
type Table struct {
	Providers []Provider `json:"providers"`
	Landing   Landing    `json:"landing"`
	// MinCopies is the number of verified copies needed (default 3).
	MinCopies int `json:"minCopies,omitempty"`
	// MinDomains is the number of distinct failure domains needed (default 2).
	MinDomains int `json:"minDomains,omitempty"`
	// MinOutsideAWS is the number of verified copies off AWS needed (default 1).
	MinOutsideAWS int `json:"minOutsideAws,omitempty"`
	// Standby says what becomes of the standby's copies after backfill.
	Standby Standby `json:"standby,omitzero"`
}

// Standby is the rule for copies a standby provider took while another
// provider's circuit breaker was open (failover). Such a copy counts like
// any other while it exists; once every non-standby provider holds its own
// verified copy of the backup (backfill), it is kept or expired.
type Standby struct {
	// KeepAfterBackfill keeps the standby copy after backfill. false (the
	// default) deletes it then, provided the backup stays PROTECTED
	// without it.
	KeepAfterBackfill bool `json:"keepAfterBackfill,omitempty"`
}

// Default thresholds of the 3-2-1 rule.
const (
	DefaultMinCopies     = 3
	DefaultMinDomains    = 2
	DefaultMinOutsideAWS = 1
)

// DefaultTable is the production shape: Supabase Storage primary, an S3
// bucket in another region or account secondary, GCS offsite; the landing
// bucket expires its objects and so does not count.
func DefaultTable() Table {
	return Table{
		Providers: []Provider{
			{Name: "supabase", Role: RolePrimary, Cloud: "supabase", Domain: "default", Order: 1},
			{Name: "s3", Role: RoleSecondary, Cloud: CloudAWS, Domain: "replica", Order: 2},
			{Name: "gcs", Role: RoleOffsite, Cloud: "gcp", Domain: "default", Order: 3},
		},
		Landing: Landing{Retained: false, Cloud: CloudAWS, Domain: "landing"},
	}.withDefaults()
}

// ParseTable reads a table from JSON (the POLICY variable), applies the
// default thresholds and validates it.
func ParseTable(data []byte) (Table, error) {
	var t Table
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return Table{}, fmt.Errorf("policy: %w", err)
	}
	t = t.withDefaults()
	if err := t.Validate(); err != nil {
		return Table{}, err
	}
	return t, nil
}

func (t Table) withDefaults() Table {
	if t.MinCopies == 0 {
		t.MinCopies = DefaultMinCopies
	}
	if t.MinDomains == 0 {
		t.MinDomains = DefaultMinDomains
	}
	if t.MinOutsideAWS == 0 {
		t.MinOutsideAWS = DefaultMinOutsideAWS
	}
	if t.Landing.Cloud == "" {
		t.Landing.Cloud = CloudAWS
	}
	if t.Landing.Domain == "" {
		t.Landing.Domain = "landing"
	}
	return t
}

// Validate reports every problem in the table at once.
func (t Table) Validate() error {
	var errs []error
	if len(t.Providers) == 0 {
		errs = append(errs, errors.New("policy: no providers"))
	}
	seen := map[string]bool{}
	for i, p := range t.Providers {
		where := fmt.Sprintf("policy: providers[%d]", i)
		if p.Name == "" {
			errs = append(errs, fmt.Errorf("%s: name is empty", where))
		} else if seen[p.Name] {
			errs = append(errs, fmt.Errorf("%s: name %q appears twice", where, p.Name))
		}
		seen[p.Name] = true
		switch p.Role {
		case RolePrimary, RoleSecondary, RoleOffsite, RoleStandby:
		default:
			errs = append(errs, fmt.Errorf("%s (%s): role %q is not primary, secondary, offsite or standby", where, p.Name, p.Role))
		}
		if p.Cloud == "" {
			errs = append(errs, fmt.Errorf("%s (%s): cloud is empty", where, p.Name))
		}
		if p.Domain == "" {
			errs = append(errs, fmt.Errorf("%s (%s): domain is empty", where, p.Name))
		}
	}
	if t.MinCopies < 1 || t.MinDomains < 1 || t.MinOutsideAWS < 0 {
		errs = append(errs, fmt.Errorf("policy: thresholds must be positive (minCopies %d, minDomains %d, minOutsideAws %d)",
			t.MinCopies, t.MinDomains, t.MinOutsideAWS))
	}
	return errors.Join(errs...)
}

// Provider returns the row named name.
func (t Table) Provider(name string) (Provider, bool) {
	for _, p := range t.Providers {
		if p.Name == name {
			return p, true
		}
	}
	return Provider{}, false
}

// Names lists the providers' names in table order.
func (t Table) Names() []string {
	out := make([]string, len(t.Providers))
	for i, p := range t.Providers {
		out[i] = p.Name
	}
	return out
}

// DownloadOrder returns the providers sorted by Order (then name): the
// order in which downloads and restores try them.
func (t Table) DownloadOrder() []Provider {
	out := append([]Provider(nil), t.Providers...)
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Order != out[j].Order {
			return out[i].Order < out[j].Order
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// StandbyProvider returns the standby, the first provider with role
// standby in download order, if the table has one.
func (t Table) StandbyProvider() (Provider, bool) {
	if s := t.ByRole(RoleStandby); len(s) > 0 {
		return s[0], true
	}
	return Provider{}, false
}

// ByRole returns the providers with role r, in download order.
func (t Table) ByRole(r Role) []Provider {
	var out []Provider
	for _, p := range t.DownloadOrder() {
		if p.Role == r {
			out = append(out, p)
		}
	}
	return out
}

func failureDomain(cloud, domain string) string { return cloud + "/" + domain }
