// Package tests holds the checks that span the system: template.yaml
// against the code (cfn-lint, SAM build targets, least privilege, tables
// and routes), every function invoked under aws-lambda-rie with its event
// ("our sam local invoke"), and end-to-end runs of the local stack.
package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	cfdynamodb "github.com/awslabs/goformation/v7/cloudformation/dynamodb"
	cfiam "github.com/awslabs/goformation/v7/cloudformation/iam"

	"github.com/wedsync/backup-replication/infra/emulator"
	"github.com/wedsync/backup-replication/infra/local/rie"
	"github.com/wedsync/backup-replication/infra/local/samtemplate"
	"github.com/wedsync/backup-replication/infra/local/stack"
	"github.com/wedsync/backup-replication/shared/api"
)

// repoRoot is the repository root (tests run in tests/).
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := stack.FindRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// requireTool finds a binary on PATH; when it is missing the test fails
// under REQUIRE_EMULATORS=1 (CI) and is skipped otherwise.
func requireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		emulator.Require(t, err)
	}
	return p
}

var (
	templateOnce sync.Once
	templateVal  *samtemplate.Template
	templateErr  error
)

// exampleParameters are what an operator would pass to `sam deploy` for
// the parameters without defaults.
var exampleParameters = map[string]any{
	"SupabaseUrl":     "https://abcdefghijklmnop.supabase.co",
	"S3ReplicaBucket": "wedsync-backups-secondary-eu-west-1",
	"S3StandbyBucket": "wedsync-backups-standby-us-west-2",
	"GcsBucket":       "wedsync-backups-offsite",
	"JwtIssuer":       "https://abcdefghijklmnop.supabase.co/auth/v1",
}

// loadTemplate reads template.yaml with the local default names (once per
// test binary).
func loadTemplate(t testing.TB) *samtemplate.Template {
	t.Helper()
	templateOnce.Do(func() {
		templateVal, templateErr = samtemplate.Load(filepath.Join(repoRoot(t), "template.yaml"), samtemplate.Options{
			StackName: "ws191-prod", Region: "eu-west-2", AccountID: "111122223333",
			Parameters: exampleParameters,
		})
	})
	if templateErr != nil {
		t.Fatalf("template.yaml: %v", templateErr)
	}
	return templateVal
}

// functionDir maps a SAM logical id to its folder under functions/ through
// the Makefile, and reports whether that folder exists yet.
func functionDir(t testing.TB, logicalID string) (string, bool) {
	t.Helper()
	root := repoRoot(t)
	dir, err := stack.FunctionDir(context.Background(), root, logicalID)
	if err != nil {
		t.Fatalf("Makefile has no build-%s target that names a folder: %v", logicalID, err)
	}
	return dir, stack.FunctionExists(root, dir)
}

