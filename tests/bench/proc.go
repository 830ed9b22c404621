package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// job is one measured child process.
type job struct {
	argv    []string
	env     []string // the whole environment of the child
	stdin   []byte
	timeout time.Duration
}

// measured is what one child process cost, from the kernel's accounting of
// it (wait4's rusage): user+system CPU and peak resident set, which include
// the child's own children that it waited for.
type measured struct {
	wall    time.Duration
	cpu     time.Duration
	peakRSS int64 // bytes
	stdout  []byte
}

// run starts j in its own process group, waits for it and reads its rusage.
// The group is killed when ctx ends or j.timeout passes.
func (j job) run(ctx context.Context) (measured, error) {
	ctx, cancel := context.WithTimeout(ctx, j.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, j.argv[0], j.argv[1:]...)
	cmd.Env = j.env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	errOut := &tail{}
	cmd.Stdout, cmd.Stderr = &out, errOut
	if j.stdin != nil {
		cmd.Stdin = bytes.NewReader(j.stdin)
	}
	start := time.Now()
	err := cmd.Run()
	m := measured{wall: time.Since(start), stdout: out.Bytes()}
	if cmd.ProcessState == nil {
		return m, fmt.Errorf("%s: %w", j.argv[0], err)
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		m.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		m.peakRSS = ru.Maxrss << 10 // KiB on Linux
	}
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		return m, fmt.Errorf("%s: %w: %s", j.argv[0], err, errOut.String())
	}
	return m, nil
}

// server is a long-running child (an emulator or a sink) in its own process
// group.
type server struct {
	name   string
	url    string
	cmd    *exec.Cmd
	log    *tail
	exited chan struct{}
	once   sync.Once
}

// startServer runs argv with env and waits until it is ready: when url is
// empty, until it prints "READY <url>" on stdout; otherwise until
// url+probe answers HTTP (any status).
func startServer(ctx context.Context, name string, argv, env []string, url, probe string) (*server, error) {
	s := &server{name: name, url: url, log: &tail{}, exited: make(chan struct{})}
	s.cmd = exec.Command(argv[0], argv[1:]...)
	s.cmd.Env = env
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	s.cmd.Stderr = s.log
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "READY "); ok {
				ready <- u
			} else {
				s.log.Write([]byte(sc.Text() + "\n"))
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	go func() { s.cmd.Wait(); close(s.exited) }()
	if err := s.waitReady(ctx, ready, probe); err != nil {
		s.stop()
		return nil, fmt.Errorf("%s: %w: %s", name, err, s.log.String())
	}
	return s, nil
}

func (s *server) waitReady(ctx context.Context, ready <-chan string, probe string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		if s.url != "" {
			if res, err := client.Get(s.url + probe); err == nil {
				res.Body.Close()
				return nil
			}
		}
		select {
		case u := <-ready:
			s.url = u
			return nil
		case <-s.exited:
			return errors.New("exited before it was ready")
		case <-ctx.Done():
			return fmt.Errorf("not ready: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// cpu is the CPU time the server has used so far (user+system, from
// /proc/<pid>/stat), or 0 when it cannot be read.
func (s *server) cpu() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses: utime and
	// stime are the 12th and 13th of them, in clock ticks (100 Hz on Linux).
	_, rest, ok := strings.Cut(string(b), ") ")
	f := strings.Fields(rest)
	if !ok || len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// stop ends the server's process group (TERM, then KILL after 5 s) and
// returns its peak resident set in bytes, as the kernel counted it.
func (s *server) stop() int64 {
	s.once.Do(func() {
		pid := s.cmd.Process.Pid
		syscall.Kill(-pid, syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(5 * time.Second):
			syscall.Kill(-pid, syscall.SIGKILL)
			<-s.exited
		}
	})
	if ru, ok := s.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		return ru.Maxrss << 10
	}
	return 0
}

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tail keeps the last few KiB written to it, for error messages.
type tail struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 8<<10 {
		t.buf = append([]byte(nil), t.buf[len(t.buf)-4<<10:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := strings.TrimSpace(string(t.buf))
	if len(s) > 1500 {
		s = "…" + s[len(s)-1500:]
	}
	return s
}

// childEnv is the parent's environment without the variables that would
// change a tool's behaviour (AWS_CA_BUNDLE makes rclone 1.60 refuse S3;
// credentials and tool configuration come only from what the bench sets),
// plus extra.
func childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "AWS_") || strings.HasPrefix(k, "RCLONE_") ||
			k == "STORAGE_EMULATOR_HOST" || k == "CURL_HOME" || k == "GOGC" || k == "GOMEMLIMIT" {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}
