package main

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// progress counts bytes written through it and prints one line on stderr
// at most every interval, and a final line on done.
type progress struct {
	mu       sync.Mutex
	w        io.Writer
	what     string
	total    int64
	n        int64
	last     time.Time
	start    time.Time
	interval time.Duration
}

func newProgress(w io.Writer, what string, total int64) *progress {
	now := time.Now()
	return &progress{w: w, what: what, total: total, start: now, last: now, interval: time.Second}
}

// Write counts p.
func (p *progress) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n += int64(len(b))
	if now := time.Now(); now.Sub(p.last) >= p.interval {
		p.last = now
		p.line("")
	}
	return len(b), nil
}

// done prints the final line with how it ended.
func (p *progress) done(result string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.line(result)
}

func (p *progress) line(result string) {
	pct := ""
	if p.total > 0 {
		pct = fmt.Sprintf(" (%.0f%%)", 100*float64(p.n)/float64(p.total))
	}
	secs := time.Since(p.start).Seconds()
	rate := ""
	if secs > 0 {
		rate = fmt.Sprintf(", %.1f MiB/s", float64(p.n)/(1<<20)/secs)
	}
	if result != "" {
		result = ": " + result
	}
	fmt.Fprintf(p.w, "restore: %s %s / %s%s%s%s\n", p.what, mib(p.n), mib(p.total), pct, rate, result)
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
