package policy

import (
	"strings"
	"testing"
	"time"

	"github.com/wedsync/backup-replication/shared/catalog"
)

const sum = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

func verified(provider string) catalog.Replica {
	return catalog.Replica{BackupID: "b1", Provider: provider, State: catalog.ReplicaVerified, VerifiedSHA256: sum}
}

func state(provider string, s catalog.ReplicaState) catalog.Replica {
	return catalog.Replica{BackupID: "b1", Provider: provider, State: s}
}

func TestEvaluate(t *testing.T) {
	landed := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	base := catalog.Backup{ID: "b1", OrganizationID: "org", SHA256: sum, Status: catalog.StatusReplicating, LandedAt: &landed}
	withStandby := DefaultTable()
	withStandby.Providers = append(withStandby.Providers, Provider{Name: "s3-standby", Role: RoleStandby, Cloud: "aws", Domain: "standby", Order: 4})
	retained := DefaultTable()
	retained.Landing.Retained = true
	allAWS := Table{Providers: []Provider{
		{Name: "a", Role: RolePrimary, Cloud: "aws", Domain: "eu-west-1"},
		{Name: "b", Role: RoleSecondary, Cloud: "aws", Domain: "us-east-1"},
		{Name: "c", Role: RoleOffsite, Cloud: "aws", Domain: "ap-south-1"},
	}}
	oneDomain := Table{Providers: []Provider{
		{Name: "a", Role: RolePrimary, Cloud: "gcp", Domain: "p"},
		{Name: "b", Role: RoleSecondary, Cloud: "gcp", Domain: "p"},
		{Name: "c", Role: RoleOffsite, Cloud: "gcp", Domain: "p"},
	}}
	failed := base
	failed.Status, failed.StatusReason = catalog.StatusFailed, "landed bytes have sha256 abc, declared 9f86…"
	notLanded := base
	notLanded.LandedAt = nil
	wrong := verified("gcs")
	wrong.VerifiedSHA256 = strings.Repeat("0", 64)
	locked := verified("s3")
	locked.Immutable = true
	const cipherSum = "3c4cd672a5586e88ae8cd0f360b7195adc7ae31e9cbeac2523116fd4c9f15bd4"
	sealed := base
	sealed.Seal = &catalog.Seal{Key: "sealed/org/b1", CipherSHA256: cipherSum, CipherSize: 99}
	cipher := func(provider string) catalog.Replica {
		r := verified(provider)
		r.VerifiedSHA256 = cipherSum
		return r
	}

	cases := []struct {
		name      string
		backup    catalog.Backup
		replicas  []catalog.Replica
		table     Table
		status    catalog.Status
		verified  int
		domains   int
		offsite   int
		immutable int
		reason    []string // substrings the reason must contain
	}{
		{"three providers verified", base, []catalog.Replica{verified("supabase"), verified("s3"), verified("gcs")}, DefaultTable(),
			catalog.StatusProtected, 3, 3, 2, 0, nil},
		{"nothing yet", base, nil, DefaultTable(),
			catalog.StatusAtRisk, 0, 0, 0, 0, []string{"0 of 3 verified copies", "0 of 2 failure domains", "no copy outside AWS", "supabase (not started)"}},
		{"two on AWS-free providers, one copying", base, []catalog.Replica{verified("supabase"), verified("gcs"), state("s3", catalog.ReplicaCopying)}, DefaultTable(),
			catalog.StatusAtRisk, 2, 2, 2, 0, []string{"2 of 3 verified copies", "not verified on s3 (copying)"}},
		{"only the AWS copy and a failed one", base, []catalog.Replica{verified("s3"), state("gcs", catalog.ReplicaFailed)}, DefaultTable(),
			catalog.StatusAtRisk, 1, 1, 0, 0, []string{"1 of 3 verified copies", "1 of 2 failure domains", "no copy outside AWS", "gcs (failed)"}},
		{"retained landing counts as the third copy", base, []catalog.Replica{verified("s3"), verified("gcs")}, retained,
			catalog.StatusProtected, 3, 3, 1, 0, nil},
		{"retained landing does not count before it landed", notLanded, []catalog.Replica{verified("s3"), verified("gcs")}, retained,
			catalog.StatusAtRisk, 2, 2, 1, 0, []string{"2 of 3 verified copies"}},
		{"landing not retained does not count", base, []catalog.Replica{verified("s3"), verified("gcs")}, DefaultTable(),
			catalog.StatusAtRisk, 2, 2, 1, 0, []string{"2 of 3 verified copies", "supabase (not started)"}},
		{"standby fills in for a provider", base, []catalog.Replica{verified("s3"), verified("gcs"), verified("s3-standby"), state("supabase", catalog.ReplicaFailed)}, withStandby,
			catalog.StatusProtected, 3, 3, 1, 0, nil},
		{"all on AWS", base, []catalog.Replica{verified("a"), verified("b"), verified("c")}, allAWS,
			catalog.StatusAtRisk, 3, 3, 0, 0, []string{"no copy outside AWS"}},
		{"all in one failure domain", base, []catalog.Replica{verified("a"), verified("b"), verified("c")}, oneDomain,
			catalog.StatusAtRisk, 3, 1, 3, 0, []string{"1 of 2 failure domains"}},
		{"copy with the wrong hash does not count", base, []catalog.Replica{verified("supabase"), verified("s3"), wrong}, DefaultTable(),
			catalog.StatusAtRisk, 2, 2, 1, 0, []string{"copy on gcs does not match the declared SHA-256"}},
		{"copy on an unknown provider does not count", base, []catalog.Replica{verified("supabase"), verified("s3"), verified("azure")}, DefaultTable(),
			catalog.StatusAtRisk, 2, 2, 1, 0, []string{"copy on azure is not in the policy table", "gcs (not started)"}},
		{"immutable copies are reported", base, []catalog.Replica{verified("supabase"), locked, verified("gcs")}, DefaultTable(),
			catalog.StatusProtected, 3, 3, 2, 1, nil},
		{"sealed: ciphertext copies count", sealed, []catalog.Replica{cipher("supabase"), cipher("s3"), cipher("gcs")}, DefaultTable(),
			catalog.StatusProtected, 3, 3, 2, 0, nil},
		{"sealed: plaintext copies no longer count", sealed, []catalog.Replica{cipher("supabase"), verified("s3"), cipher("gcs")}, DefaultTable(),
			catalog.StatusAtRisk, 2, 2, 2, 0, []string{"copy on s3 does not match the sealed object's SHA-256"}},
		{"integrity failure wins over copies", failed, []catalog.Replica{verified("supabase"), verified("s3"), verified("gcs")}, DefaultTable(),
			catalog.StatusFailed, 3, 3, 2, 0, []string{"landed bytes have sha256 abc"}},
		{"replicas of another backup are ignored", base, []catalog.Replica{verified("supabase"), verified("s3"), {BackupID: "other", Provider: "gcs", State: catalog.ReplicaVerified, VerifiedSHA256: sum}}, DefaultTable(),
			catalog.StatusAtRisk, 2, 2, 1, 0, []string{"2 of 3 verified copies"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Evaluate(tc.backup, tc.replicas, tc.table)
			if got.Status != tc.status || got.Verified != tc.verified || got.Domains != tc.domains ||
				got.Offsite != tc.offsite || got.Immutable != tc.immutable {
				t.Fatalf("got %+v\nwant status %s verified %d domains %d offsite %d immutable %d",
					got, tc.status, tc.verified, tc.domains, tc.offsite, tc.immutable)
			}
			if tc.status == catalog.StatusProtected && got.Reason != "" {
				t.Errorf("PROTECTED with reason %q", got.Reason)
			}
			for _, want := range tc.reason {
				if !strings.Contains(got.Reason, want) {
					t.Errorf("reason %q lacks %q", got.Reason, want)
				}
			}
		})
	}
}

