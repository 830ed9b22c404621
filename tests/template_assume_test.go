package tests

import (
	"maps"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"testing"

	cfiam "github.com/awslabs/goformation/v7/cloudformation/iam"

	"github.com/wedsync/backup-replication/infra/local/samtemplate"
)

// s3SecretReaders are the roles that read the S3 secondary's secret, and
// so must assume the role a {"roleArn"} secret names: downloads (api),
// the copies (replicate S3), probes (health) and rotation's testSecret.
var s3SecretReaders = []string{"ApiRole", "HealthRole", "ReplicateS3Role", "RotateRole"}

// assumers returns, per role of tpl, the resources its policies allow
// sts:AssumeRole on, and fails on a statement that mixes it with other
// actions.
func assumers(t *testing.T, tpl *samtemplate.Template) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, id := range tpl.IDs("AWS::IAM::Role") {
		r, ok := tpl.Resources[id].(*cfiam.Role)
		if !ok {
			t.Fatalf("role %s could not be read", id)
		}
		for _, p := range r.Policies {
			for _, st := range statements(p.PolicyDocument) {
				actions := texts(st["Action"])
				if st["Effect"] != "Allow" || !slices.Contains(actions, "sts:AssumeRole") {
					continue
				}
				if len(actions) != 1 {
					t.Errorf("%s statement %v: sts:AssumeRole together with %v", id, st["Sid"], actions)
				}
				out[id] = append(out[id], texts(st["Resource"])...)
			}
		}
	}
	return out
}

// TestTemplateAssumesS3RoleOnlyWhenNamed: with no S3ReplicationRoleArn no
// role may assume any role; with one, exactly the roles that read the S3
// secret may assume exactly that role, and nothing else.
func TestTemplateAssumesS3RoleOnlyWhenNamed(t *testing.T) {
	if got := assumers(t, loadTemplate(t)); len(got) != 0 {
		t.Errorf("without S3ReplicationRoleArn, roles may assume %v", got)
	}
	const role = "arn:aws:iam::444455556666:role/wedsync-backups-replication"
	params := maps.Clone(exampleParameters)
	params["S3ReplicationRoleArn"] = role
	tpl, err := samtemplate.Load(filepath.Join(repoRoot(t), "template.yaml"), samtemplate.Options{
		StackName: "ws191-prod", Region: "eu-west-2", AccountID: "111122223333", Parameters: params,
	})
	if err != nil {
		t.Fatalf("template.yaml with S3ReplicationRoleArn: %v", err)
	}
	got := assumers(t, tpl)
	ids := slices.Collect(maps.Keys(got))
	sort.Strings(ids)
	if !reflect.DeepEqual(ids, s3SecretReaders) {
		t.Errorf("roles that may assume a role: %v, want %v", ids, s3SecretReaders)
	}
	for id, res := range got {
		if !reflect.DeepEqual(res, []string{role}) {
			t.Errorf("%s may assume %v, want only %s", id, res, role)
		}
	}
}
