package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// CPU accounting of this process and everything it started (moto_server,
// aws-lambda-rie and the bootstraps), from /proc, so that the report can
// say whether a copy was waiting for the pipeline or for the machine.

// clockTick is the kernel's USER_HZ (100 on Linux).
const clockTick = 10 * time.Millisecond

// cpuSample is the CPU time used so far by each process of the tree, by
// pid, with what the process is.
type cpuSample map[int]procCPU

type procCPU struct {
	role string
	used time.Duration
}

// sampleCPU reads /proc for this process and its descendants; on systems
// without /proc it returns an empty sample.
func sampleCPU() cpuSample {
	type stat struct {
		ppid int
		used time.Duration
	}
	all := map[int]stat{}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(d, "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid … utime(14) stime(15): comm may hold spaces.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 13 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		all[pid] = stat{ppid: ppid, used: time.Duration(ut+st) * clockTick}
	}
	self := os.Getpid()
	out := cpuSample{}
	var walk func(pid int)
	walk = func(pid int) {
		st, ok := all[pid]
		if !ok {
			return
		}
		out[pid] = procCPU{role: roleOf(pid, self), used: st.used}
		for child, c := range all {
			if c.ppid == pid {
				walk(child)
			}
		}
	}
	walk(self)
	return out
}

// roleOf names what a process of the tree is.
func roleOf(pid, self int) string {
	if pid == self {
		return "bench process (fake-gcs-server, Supabase emulator, HTTP API, pollers, client)"
	}
	cmd, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	c := strings.ReplaceAll(string(cmd), "\x00", " ")
	switch {
	case strings.Contains(c, "moto_server"):
		return "moto_server (S3, SQS, EventBridge, DynamoDB)"
	case strings.Contains(c, "aws-lambda-rie"):
		return "aws-lambda-rie"
	case strings.Contains(c, "bootstrap"):
		return "function bootstraps"
	}
	return "other"
}

// since returns the CPU time used between before and s, by role.
func (s cpuSample) since(before cpuSample) map[string]time.Duration {
	out := map[string]time.Duration{}
	for pid, p := range s {
		out[p.role] += p.used - before[pid].used
	}
	return out
}

func total(m map[string]time.Duration) time.Duration {
	var t time.Duration
	for _, d := range m {
		t += d
	}
	return t
}
