package policy

import (
	"fmt"
	"sort"
	"strings"

	"github.com/wedsync/backup-replication/shared/catalog"
)

// LandingCopy is the name under which the retained landing object appears
// in Result.Copies.
const LandingCopy = "landing"

// Result is the 3-2-1 standing of one backup.
type Result struct {
	// Status is PROTECTED, AT_RISK or FAILED (ERASED passes through).
	Status catalog.Status `json:"status"`
	// Reason says, for a person, why the backup is not PROTECTED; empty
	// when it is.
	Reason string `json:"reason,omitempty"`
	// Verified is the number of copies that count: verified against the
	// SHA-256 a copy must have (CopyDigest), on a provider in the table
	// (plus the landing copy while retained).
	Verified int `json:"verified"`
	// Domains is the number of distinct failure domains among those copies.
	Domains int `json:"domains"`
	// Offsite is the number of counted copies outside AWS.
	Offsite int `json:"offsite"`
	// Immutable is the number of counted copies under object lock or
	// retention.
	Immutable int `json:"immutable"`
	// Copies names the counted copies, in download order ("landing" last).
	Copies []string `json:"copies,omitempty"`
}

// Protected reports whether the result is PROTECTED.
func (r Result) Protected() bool { return r.Status == catalog.StatusProtected }

// Evaluate applies the table's 3-2-1 rule to a backup and its replica
// records. It never fails; whatever it cannot count it explains in Reason.
//
// A replica counts only when it is VERIFIED, its VerifiedSHA256 equals the
// SHA-256 every copy must have (CopyDigest: the sealed object's once the
// backup is sealed, the declared one before), and its provider is in the
// table; one copy per provider. A copy of the plaintext made before the
// backup was sealed therefore stops counting once it is sealed, until it
// is replaced by the sealed bytes. The landing object counts only when the table says it is
// retained, the backup has landed, and at least one counted copy was made
// from it (that copy's verification is what proved the landing bytes).
// A backup already marked FAILED (its landed bytes broke integrity) stays
// FAILED; an ERASED one stays ERASED.
func Evaluate(b catalog.Backup, replicas []catalog.Replica, t Table) Result {
	t = t.withDefaults()
	want, _ := CopyDigest(b)
	var (
		res     Result
		notes   []string
		counted = map[string]catalog.Replica{}
		states  = map[string]catalog.Replica{}
	)
	for _, r := range replicas {
		if r.BackupID != "" && b.ID != "" && r.BackupID != b.ID {
			continue
		}
		states[r.Provider] = r
		if r.State != catalog.ReplicaVerified {
			continue
		}
		if _, ok := t.Provider(r.Provider); !ok {
			notes = append(notes, fmt.Sprintf("copy on %s is not in the policy table", r.Provider))
			continue
		}
		if want == "" || r.VerifiedSHA256 != want {
			what := "the declared SHA-256"
			if b.Seal != nil {
				what = "the sealed object's SHA-256"
			}
			notes = append(notes, fmt.Sprintf("copy on %s does not match %s", r.Provider, what))
			continue
		}
		counted[r.Provider] = r
	}

	domains := map[string]bool{}
	for _, p := range t.DownloadOrder() {
		r, ok := counted[p.Name]
		if !ok {
			continue
		}
		res.Copies = append(res.Copies, p.Name)
		domains[p.FailureDomain()] = true
		if p.Cloud != CloudAWS {
			res.Offsite++
		}
		if r.Immutable {
			res.Immutable++
		}
	}
	if t.Landing.Retained && b.LandedAt != nil && len(counted) > 0 {
		res.Copies = append(res.Copies, LandingCopy)
		domains[failureDomain(t.Landing.Cloud, t.Landing.Domain)] = true
		if t.Landing.Cloud != CloudAWS {
			res.Offsite++
		}
	}
	res.Verified = len(res.Copies)
	res.Domains = len(domains)

	switch b.Status {
	case catalog.StatusErased:
		res.Status, res.Reason = catalog.StatusErased, "erased"
		return res
	case catalog.StatusFailed:
		res.Status, res.Reason = catalog.StatusFailed, b.StatusReason
		if res.Reason == "" {
			res.Reason = "integrity check failed"
		}
		return res
	}

	var why []string
	if res.Verified < t.MinCopies {
		why = append(why, fmt.Sprintf("%d of %d verified copies", res.Verified, t.MinCopies))
	}
	if res.Domains < t.MinDomains {
		why = append(why, fmt.Sprintf("%d of %d failure domains", res.Domains, t.MinDomains))
	}
	if res.Offsite < t.MinOutsideAWS {
		if t.MinOutsideAWS == 1 {
			why = append(why, "no copy outside AWS")
		} else {
			why = append(why, fmt.Sprintf("%d of %d copies outside AWS", res.Offsite, t.MinOutsideAWS))
		}
	}
	if len(why) == 0 {
		res.Status = catalog.StatusProtected
		return res
	}
	if w := waiting(t, counted, states); w != "" {
		why = append(why, w)
	}
	sort.Strings(notes)
	why = append(why, notes...)
	res.Status = catalog.StatusAtRisk
	res.Reason = strings.Join(why, "; ")
	return res
}

// waiting names the non-standby providers without a counted copy and the
// state each is in, e.g. "not verified on gcs (copying), s3 (failed)".
func waiting(t Table, counted, states map[string]catalog.Replica) string {
	var parts []string
	for _, p := range t.DownloadOrder() {
		if p.Role == RoleStandby {
			continue
		}
		if _, ok := counted[p.Name]; ok {
			continue
		}
		state := "not started"
		if r, ok := states[p.Name]; ok && r.State != "" {
			state = strings.ToLower(string(r.State))
		}
		parts = append(parts, fmt.Sprintf("%s (%s)", p.Name, state))
	}
	if len(parts) == 0 {
		return ""
	}
	return "not verified on " + strings.Join(parts, ", ")
}
