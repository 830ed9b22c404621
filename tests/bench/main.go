// Command bench measures the provider layer against rclone and against each
// destination's one-request ceiling, on local servers over loopback: a 1 GiB
// object in an S3 landing bucket (versitygw) copied to S3 (server-side), to
// GCS (fake-gcs-server) and to Supabase (the emulator in infra/supaemu),
// then the memory of one Put at several sizes against sinks at the network
// edge. Every measured copy runs in a child process, so its CPU time and
// peak RSS come from the kernel. It prints one markdown report and writes it
// to tests/artifacts/bench.md. Run it with `make bench` (or
// `go run ./tests/bench -h` for the flags).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
)

func main() {
	child := flag.Bool("child", false, "internal: run one measured operation read from stdin")
	serve := flag.String("serve", "", "internal: serve a sink (gcs-sink)")
	runs := flag.Int("runs", 1, "measurements of each 1 GiB copy; the table shows medians")
	size := flag.String("size", "1GiB", "object size for the copies (fake-gcs-server is never sent more than 1 GiB)")
	memSizes := flag.String("mem-sizes", "100MiB,1GiB,4GiB", "sizes of the memory check; empty skips it")
	only := flag.String("only", "", "regexp: measure only the copy rows whose \"pair tool mode\" matches")
	out := flag.String("out", "tests/artifacts/bench.md", "where to write the report (a relative path is from the module root)")
	timeout := flag.Duration("timeout", 2*time.Hour, "bound on the whole benchmark")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var err error
	switch {
	case *child:
		err = runChild(ctx)
	case *serve == "gcs-sink":
		err = serveGCSSink()
	case *serve != "":
		err = fmt.Errorf("unknown -serve %q", *serve)
	default:
		ctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		err = bench(ctx, options{runs: *runs, size: *size, memSizes: *memSizes, only: *only, out: *out})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type options struct {
	runs                 int
	size, memSizes, only string
	out                  string
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s bench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func bench(ctx context.Context, o options) error {
	size, err := parseSize(o.size)
	if err != nil {
		return err
	}
	var mem []int64
	for _, s := range strings.Split(o.memSizes, ",") {
		if s = strings.TrimSpace(s); s != "" {
			n, err := parseSize(s)
			if err != nil {
				return err
			}
			mem = append(mem, n)
		}
	}
	filter, err := regexp.Compile(o.only)
	if err != nil {
		return err
	}
	root, err := findRoot()
	if err != nil {
		return err
	}
	h := header{command: commandLine(), runs: max(o.runs, 1), size: size, started: time.Now(), loadBefore: loadAvg()}
	e, err := setup(ctx, root, size, logf)
	if err != nil {
		return err
	}
	defer e.close()
	h.versions = []string{version("go", "version"), version(e.t.rclone, "version"),
		"versitygw " + modVersion(e.t.versitygw), "fake-gcs-server " + modVersion(e.t.fakeGCS),
		firstWords(version(e.t.curl, "--version"), 2)}

	rows, err := e.copyRows(size <= 1<<30)
	if err != nil {
		return err
	}
	rows = selectRows(rows, filter)
	results, errs := make([][]result, len(rows)), make([][]error, len(rows))
	if len(rows) > 0 {
		logf("uploading the landing object")
		if err := e.uploadLanding(ctx); err != nil {
			return fmt.Errorf("landing upload: %w", err)
		}
	}
	for run := 1; run <= h.runs; run++ {
		for i, r := range rows {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			res, err := r.do(ctx)
			results[i], errs[i] = append(results[i], res), append(errs[i], err)
			if err != nil {
				logf("run %d/%d %s | %s | %s: FAILED: %v", run, h.runs, r.pair, r.tool, r.mode, err)
				continue
			}
			logf("run %d/%d %s | %s | %s: %.1f MB/s, CPU %.1f s, peak RSS %.0f MiB, server CPU %.1f s",
				run, h.runs, r.pair, r.tool, r.mode, float64(size)/1e6/res.m.wall.Seconds(), res.m.cpu.Seconds(),
				mib(res.m.peakRSS), res.serverCPU.Seconds())
		}
	}
	var cfgs []memConfig
	var points [][]memPoint
	if len(mem) > 0 {
		if cfgs, points, err = e.measureMemory(ctx, mem); err != nil {
			return err
		}
	}
	h.took, h.loadEnd = time.Since(h.started), loadAvg()
	report := "### Provider copies (" + sizeName(size) + ")\n\n" +
		markdown(h, summarize(rows, results, errs, size), mem, cfgs, points)
	fmt.Println(report)
	path := o.out
	if !filepath.IsAbs(path) {
		path = filepath.Join(root, path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(report), 0o644)
}

func selectRows(rows []row, filter *regexp.Regexp) []row {
	var out []row
	for _, r := range rows {
		if filter.MatchString(r.pair + " " + r.tool + " " + r.mode) {
			out = append(out, r)
		}
	}
	return out
}

// commandLine is how this run was asked for, as the report shows it.
func commandLine() string {
	if len(os.Args) <= 1 {
		return "make bench"
	}
	args := make([]string, len(os.Args)-1)
	for i, a := range os.Args[1:] {
		args[i] = a
		if a == "" || strings.ContainsAny(a, " |*?()[]$'\"\\") {
			args[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return "go run ./tests/bench " + strings.Join(args, " ")
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func firstWords(s string, n int) string {
	f := strings.Fields(s)
	return strings.Join(f[:min(n, len(f))], " ")
}
