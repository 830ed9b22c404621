package main

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// rowStats are a row's medians over the runs that succeeded.
type rowStats struct {
	row
	ok         int
	errs       []string
	mbps, cpu  float64
	rss        float64 // MiB
	serverCPU  float64
	serverPeak float64 // MiB, 0 when unknown
	opSec      float64 // our children: seconds of the operation itself (no process start, no client set-up)
	baseRSS    float64 // our children: MiB resident before the first byte
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// summarize turns each row's results into medians.
func summarize(rows []row, results [][]result, errs [][]error, size int64) []rowStats {
	out := make([]rowStats, len(rows))
	for i, r := range rows {
		st := rowStats{row: r}
		var mbps, cpu, rss, scpu, speak, op, base []float64
		for j, res := range results[i] {
			if errs[i][j] != nil {
				st.errs = append(st.errs, errs[i][j].Error())
				continue
			}
			st.ok++
			mbps = append(mbps, float64(size)/1e6/res.m.wall.Seconds())
			cpu = append(cpu, res.m.cpu.Seconds())
			rss = append(rss, mib(res.m.peakRSS))
			scpu = append(scpu, res.serverCPU.Seconds())
			speak = append(speak, mib(res.serverPeak))
			if res.child != nil {
				op, base = append(op, res.child.Seconds), append(base, mib(res.child.BaselineRSS))
			}
		}
		st.opSec, st.baseRSS = median(op), median(base)
		st.mbps, st.cpu, st.rss, st.serverCPU, st.serverPeak = median(mbps), median(cpu), median(rss), median(scpu), median(speak)
		out[i] = st
	}
	return out
}

// header describes the run.
type header struct {
	command             string
	runs                int
	size                int64
	started             time.Time
	took                time.Duration
	loadBefore, loadEnd string
	versions            []string
}

// markdown renders the whole report.
func markdown(h header, stats []rowStats, memSizes []int64, cfgs []memConfig, points [][]memPoint) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Command: `%s` — %s, %d run(s), medians; started %s, took %s.\n",
		h.command, sizeName(h.size), h.runs, h.started.UTC().Format("2006-01-02 15:04 UTC"), h.took.Round(time.Second))
	fmt.Fprintf(&b, "Machine: 2 cores shared with other work (load average %s at start, %s at end). %s.\n\n",
		h.loadBefore, h.loadEnd, strings.Join(h.versions, ", "))
	b.WriteString("| pair | tool | mode | MB/s | CPU s | peak RSS MiB | server CPU s | command |\n")
	b.WriteString("|---|---|---|---:|---:|---:|---:|---|\n")
	for _, s := range stats {
		if s.ok == 0 {
			fmt.Fprintf(&b, "| %s | %s | %s | failed | | | | `%s` — %s |\n", s.pair, s.tool, s.mode, s.command, oneLine(s.errs))
			continue
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %.1f | %.2f | %.0f | %.1f | `%s` |\n",
			s.pair, s.tool, s.mode, s.mbps, s.cpu, s.rss, s.serverCPU, s.command)
	}
	b.WriteString("\nMB/s is 10^6 bytes per second of wall time of the whole child process (start to exit), " +
		"CPU s its user+system time and peak RSS its maximum resident set, both from wait4's rusage; " +
		"server CPU s is what the destination server spent meanwhile. \"ours\" is a child of the bench " +
		"running the provider layer (tests/bench/child.go); ceilings upload the same file from disk in one request.\n")
	for _, s := range stats {
		if s.serverPeak > 0 && s.ok > 0 {
			fmt.Fprintf(&b, "- fake-gcs-server peaked at %.1f GiB during %s / %s.\n", s.serverPeak/1024, s.tool, s.mode)
		}
		if s.ok > 0 && len(s.errs) > 0 {
			fmt.Fprintf(&b, "- %s / %s / %s failed %d time(s): %s\n", s.pair, s.tool, s.mode, len(s.errs), oneLine(s.errs))
		}
	}
	b.WriteString(comparisons(stats))
	b.WriteString(sealNotes(h.size, stats))
	if len(cfgs) > 0 {
		b.WriteString(memoryTable(memSizes, cfgs, points))
	}
	return b.String()
}