// artifactsDir is tests/artifacts (ignored by git), for logs worth keeping.
func artifactsDir(t testing.TB) string {
	t.Helper()
	d := filepath.Join(repoRoot(t), "tests", "artifacts")
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// startStack starts a local stack of its own for a test and stops it at
// the end (most tests share one: sharedStack). A missing aws-lambda-rie or
// moto_server fails under REQUIRE_EMULATORS=1 and skips otherwise; any
// other start failure fails the test. Function output goes to
// tests/artifacts/<test>.log.
func startStack(t *testing.T, opts stack.Options) *stack.Stack {
	t.Helper()
	requireStackTools(t)
	if opts.Output == nil {
		name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
		f, err := os.Create(filepath.Join(artifactsDir(t), name+".log"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		opts.Output = f
	}
	s, err := launchStack(repoRoot(t), opts)
	if err != nil {
		t.Fatalf("start the local stack: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// requireStackTools fails (REQUIRE_EMULATORS=1) or skips the test when
// aws-lambda-rie or moto_server is missing.
func requireStackTools(t testing.TB) {
	t.Helper()
	if _, err := rie.FindRIE(); err != nil {
		emulator.Require(t, err)
	}
	if os.Getenv(emulator.MotoURLEnv) == "" {
		if _, err := exec.LookPath("moto_server"); err != nil {
			emulator.Require(t, fmt.Errorf("moto_server not installed (pip install 'moto[server]'): %w", err))
		}
	}
}

// launchStack starts a local stack from the repository at root.
func launchStack(root string, opts stack.Options) (*stack.Stack, error) {
	if opts.StackName == "" {
		// Unique names, so that tests sharing one moto (MOTO_URL) never collide.
		opts.StackName = "t" + strings.ToLower(api.NewID(time.Now())[16:])
	}
	opts.Root = root
	// Generous: a cold build of the bootstraps compiles every dependency
	// with the Makefile's flags, which takes minutes on a busy 2-core box.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	return stack.Start(ctx, opts)
}

// existingFunctions lists the template's functions whose folder exists.
func existingFunctions(t *testing.T) []string {
	t.Helper()
	var ids []string
	for _, id := range loadTemplate(t).FunctionIDs() {
		if _, ok := functionDir(t, id); ok {
			ids = append(ids, id)
		}
	}
	return ids
}

// Template reading helpers (template_test.go).

// shape is a table's key schema and its indexes' key schemas, as "name:TYPE".
type shape struct {
	Keys    []string
	Indexes map[string][]string
}

func tableShape(keys []ddbtypes.KeySchemaElement, gsis []ddbtypes.GlobalSecondaryIndex) shape {
	out := shape{Indexes: map[string][]string{}}
	for _, k := range keys {
		out.Keys = append(out.Keys, *k.AttributeName+":"+string(k.KeyType))
	}
	for _, g := range gsis {
		var ks []string
		for _, k := range g.KeySchema {
			ks = append(ks, *k.AttributeName+":"+string(k.KeyType))
		}
		out.Indexes[*g.IndexName] = ks
	}
	return out
}

func cfTableShape(tb *cfdynamodb.Table) shape {
	out := shape{Indexes: map[string][]string{}}
	for _, k := range tb.KeySchema {
		out.Keys = append(out.Keys, k.AttributeName+":"+k.KeyType)
	}
	for _, g := range tb.GlobalSecondaryIndexes {
		var ks []string
		for _, k := range g.KeySchema {
			ks = append(ks, k.AttributeName+":"+k.KeyType)
		}
		out.Indexes[g.IndexName] = ks
	}
	return out
}

func isTrue(b *bool) bool { return b != nil && *b }

// roles returns the template's IAM roles by logical id.
func roles(t *testing.T) map[string]*cfiam.Role {
	tpl := loadTemplate(t)
	out := map[string]*cfiam.Role{}
	for _, id := range tpl.IDs("AWS::IAM::Role") {
		r, ok := tpl.Resources[id].(*cfiam.Role)
		if !ok {
			t.Fatalf("role %s could not be read: %s", id, tpl.Untyped[id])
		}
		out[id] = r
	}
	if len(out) == 0 {
		t.Fatal("template.yaml declares no IAM roles")
	}
	return out
}

// broadARN reports a resource wider than one named thing: "*", a wildcard
// partition, region or account, or a whole resource type ("table/*").
func broadARN(res string) bool {
	if res == "*" {
		return true
	}
	parts := strings.SplitN(res, ":", 6)
	if len(parts) < 6 || parts[0] != "arn" {
		return true
	}
	if strings.Contains(parts[1]+parts[2]+parts[3]+parts[4], "*") {
		return true
	}
	rest := parts[5]
	if parts[2] == "s3" {
		bucket, _, _ := strings.Cut(rest, "/")
		return bucket == "" || strings.Contains(bucket, "*")
	}
	typ, name, ok := strings.Cut(rest, "/")
	if !ok {
		typ, name, ok = strings.Cut(rest, ":")
	}
	return rest == "*" || (ok && (name == "*" || strings.HasPrefix(name, "*"))) || strings.HasPrefix(typ, "*")
}

func statements(doc any) []map[string]any {
	m, _ := doc.(map[string]any)
	var out []map[string]any
	switch s := m["Statement"].(type) {
	case []any:
		for _, x := range s {
			if st, ok := x.(map[string]any); ok {
				out = append(out, st)
			}
		}
	case map[string]any:
		out = append(out, s)
	}
	return out
}

func texts(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		var out []string
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			} else {
				out = append(out, "") // an unresolved reference
			}
		}
		return out
	}
	return nil
}

func hasPrefixAny(ss []string, prefix string) bool {
	for _, s := range ss {
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
