package main

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// reportData is everything the report shows.
type reportData struct {
	sizes              []int64
	runs, runsLarge    int
	single, onePut     bool
	results            map[string]map[int64][]measure // by configuration name, then size
	started            time.Time
	took               time.Duration
	loadStart, loadEnd string
}

// render writes the markdown report.
func render(r reportData) string {
	var b strings.Builder
	fmt.Fprintf(&b, "### Time to PROTECTED (local stack)\n\n")
	fmt.Fprintf(&b, "Command: `go run ./tests/pipelinebench %s` — %d backup(s) per size below %s and %d from it, per configuration, medians; started %s, took %s.\n",
		strings.Join(os.Args[1:], " "), r.runs, sizeText(largeSize), r.runsLarge, r.started.UTC().Format("2006-01-02 15:04 UTC"), r.took.Round(time.Second))
	fmt.Fprintf(&b, "Machine: %d cores shared with other work (load average %s at start, %s at end), %s %s/%s.\n",
		runtime.NumCPU(), r.loadStart, r.loadEnd, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	if r.onePut {
		b.WriteString("Uploads: one presigned PUT per backup (API_MULTIPART_THRESHOLD=5GiB).\n\n")
	} else {
		b.WriteString("Uploads: the API's defaults, one PUT up to 100 MiB and 16 MiB parts above (moto then sends the Object Created event twice).\n\n")
	}
	fmt.Fprintf(&b, "| size | upload | upload complete → PROTECTED | supabase copy verified | s3 copy verified | gcs copy verified |\n|---|---:|---:|---:|---:|---:|\n")
	fan := r.results["fan-out"]
	for _, size := range r.sizes {
		ms := fan[size]
		fmt.Fprintf(&b, "| %s | %s | **%s** |", sizeText(size), dur(median(ms, func(m measure) time.Duration { return m.Upload })),
			dur(median(ms, func(m measure) time.Duration { return m.Protected })))
		for _, p := range providers {
			fmt.Fprintf(&b, " %s (started %s) |", dur(median(ms, func(m measure) time.Duration { return m.Verified[p] })),
				dur(median(ms, func(m measure) time.Duration { return m.Started[p] })))
		}
		b.WriteString("\n")
	}
	if r.single {
		fmt.Fprintf(&b, "\n| size | fan-out: last copy verified | supabase alone | s3 alone | gcs alone | fan-out ÷ slowest alone (target ≤ 1.2) |\n|---|---:|---:|---:|---:|---:|\n")
		for _, size := range r.sizes {
			fanLast := median(fan[size], measure.last)
			fmt.Fprintf(&b, "| %s | %s |", sizeText(size), dur(fanLast))
			var slowest time.Duration
			for _, p := range providers {
				alone := median(r.results[p+" alone"][size], func(m measure) time.Duration { return m.Verified[p] })
				slowest = max(slowest, alone)
				fmt.Fprintf(&b, " %s |", dur(alone))
			}
			ratio := float64(fanLast) / float64(slowest)
			verdict := "met"
			if ratio > 1.2 {
				verdict = "missed"
			}
			fmt.Fprintf(&b, " **%.2f×** (%s) |\n", ratio, verdict)
		}
	}
	if r.single {
		fmt.Fprintf(&b, "\n| size | configuration | copies done | CPU used by all processes | cores busy | moto_server | function bootstraps | bench process |\n|---|---|---:|---:|---:|---:|---:|---:|\n")
		for _, size := range r.sizes {
			for _, name := range append([]string{"fan-out"}, aloneNames()...) {
				ms := r.results[name][size]
				if len(ms) == 0 {
					continue
				}
				wall := median(ms, func(m measure) time.Duration { return m.Wall })
				cpu := median(ms, func(m measure) time.Duration { return total(m.CPU) })
				role := func(prefix string) string {
					return dur(median(ms, func(m measure) time.Duration {
						var d time.Duration
						for k, v := range m.CPU {
							if strings.HasPrefix(k, prefix) {
								d += v
							}
						}
						return d
					}))
				}
				fmt.Fprintf(&b, "| %s | %s | %s | %s | %.2f of %d | %s | %s | %s |\n", sizeText(size), name, dur(wall), dur(cpu),
					cpu.Seconds()/wall.Seconds(), runtime.NumCPU(), role("moto_server"), role("function bootstraps"), role("bench process"))
			}
		}
	}
	b.WriteString("\nEvery figure starts when the upload's last byte was accepted (client clock) and ends at a time the system recorded " +
		"(the backup's protectedAt, each replica's verifiedAt; \"started\" is when the replicate run for that provider began, i.e. " +
		"the event's trip through S3 → EventBridge → SQS → the poller). \"Alone\" runs one replicate function on a stack of its own, " +
		"so its copy has the machine to itself; the fan-out copies to all three at once from the same landing object. " +
		"CPU is the user+system time of this process and every process it started (from /proc) between upload complete and copies done; " +
		"\"cores busy\" is that CPU time over the wall time.\n")
	return b.String()
}

func median(ms []measure, f func(measure) time.Duration) time.Duration {
	if len(ms) == 0 {
		return 0
	}
	ds := make([]time.Duration, len(ms))
	for i, m := range ms {
		ds[i] = f(m)
	}
	slices.Sort(ds)
	return ds[len(ds)/2]
}

func dur(d time.Duration) string {
	switch {
	case d == 0:
		return "–"
	case d < 10*time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}

func aloneNames() []string {
	out := make([]string, len(providers))
	for i, p := range providers {
		out[i] = p + " alone"
	}
	return out
}
