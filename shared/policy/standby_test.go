package policy

import (
	"strings"
	"testing"

	"github.com/wedsync/backup-replication/shared/catalog"
)

// standbyTable is the production shape plus a standby bucket in the same
// AWS region as the S3 secondary.
func standbyTable() Table {
	t := DefaultTable()
	t.Providers = append(t.Providers, Provider{Name: "s3-standby", Role: RoleStandby, Cloud: CloudAWS, Domain: "replica", Order: 4})
	return t
}

// A standby's verified copy counts as a copy, but a standby in the same
// failure domain as another copy adds no domain.
func TestStandbyCountsAsACopyNotADomain(t *testing.T) {
	sha := strings.Repeat("ab", 32)
	b := catalog.Backup{ID: "b1", SHA256: sha, Status: catalog.StatusReplicating}
	verified := func(names ...string) []catalog.Replica {
		var out []catalog.Replica
		for _, n := range names {
			out = append(out, catalog.Replica{BackupID: "b1", Provider: n, State: catalog.ReplicaVerified, VerifiedSHA256: sha})
		}
		return out
	}
	cases := []struct {
		name       string
		minDomains int
		copies     []string
		status     catalog.Status
		verified   int
		domains    int
		reason     string
	}{
		// Supabase down: its copy went to the standby.
		{"standby for the primary", 0, []string{"s3", "gcs", "s3-standby"}, catalog.StatusProtected, 3, 2, ""},
		// The S3 secondary down: standby and GCS, plus Supabase.
		{"standby for the secondary", 0, []string{"supabase", "gcs", "s3-standby"}, catalog.StatusProtected, 3, 3, ""},
		// Same domain as the S3 copy: three copies, two domains only.
		{"same domain adds no domain", 3, []string{"s3", "gcs", "s3-standby"}, catalog.StatusAtRisk, 3, 2, "2 of 3 failure domains"},
		// Two AWS copies in one domain and nothing else: still at risk, and
		// the reason names the providers that owe a copy, not the standby.
		{"standby alone with s3", 0, []string{"s3", "s3-standby"}, catalog.StatusAtRisk, 2, 1, "not verified on supabase (not started), gcs (not started)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tab := standbyTable()
			tab.MinDomains = tc.minDomains
			res := Evaluate(b, verified(tc.copies...), tab)
			if res.Status != tc.status || res.Verified != tc.verified || res.Domains != tc.domains {
				t.Fatalf("Evaluate = %s verified %d domains %d (%q), want %s %d %d", res.Status, res.Verified, res.Domains, res.Reason,
					tc.status, tc.verified, tc.domains)
			}
			if !strings.Contains(res.Reason, tc.reason) || strings.Contains(res.Reason, "s3-standby (") {
				t.Errorf("reason %q, want it to contain %q and not to ask for a standby copy", res.Reason, tc.reason)
			}
		})
	}
}

func TestStandbyRuleParses(t *testing.T) {
	tab, err := ParseTable([]byte(`{"providers":[
		{"name":"supabase","role":"primary","cloud":"supabase","domain":"x","order":1},
		{"name":"s3-standby","role":"standby","cloud":"aws","domain":"us-west-2","order":4}],
		"standby":{"keepAfterBackfill":true}}`))
	if err != nil {
		t.Fatal(err)
	}
	if !tab.Standby.KeepAfterBackfill {
		t.Error("keepAfterBackfill not read")
	}
	if p, ok := tab.StandbyProvider(); !ok || p.Name != "s3-standby" {
		t.Errorf("StandbyProvider = %v %v", p, ok)
	}
	if _, ok := DefaultTable().StandbyProvider(); ok {
		t.Error("the default table has no standby")
	}
	if DefaultTable().Standby.KeepAfterBackfill {
		t.Error("standby copies are expired after backfill by default")
	}
}
