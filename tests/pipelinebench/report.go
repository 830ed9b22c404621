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
	rounds             int
	single, onePut     bool
	baseline           bool
	results            map[string]map[int64][]measure // by configuration name, then size
	started            time.Time
	took               time.Duration
	loadStart, loadEnd string
}

// render writes the markdown report.
func render(r reportData) string {
	var b strings.Builder
	fmt.Fprintf(&b, "### Time to PROTECTED (local stack)\n\n")
	fmt.Fprintf(&b, "Command: `go run ./tests/pipelinebench %s` — %d backup(s) per size below %s and %d from it, per configuration and round, "+
		"%d round(s) (each runs every configuration in turn), medians (of two: their mean); started %s, took %s.\n",
		strings.Join(os.Args[1:], " "), r.runs, sizeText(largeSize), r.runsLarge, r.rounds, r.started.UTC().Format("2006-01-02 15:04 UTC"), r.took.Round(time.Second))
	fmt.Fprintf(&b, "Machine: %d cores shared with other work (load average %s at start, %s at end), %s %s/%s.\n",
		runtime.NumCPU(), r.loadStart, r.loadEnd, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	if r.onePut {
		b.WriteString("Uploads: one presigned PUT per backup (API_MULTIPART_THRESHOLD=5GiB).\n\n")
	} else {
		b.WriteString("Uploads: the API's defaults, one PUT up to 100 MiB and 16 MiB parts above (moto then sends the Object Created event twice).\n\n")
	}
	fmt.Fprintf(&b, "Fan-out (seal and all three replicate functions):\n\n")
	fmt.Fprintf(&b, "| size | upload | upload complete → sealed | upload complete → PROTECTED | sealed → supabase verified | sealed → s3 verified | sealed → gcs verified |\n|---|---:|---:|---:|---:|---:|---:|\n")
	fan := r.results["fan-out"]
	for _, size := range r.sizes {
		ms := fan[size]
		fmt.Fprintf(&b, "| %s | %s | %s | **%s** |", sizeText(size), dur(median(ms, func(m measure) time.Duration { return m.Upload })),
			dur(median(ms, func(m measure) time.Duration { return m.Sealed })),
			dur(median(ms, func(m measure) time.Duration { return m.Protected })))
		for _, p := range providers {
			fmt.Fprintf(&b, " %s (started %s) |", dur(median(ms, func(m measure) time.Duration { return m.afterSeal(p) })),
				dur(median(ms, func(m measure) time.Duration { return m.startedAfterSeal(p) })))
		}
		b.WriteString("\n")
	}
	if r.single {
		fmt.Fprintf(&b, "\nReplication of the sealed object, from its seal.sealedAt to the copy verified:\n\n")
		fmt.Fprintf(&b, "| size | fan-out: sealed → last copy verified | supabase alone | s3 alone | gcs alone | fan-out ÷ slowest alone (target ≤ 1.2) |\n|---|---:|---:|---:|---:|---:|\n")
		for _, size := range r.sizes {
			fanLast := median(fan[size], measure.lastAfterSeal)
			fmt.Fprintf(&b, "| %s | %s |", sizeText(size), dur(fanLast))
			var slowest time.Duration
			for _, p := range providers {
				alone := median(r.results[p+" alone"][size], func(m measure) time.Duration { return m.afterSeal(p) })
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
		b.WriteString(pairedRatios(r))
	}
	if r.single {
		fmt.Fprintf(&b, "\n| size | configuration | upload complete → sealed | copies done | CPU used by all processes | cores busy | moto_server | function bootstraps | bench process |\n|---|---|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, size := range r.sizes {
			for _, name := range append([]string{"fan-out"}, aloneNames()...) {
				ms := r.results[name][size]
				if len(ms) == 0 {
					continue
				}
				wall := median(ms, func(m measure) time.Duration { return m.Wall })
				cpu := median(ms, func(m measure) time.Duration { return total(m.CPU) })
				roles := roleColumns(ms, func(m measure) map[string]time.Duration { return m.CPU })
				fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %.2f of %d | %s |\n", sizeText(size), name,
					dur(median(ms, func(m measure) time.Duration { return m.Sealed })), dur(wall), dur(cpu),
					cpu.Seconds()/wall.Seconds(), runtime.NumCPU(), roles)
			}
		}
	}
	b.WriteString(floorTable(r))
	if r.baseline {
		b.WriteString(sealCostTable(r))
	}
	b.WriteString(logTable(r))
	b.WriteString("\n\"Upload complete\" is when the upload's last byte was accepted (client clock); every other time is one the system recorded " +
		"(the backup's seal.sealedAt and protectedAt, each replica's startedAt and verifiedAt; \"started\" is when the replicate run for that " +
		"provider claimed the copy, i.e. the sealed object's event's trip through S3 → EventBridge → SQS → the poller). " +
		"\"Alone\" runs the seal function and one replicate function on a stack of their own, so the copy has the machine to itself; " +
		"the fan-out copies the same sealed object to all three at once. The ratio compares replication only (from sealedAt), " +
		"so the seal step, the same in every configuration, is counted in neither side. " +
		"CPU is the user+system time of this process and every process it started (from /proc) between upload complete and copies done " +
		"(seal included); \"cores busy\" is that CPU time over the wall time.\n")
	return b.String()
}

// median is the middle value, or the mean of the two middle values of an
// even count.
func median(ms []measure, f func(measure) time.Duration) time.Duration {
	if len(ms) == 0 {
		return 0
	}
	ds := make([]time.Duration, len(ms))
	for i, m := range ms {
		ds[i] = f(m)
	}
	slices.Sort(ds)
	if n := len(ds); n%2 == 0 {
		return (ds[n/2-1] + ds[n/2]) / 2
	}
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

// logTable lists, per backup, what the seal and replicate functions logged:
// deliveries handled, their outcomes, the transfers that ran.
func logTable(r reportData) string {
	var b strings.Builder
	b.WriteString("\nWhat the functions logged per backup (deliveries of its events handled until the configuration's last backup was done; " +
		"a copy that restarted shows more than one transfer):\n\n| size | configuration | # | seal | supabase | s3 | gcs |\n|---|---|---:|---|---|---|---|\n")
	for _, size := range r.sizes {
		for _, name := range append([]string{"fan-out"}, aloneNames()...) {
			for i, m := range r.results[name][size] {
				fmt.Fprintf(&b, "| %s | %s | %d | %s after upload complete; %s |", sizeText(size), name, i+1, dur(m.Sealed), m.Logs["seal"].summary())
				for _, p := range providers {
					if _, ok := m.Verified[p]; !ok && m.Logs[p] == nil {
						b.WriteString(" – |")
						continue
					}
					fmt.Fprintf(&b, " verified %s after the seal (started %s); %s |", dur(m.afterSeal(p)), dur(m.startedAfterSeal(p)), m.Logs[p].summary())
				}
				b.WriteString("\n")
			}
		}
	}
	return b.String()
}

// floorTable is the replication's CPU, from the seal seen to the copies
// done: on this machine's cores the fan-out cannot take less wall time
// than its CPU time spread over all of them, whatever the code does, so
// that floor over the slowest copy alone is the best ratio it allows.
func floorTable(r reportData) string {
	var b strings.Builder
	cores := runtime.NumCPU()
	fmt.Fprintf(&b, "\nReplication's CPU (every process, from the wait seeing the seal recorded to the copies done), and the floor it puts under the fan-out on %d cores:\n\n", cores)
	fmt.Fprintf(&b, "| size | configuration | replication wall | replication CPU | cores busy | floor: CPU ÷ %d cores | moto_server | function bootstraps | bench process |\n|---|---|---:|---:|---:|---:|---:|---:|---:|\n", cores)
	for _, size := range r.sizes {
		var slowest, fanFloor time.Duration
		for _, name := range append([]string{"fan-out"}, aloneNames()...) {
			ms := r.results[name][size]
			if len(ms) == 0 {
				continue
			}
			wall := median(ms, func(m measure) time.Duration { return m.ReplWall })
			cpu := median(ms, func(m measure) time.Duration { return total(m.ReplCPU) })
			floor := cpu / time.Duration(cores)
			if name == "fan-out" {
				fanFloor = floor
			} else {
				p := strings.TrimSuffix(name, " alone")
				slowest = max(slowest, median(ms, func(m measure) time.Duration { return m.afterSeal(p) }))
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %.2f of %d | %s | %s |\n", sizeText(size), name, dur(wall), dur(cpu),
				cpu.Seconds()/max(wall.Seconds(), 1e-9), cores, dur(floor),
				roleColumns(ms, func(m measure) map[string]time.Duration { return m.ReplCPU }))
		}
		if slowest > 0 && fanFloor > 0 {
			fmt.Fprintf(&b, "\n%s: the fan-out's floor is %.2f× the slowest copy alone (%s): the best ratio this machine allows.\n",
				sizeText(size), float64(fanFloor)/float64(slowest), dur(slowest))
		}
	}
	return b.String()
}

// noSealName is the baseline configuration: the fan-out without sealing.
const noSealName = "no seal"

// sealCostTable compares time to PROTECTED with and without the seal step.
func sealCostTable(r reportData) string {
	var b strings.Builder
	b.WriteString("\nWhat sealing adds to time to PROTECTED (the same fan-out, with the seal step and without it: the baseline's replicate " +
		"functions copy the plaintext upload, their events put on the queues by the benchmark as the upload completes):\n\n")
	b.WriteString("| size | upload complete → PROTECTED without sealing | with sealing | sealing adds (target ≤ 10 %) |\n|---|---:|---:|---:|\n")
	for _, size := range r.sizes {
		base := median(r.results[noSealName][size], func(m measure) time.Duration { return m.Protected })
		sealed := median(r.results["fan-out"][size], func(m measure) time.Duration { return m.Protected })
		if base == 0 || sealed == 0 {
			continue
		}
		added := float64(sealed-base) / float64(base) * 100
		verdict := "met"
		if added > 10 {
			verdict = "missed"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | **%+.0f %%** (%s) |\n", sizeText(size), dur(base), dur(sealed), added, verdict)
	}
	return b.String()
}

// pairedRatios is the fan-out ratio of each run against the alone runs
// of the same index (with -rounds, the same round: measured minutes apart
// at most, so a machine that slowed down or sped up weighs on both).
func pairedRatios(r reportData) string {
	var b strings.Builder
	for _, size := range r.sizes {
		fan := r.results["fan-out"][size]
		var ratios []string
		met := 0
		for i, f := range fan {
			var slowest time.Duration
			for _, p := range providers {
				alone := r.results[p+" alone"][size]
				if i >= len(alone) {
					return b.String()
				}
				slowest = max(slowest, alone[i].afterSeal(p))
			}
			ratio := float64(f.lastAfterSeal()) / float64(slowest)
			if ratio <= 1.2 {
				met++
			}
			ratios = append(ratios, fmt.Sprintf("%.2f×", ratio))
		}
		if len(ratios) > 1 {
			fmt.Fprintf(&b, "\n%s, run by run (fan-out against the slowest alone copy of the same round): %s; %d of %d within 1.2×.\n",
				sizeText(size), strings.Join(ratios, ", "), met, len(ratios))
		}
	}
	return b.String()
}

// roleColumns is the median CPU of each role (moto_server, function
// bootstraps, bench process: the processes' roles in cpu.go) in cpu's
// figures of ms, as three table cells.
func roleColumns(ms []measure, cpu func(measure) map[string]time.Duration) string {
	var cells []string
	for _, prefix := range []string{"moto_server", "function bootstraps", "bench process"} {
		cells = append(cells, dur(median(ms, func(m measure) time.Duration {
			var d time.Duration
			for k, v := range cpu(m) {
				if strings.HasPrefix(k, prefix) {
					d += v
				}
			}
			return d
		})))
	}
	return strings.Join(cells, " | ")
}