func TestCopyDigest(t *testing.T) {
	b := catalog.Backup{SHA256: sum, Size: 4}
	if sha, size := CopyDigest(b); sha != sum || size != 4 {
		t.Fatalf("unsealed: %s %d", sha, size)
	}
	b.Seal = &catalog.Seal{CipherSHA256: "c1", CipherSize: 65}
	if sha, size := CopyDigest(b); sha != "c1" || size != 65 {
		t.Fatalf("sealed: %s %d", sha, size)
	}
}

func TestEvaluateReasonReadsWell(t *testing.T) {
	b := catalog.Backup{ID: "b1", SHA256: sum, Status: catalog.StatusReplicating}
	got := Evaluate(b, []catalog.Replica{verified("s3"), verified("s3-b")}, Table{Providers: []Provider{
		{Name: "s3", Role: RolePrimary, Cloud: "aws", Domain: "eu"},
		{Name: "s3-b", Role: RoleSecondary, Cloud: "aws", Domain: "us"},
		{Name: "gcs", Role: RoleStandby, Cloud: "gcp", Domain: "p"},
	}})
	if want := "2 of 3 verified copies; no copy outside AWS"; got.Reason != want {
		t.Fatalf("reason %q, want %q", got.Reason, want)
	}
}

func TestParseTable(t *testing.T) {
	cases := []struct {
		name    string
		json    string
		errs    []string
		minCopy int
	}{
		{"full", `{"providers":[{"name":"supabase","role":"primary","cloud":"supabase","domain":"eu","order":1},
			{"name":"s3","role":"secondary","cloud":"aws","domain":"us-east-1","order":2},
			{"name":"gcs","role":"offsite","cloud":"gcp","domain":"proj","order":3}],
			"landing":{"retained":true},"minCopies":4}`, nil, 4},
		{"defaults apply", `{"providers":[{"name":"s3","role":"primary","cloud":"aws","domain":"x"}]}`, nil, 3},
		{"every problem at once", `{"providers":[{"name":"s3","role":"boss","cloud":"","domain":"x"},{"name":"s3","role":"primary","cloud":"aws"}]}`,
			[]string{`role "boss"`, "cloud is empty", `"s3" appears twice`, "domain is empty"}, 0},
		{"no providers", `{}`, []string{"no providers"}, 0},
		{"unknown field", `{"providers":[],"copies":3}`, []string{"unknown field"}, 0},
		{"not JSON", `supabase,s3`, []string{"policy:"}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tab, err := ParseTable([]byte(tc.json))
			if len(tc.errs) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if tab.MinCopies != tc.minCopy || tab.MinDomains != 2 || tab.MinOutsideAWS != 1 {
					t.Fatalf("thresholds %d/%d/%d", tab.MinCopies, tab.MinDomains, tab.MinOutsideAWS)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, want := range tc.errs {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
		})
	}
}

func TestDownloadOrder(t *testing.T) {
	tab := Table{Providers: []Provider{
		{Name: "gcs", Order: 3}, {Name: "s3-standby", Order: 2}, {Name: "s3", Order: 2}, {Name: "supabase", Order: 1},
	}}
	var names []string
	for _, p := range tab.DownloadOrder() {
		names = append(names, p.Name)
	}
	if got := strings.Join(names, ","); got != "supabase,s3,s3-standby,gcs" {
		t.Fatalf("order %s", got)
	}
	if tab.Providers[0].Name != "gcs" {
		t.Fatal("DownloadOrder reordered the table itself")
	}
	if err := DefaultTable().Validate(); err != nil {
		t.Fatalf("default table invalid: %v", err)
	}
	if p, ok := DefaultTable().Provider("gcs"); !ok || p.Role != RoleOffsite || p.FailureDomain() != "gcp/default" {
		t.Fatalf("gcs row %+v", p)
	}
}
