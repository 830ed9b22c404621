package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
)

// What the functions' own logs say about one backup: how many deliveries
// of its events each function handled, what became of each, and how many
// transfers ran, so that the report can tell a copy that ran once from one
// that restarted or was repeated by a duplicate delivery.

// runLog is one function's handling of one backup, from its log lines.
type runLog struct {
	// Outcomes are the outcomes of the deliveries handled, in log order
	// (the "outcome" of the op=seal / op=replicate lines).
	Outcomes []string
	// Transfers are the durations of the transfers that ran (the
	// "transfer" lines: put, copy or put_resumable).
	Transfers []time.Duration
}

// logLine is the part of a function's JSON log line read here.
type logLine struct {
	Time       time.Time `json:"time"`
	Msg        string    `json:"msg"`
	Op         string    `json:"op"`
	BackupID   string    `json:"backup_id"`
	Outcome    string    `json:"outcome"`
	DurationMS int64     `json:"duration_ms"`
}

// readRunLogs reads the stack's log file for the given backups and returns,
// by backup id, each function's runLog ("seal", or the provider's name).
func readRunLogs(path string, backups []string) (map[string]map[string]*runLog, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]map[string]*runLog{}
	for _, id := range backups {
		out[id] = map[string]*runLog{}
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		who := functionName(line)
		if who == "" {
			continue
		}
		i := strings.IndexByte(line, '{')
		if i < 0 {
			continue
		}
		var l logLine
		if json.Unmarshal([]byte(line[i:]), &l) != nil {
			continue
		}
		byFn, ok := out[l.BackupID]
		if !ok {
			continue
		}
		rl := byFn[who]
		if rl == nil {
			rl = &runLog{}
			byFn[who] = rl
		}
		switch {
		case l.Msg == "transfer":
			rl.Transfers = append(rl.Transfers, time.Duration(l.DurationMS)*time.Millisecond)
		case (l.Op == "seal" || l.Op == "replicate") && l.Outcome != "":
			rl.Outcomes = append(rl.Outcomes, l.Outcome)
		}
	}
	return out, sc.Err()
}

// functionName is "seal" or the provider of a "[LogicalId#n] …" line of
// the seal or a replicate function, "" for any other line.
func functionName(line string) string {
	if !strings.HasPrefix(line, "[") {
		return ""
	}
	id, _, ok := strings.Cut(line[1:], "#")
	if !ok {
		return ""
	}
	if id == "SealFunction" {
		return "seal"
	}
	for p, fn := range functionOf {
		if fn == id {
			return p
		}
	}
	return ""
}

// summary says in a few words what rl shows: deliveries, their outcomes
// (counted) and the transfers with their durations.
func (rl *runLog) summary() string {
	if rl == nil {
		return "no log lines"
	}
	counts := map[string]int{}
	for _, o := range rl.Outcomes {
		counts[shortOutcome(o)]++
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d× %s", counts[k], k)
	}
	ts := make([]string, len(rl.Transfers))
	for i, d := range rl.Transfers {
		ts[i] = dur(d)
	}
	noun := "deliveries"
	if len(rl.Outcomes) == 1 {
		noun = "delivery"
	}
	s := fmt.Sprintf("%d %s (%s)", len(rl.Outcomes), noun, strings.Join(parts, ", "))
	if len(rl.Transfers) > 0 {
		s += fmt.Sprintf(", %d transfer(s): %s", len(rl.Transfers), strings.Join(ts, " + "))
	}
	return s
}

// shortOutcome trims an outcome to its first clause ("verified by
// sha256-readback after put" stays; "another delivery is copying; waiting
// for it" becomes "another delivery is copying").
func shortOutcome(o string) string {
	o, _, _ = strings.Cut(o, ";")
	return o
}
