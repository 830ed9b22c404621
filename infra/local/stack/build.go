package stack

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
)

// buildFlags are the Makefile's GOFLAGS_LAMBDA: what runs locally is built
// the way it deploys, only for this machine's architecture.
var buildFlags = []string{"-tags", "lambda.norpc", "-trimpath", "-ldflags", "-s -w"}

var functionDir = regexp.MustCompile(`\./functions/([A-Za-z0-9_.-]+)`)

// FunctionDir asks the Makefile which folder under functions/ a SAM logical
// id builds (`make -n build-<LogicalId>`), so the mapping has one home.
func FunctionDir(ctx context.Context, root, logicalID string) (string, error) {
	cmd := exec.CommandContext(ctx, "make", "-s", "-n", "--no-print-directory", "build-"+logicalID, "ARTIFACTS_DIR=/nonexistent")
	cmd.Dir = root
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("make -n build-%s: %v: %s", logicalID, err, strings.TrimSpace(stderr.String()))
	}
	m := functionDir.FindStringSubmatch(out.String())
	if m == nil {
		return "", fmt.Errorf("make -n build-%s names no ./functions/<dir>: %s", logicalID, strings.TrimSpace(out.String()))
	}
	return m[1], nil
}

// FunctionExists reports whether functions/<dir> holds a Go main package yet.
func FunctionExists(root, dir string) bool {
	matches, _ := filepath.Glob(filepath.Join(root, "functions", dir, "*.go"))
	return len(matches) > 0
}

// BuildNative builds functions/<dir> for this machine (GOOS/GOARCH of the
// running Go) with the Makefile's flags into
// <root>/.build/local/<dir>/bootstrap and returns that path.
func BuildNative(ctx context.Context, root, dir string) (string, error) {
	out := filepath.Join(root, ".build", "local", dir, "bootstrap")
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", err
	}
	// Build beside the target and rename: a running bootstrap keeps its
	// file, and concurrent builds never see a half-written one.
	tmp, err := os.CreateTemp(filepath.Dir(out), "bootstrap-*")
	if err != nil {
		return "", err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	args := append([]string{"build"}, buildFlags...)
	args = append(args, "-o", tmp.Name(), "./functions/"+dir)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+runtime.GOOS, "GOARCH="+runtime.GOARCH)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./functions/%s: %v\n%s", dir, err, stderr.String())
	}
	if err := os.Chmod(tmp.Name(), 0o755); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return "", err
	}
	return out, nil
}

// FindRoot walks up from dir to the directory holding go.mod and template.yaml.
func FindRoot(dir string) (string, error) {
	d, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for {
		if fileExists(filepath.Join(d, "go.mod")) && fileExists(filepath.Join(d, "template.yaml")) {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("no go.mod with template.yaml above %s", dir)
		}
		d = parent
	}
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}
