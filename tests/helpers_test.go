// Package tests holds the checks that span the system: template.yaml
// against the code (cfn-lint, SAM build targets, least privilege, tables
// and routes), every function invoked under aws-lambda-rie with its event
// ("our sam local invoke"), and end-to-end runs of the local stack.
package tests

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

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

// startStack starts the local stack for a test and stops it at the end.
// A missing aws-lambda-rie or moto_server fails under REQUIRE_EMULATORS=1
// and skips otherwise; any other start failure fails the test. Function
// output goes to tests/artifacts/<test>.log.
func startStack(t *testing.T, opts stack.Options) *stack.Stack {
	t.Helper()
	if _, err := rie.FindRIE(); err != nil {
		emulator.Require(t, err)
	}
	if os.Getenv(emulator.MotoURLEnv) == "" {
		if _, err := exec.LookPath("moto_server"); err != nil {
			emulator.Require(t, fmt.Errorf("moto_server not installed (pip install 'moto[server]'): %w", err))
		}
	}
	if opts.StackName == "" {
		// Unique names, so that tests sharing one moto (MOTO_URL) never collide.
		opts.StackName = "t" + strings.ToLower(api.NewID(time.Now())[16:])
	}
	if opts.Output == nil {
		name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
		f, err := os.Create(filepath.Join(artifactsDir(t), name+".log"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		opts.Output = f
	}
	opts.Root = repoRoot(t)
	// Generous: a cold build of the bootstraps compiles every dependency
	// with the Makefile's flags, which takes minutes on a busy 2-core box.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	s, err := stack.Start(ctx, opts)
	if err != nil {
		t.Fatalf("start the local stack: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
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