// comparisons states, for each pair, our figure at rclone's settings
// against rclone's, and our best figure against the destination's
// one-request ceiling.
func comparisons(stats []rowStats) string {
	var b strings.Builder
	pairs := []string{}
	for _, s := range stats {
		if !slices.Contains(pairs, s.pair) {
			pairs = append(pairs, s.pair)
		}
	}
	b.WriteString("\n")
	for _, p := range pairs {
		var ours []*rowStats
		var best, rclone, ceiling *rowStats
		for i := range stats {
			s := &stats[i]
			if s.pair != p || s.ok == 0 {
				continue
			}
			switch s.tool {
			case toolOurs:
				ours = append(ours, s)
				if best == nil || s.mbps > best.mbps {
					best = s
				}
			case toolRclone:
				rclone = s
			case toolCurl:
				ceiling = s
			}
		}
		if best == nil {
			continue
		}
		fmt.Fprintf(&b, "- %s:", p)
		if rclone != nil {
			for _, o := range ours {
				if modeKey(o.mode) == modeKey(rclone.mode) {
					fmt.Fprintf(&b, " at rclone's settings (%s) ours %.1f MB/s, rclone %.1f MB/s (%.0f%%);",
						modeKey(o.mode), o.mbps, rclone.mbps, 100*o.mbps/rclone.mbps)
				}
			}
		}
		fmt.Fprintf(&b, " ours best %.1f MB/s (%s)", best.mbps, best.mode)
		if ceiling != nil {
			fmt.Fprintf(&b, ", %.0f%% of the one-request ceiling (%.1f MB/s)", 100*best.mbps/ceiling.mbps, ceiling.mbps)
		}
		b.WriteString(".\n")
	}
	return b.String()
}

// modeKey is a mode without its parenthesised detail: rows with equal keys
// ran at the same settings.
func modeKey(mode string) string {
	k, _, _ := strings.Cut(mode, " (")
	return k
}

func memoryTable(sizes []int64, cfgs []memConfig, points [][]memPoint) string {
	var b strings.Builder
	b.WriteString("\n#### Memory of one Put, by object size (peak RSS MiB, + above the process's baseline)\n\n")
	b.WriteString("| provider | mode | sink |")
	for _, n := range sizes {
		fmt.Fprintf(&b, " %s |", sizeName(n))
	}
	b.WriteString(" target: ≤ +64 MiB at every size |\n|---|---|---|")
	for range sizes {
		b.WriteString("---:|")
	}
	b.WriteString("---|\n")
	for i, c := range cfgs {
		fmt.Fprintf(&b, "| %s | %s | %s |", c.provider, c.mode, c.sink)
		for _, p := range points[i] {
			if p.err != nil {
				b.WriteString(" failed |")
				continue
			}
			fmt.Fprintf(&b, " %.0f (+%.0f) |", mib(p.peak), mib(p.peak-p.baseline))
		}
		fmt.Fprintf(&b, " %s |\n", verdict(points[i]))
	}
	b.WriteString("\nThe source is the bench's deterministic stream generated in the child (no disk); the baseline is " +
		"the child's VmRSS after building its client, before the first byte; peak is wait4's maxrss.\n")
	for i, c := range cfgs {
		for _, p := range points[i] {
			if p.err != nil {
				fmt.Fprintf(&b, "- %s %s at %s failed: %s\n", c.provider, c.mode, sizeName(p.size), oneLine([]string{p.err.Error()}))
			}
		}
	}
	return b.String()
}

func oneLine(errs []string) string {
	if len(errs) == 0 {
		return ""
	}
	s := strings.Join(strings.Fields(errs[0]), " ")
	s = strings.ReplaceAll(s, "|", "/")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}
