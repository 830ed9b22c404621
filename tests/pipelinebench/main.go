// Command pipelinebench measures the whole pipeline on the local stack
// (infra/local/stack: moto, fake-gcs-server, the Supabase emulator and the
// real bootstraps under aws-lambda-rie): the time from an upload's
// completion to sealed and to PROTECTED, and the fan-out wall time (three
// replicate functions copying at once) against the slowest
// single-provider copy (each replicate function alone, with the seal
// function, on a stack of its own).
//
//	go run ./tests/pipelinebench [-sizes 10MiB,1GiB] [-runs 3] [-runs-large 1] [-rounds 1] [-single=true] [-baseline=true] [-one-put]
//
// Every upload is sealed first (SealFunction writes sealed/{org}/{id}); the
// replicate functions copy only the sealed object, so every stack runs the
// seal function too. Times are taken from when the last byte of the upload
// was accepted (the client's clock) to timestamps the system records: the
// backup's seal.sealedAt and ProtectedAt, a replica's StartedAt and
// VerifiedAt (same machine, same clock). The fan-out ratio compares the
// replication of the sealed object (sealedAt → copy verified) in the
// fan-out and alone. The baseline stack runs the same fan-out without the
// seal step (the replicate functions copy the plaintext upload), so the
// report can say what sealing adds to time to PROTECTED. The report goes to stdout and
// tests/artifacts/pipeline-bench.md, with what the functions logged per
// backup (deliveries, outcomes, transfers). fake-gcs-
// server keeps objects in memory and rehashes them per chunk: sizes above
// 1 GiB are refused.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/wedsync/backup-replication/infra/local/stack"
)

// maxSize is the largest object fake-gcs-server is sent.
const maxSize = 1 << 30

func main() {
	sizes := flag.String("sizes", "10MiB,1GiB", "backup sizes, comma-separated (at most 1GiB: fake-gcs-server)")
	runs := flag.Int("runs", 3, "backups of each size below 256 MiB per configuration; the report shows medians")
	runsLarge := flag.Int("runs-large", 1, "backups of each size from 256 MiB per configuration")
	single := flag.Bool("single", true, "also run each replicate function alone (for the fan-out ratio)")
	baseline := flag.Bool("baseline", true, "also run the pipeline without its seal step (what sealing adds to time to PROTECTED)")
	rounds := flag.Int("rounds", 1, "rounds: each runs every configuration in turn (interleaved, so that a machine slowing down "+
		"or speeding up weighs on each configuration alike)")
	onePut := flag.Bool("one-put", false, "upload every size in one PUT (the API's multipart threshold raised to 5 GiB); "+
		"moto sends two Object Created events for a multipart upload, S3 one")
	out := flag.String("out", "tests/artifacts/pipeline-bench.md", "report file, relative to the module root")
	timeout := flag.Duration("timeout", 90*time.Minute, "bound on the whole benchmark")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if err := run(ctx, *sizes, *runs, *runsLarge, *rounds, *single, *baseline, *onePut, *out); err != nil {
		fmt.Fprintln(os.Stderr, "pipelinebench:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s pipelinebench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// largeSize is where -runs-large takes over from -runs.
const largeSize = 256 << 20

func run(ctx context.Context, sizeList string, runs, runsLarge, rounds int, single, baseline, onePut bool, out string) error {
	var sizes []int64
	for _, s := range strings.Split(sizeList, ",") {
		n, err := parseSize(strings.TrimSpace(s))
		if err != nil {
			return err
		}
		if n > maxSize {
			return fmt.Errorf("size %s: fake-gcs-server is never sent more than 1 GiB", s)
		}
		sizes = append(sizes, n)
	}
	if runs < 1 || runsLarge < 1 || rounds < 1 {
		return fmt.Errorf("-runs, -runs-large and -rounds must be at least 1")
	}
	root, err := stack.FindRoot(".")
	if err != nil {
		return err
	}
	started := time.Now()
	load := loadAverage()
	configs := []config{{name: "fan-out", providers: providers, onePut: onePut}}
	if single {
		for _, p := range providers {
			configs = append(configs, config{name: p + " alone", providers: []string{p}, onePut: onePut})
		}
	}
	if baseline {
		configs = append(configs, config{name: noSealName, providers: providers, onePut: onePut, noSeal: true})
	}
	results := map[string]map[int64][]measure{}
	for round := range rounds {
		for _, cfg := range configs {
			if rounds > 1 {
				logf("round %d of %d", round+1, rounds)
			}
			ms, err := runConfig(ctx, root, cfg, sizes, round == 0, func(size int64) int {
				if size >= largeSize {
					return runsLarge
				}
				return runs
			})
			if err != nil {
				return fmt.Errorf("%s: %w", cfg.name, err)
			}
			if results[cfg.name] == nil {
				results[cfg.name] = map[int64][]measure{}
			}
			for size, m := range ms {
				results[cfg.name][size] = append(results[cfg.name][size], m...)
			}
		}
	}
	report := render(reportData{sizes: sizes, runs: runs, runsLarge: runsLarge, rounds: rounds, single: single, baseline: baseline, onePut: onePut, results: results, started: started,
		took: time.Since(started), loadStart: load, loadEnd: loadAverage()})
	fmt.Print(report)
	path := filepath.Join(root, out)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(report), 0o644)
}

// loadAverage is /proc/loadavg's first three fields ("" elsewhere).
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// parseSize reads 10MiB, 1GiB, 512KiB or a plain byte count.
func parseSize(s string) (int64, error) {
	mult := int64(1)
	for suffix, m := range map[string]int64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
		if v, ok := strings.CutSuffix(s, suffix); ok {
			s, mult = v, m
		}
	}
	var n int64
	if _, err := fmt.Sscan(s, &n); err != nil || n < 0 {
		return 0, fmt.Errorf("size %q: want e.g. 10MiB or 1GiB", s)
	}
	return n * mult, nil
}
