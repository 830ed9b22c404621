package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// goTools are the servers the bench installs with `go install` when they
// are missing, at pinned versions. Nothing fetched lands in the repository:
// the binaries go to GOBIN.
var goTools = map[string]string{
	"versitygw":       "github.com/versity/versitygw/cmd/versitygw@v1.8.0",
	"fake-gcs-server": "github.com/fsouza/fake-gcs-server@v1.56.1",
}

// tools are the paths of the programs the bench runs.
type tools struct {
	versitygw, fakeGCS, rclone, curl, aws string // aws is optional
	supaemu                               string // built from tests/bench/cmd/supaemu
}

// ensureTools finds or installs every program the bench needs, and builds
// the emulator main into dir.
func ensureTools(ctx context.Context, root, dir string, logf func(string, ...any)) (tools, error) {
	var t tools
	var err error
	if t.versitygw, err = goTool(ctx, "versitygw", logf); err != nil {
		return t, err
	}
	if t.fakeGCS, err = goTool(ctx, "fake-gcs-server", logf); err != nil {
		return t, err
	}
	if t.rclone, err = debTool(ctx, "rclone", "rclone", logf); err != nil {
		return t, err
	}
	if t.curl, err = debTool(ctx, "curl", "curl", logf); err != nil {
		return t, err
	}
	t.aws, _ = exec.LookPath("aws") // only for a reference row
	t.supaemu = filepath.Join(dir, "supaemu")
	build := exec.CommandContext(ctx, "go", "build", "-o", t.supaemu, "./tests/bench/cmd/supaemu")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return t, fmt.Errorf("build the Supabase emulator: %v: %s", err, out)
	}
	return t, nil
}

// goTool finds name on PATH or in GOBIN, or installs it.
func goTool(ctx context.Context, name string, logf func(string, ...any)) (string, error) {
	gobin := goBin()
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	if p := filepath.Join(gobin, name); isExecutable(p) {
		return p, nil
	}
	logf("installing %s (go install %s)", name, goTools[name])
	cmd := exec.CommandContext(ctx, "go", "install", goTools[name])
	cmd.Dir = os.TempDir() // outside any module: go.mod stays untouched
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go install %s: %v: %s", goTools[name], err, out)
	}
	return filepath.Join(gobin, name), nil
}

// debTool finds name on PATH or installs the Debian package pkg.
func debTool(ctx context.Context, name, pkg string, logf func(string, ...any)) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	logf("installing %s (apt-get install -y %s)", name, pkg)
	apt := func(args ...string) error {
		if os.Geteuid() != 0 {
			args = append([]string{"sudo", "apt-get"}, args...)
		} else {
			args = append([]string{"apt-get"}, args...)
		}
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, lastLines(out, 5))
		}
		return nil
	}
	if err := apt("install", "-y", "-qq", pkg); err != nil {
		if err := apt("update", "-qq"); err != nil {
			return "", err
		}
		if err := apt("install", "-y", "-qq", pkg); err != nil {
			return "", err
		}
	}
	return exec.LookPath(name)
}

func goBin() string {
	if b, err := exec.Command("go", "env", "GOBIN").Output(); err == nil && strings.TrimSpace(string(b)) != "" {
		return strings.TrimSpace(string(b))
	}
	b, err := exec.Command("go", "env", "GOPATH").Output()
	if err != nil {
		return filepath.Join(os.Getenv("HOME"), "go", "bin")
	}
	return filepath.Join(strings.Split(strings.TrimSpace(string(b)), string(os.PathListSeparator))[0], "bin")
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// version runs argv and returns the first line it prints, for the report.
func version(argv ...string) string {
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil && len(out) == 0 {
		return "unknown"
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(line)
}

// modVersion is the module version a Go binary was built from.
func modVersion(bin string) string {
	out, err := exec.Command("go", "version", "-m", bin).Output()
	if err != nil {
		return "unknown"
	}
	for line := range strings.Lines(string(out)) {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "mod" {
			return f[2]
		}
	}
	return "unknown"
}
