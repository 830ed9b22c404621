package rie

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// startTimeout bounds how long an emulator may take to listen.
const startTimeout = 20 * time.Second

// instance is one aws-lambda-rie process (and the bootstrap it runs).
type instance struct {
	fn *Function
	n  int

	mu     sync.Mutex
	cmd    *exec.Cmd
	addr   string
	exited chan struct{}
}

// start starts the emulator, again on other ports when it exits before
// listening: the free ports it was given can be taken by another process
// between the check and its bind (several stacks start side by side in
// the tests).
func (in *instance) start(ctx context.Context) error {
	var err error
	for range startAttempts {
		if err = in.startOnce(ctx); !errors.Is(err, errExitedEarly) {
			return err
		}
	}
	return err
}

// startAttempts bounds start's tries.
const startAttempts = 3

// errExitedEarly is startOnce's error when the emulator exits before it listens.
var errExitedEarly = errors.New("emulator exited before listening")

func (in *instance) startOnce(ctx context.Context) error {
	cfg := in.fn.cfg
	apiPort, err := freePort()
	if err != nil {
		return err
	}
	runtimePort, err := freePort()
	if err != nil {
		return err
	}
	addr := "127.0.0.1:" + itoa(apiPort)
	cmd := exec.Command(cfg.RIE, "--log-level", "error",
		"--runtime-interface-emulator-address", addr,
		"--runtime-api-address", "127.0.0.1:"+itoa(runtimePort),
		cfg.Bootstrap)
	cmd.Dir = cfg.Dir
	if cmd.Dir == "" {
		cmd.Dir = filepath.Dir(cfg.Bootstrap)
	}
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "TZ=UTC",
		"AWS_LAMBDA_FUNCTION_NAME=" + cfg.Name,
		"AWS_LAMBDA_FUNCTION_TIMEOUT=" + itoa(int((cfg.Timeout+time.Second-1)/time.Second)),
	}
	if cfg.MemoryMB > 0 {
		env = append(env, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE="+itoa(cfg.MemoryMB))
	}
	cmd.Env = append(env, cfg.Env...)
	label := cfg.Name
	if cfg.Instances > 1 {
		label = fmt.Sprintf("%s#%d", cfg.Name, in.n)
	}
	gate := &startupWriter{w: cfg.Output}
	out := &prefixWriter{w: gate, prefix: "[" + label + "] "}
	cmd.Stdout, cmd.Stderr = out, out
	// Own process group (stopped as a group); killed if this process dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("rie %s: start: %w", cfg.Name, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); out.Flush(); close(exited) }()
	in.mu.Lock()
	in.cmd, in.addr, in.exited = cmd, addr, exited
	in.mu.Unlock()

	deadline := time.Now().Add(startTimeout)
	for {
		c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
		if err == nil {
			c.Close()
			gate.release()
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("rie %s: %w on %s: %s", cfg.Name, errExitedEarly, addr, gate.said())
		case <-ctx.Done():
			in.stop()
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			in.stop()
			return fmt.Errorf("rie %s: emulator not listening on %s after %s: %s", cfg.Name, addr, startTimeout, gate.said())
		}
	}
}

func (in *instance) alive() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.exited == nil {
		return false
	}
	select {
	case <-in.exited:
		return false
	default:
		return true
	}
}

func (in *instance) restart(ctx context.Context) error {
	in.stop()
	return in.start(ctx)
}

func (in *instance) invoke(ctx context.Context, payload []byte) (Response, error) {
	in.mu.Lock()
	addr := in.addr
	in.mu.Unlock()
	// The emulator enforces the function timeout itself; this bound only
	// catches an emulator that hangs.
	ctx, cancel := context.WithTimeout(ctx, in.fn.cfg.Timeout+30*time.Second)
	defer cancel()
	status, body, err := post(ctx, addr, payload)
	if err != nil {
		return Response{}, fmt.Errorf("rie %s: invoke: %w", in.fn.cfg.Name, err)
	}
	resp, err := invokeResult(status, body)
	if err != nil {
		return Response{}, fmt.Errorf("rie %s: %w", in.fn.cfg.Name, err)
	}
	return resp, nil
}

// stop ends the instance's process group: SIGTERM, then SIGKILL after 3 s.
func (in *instance) stop() {
	in.mu.Lock()
	cmd, exited := in.cmd, in.exited
	in.cmd, in.exited = nil, nil
	in.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	pgid := cmd.Process.Pid
	syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(3 * time.Second):
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-exited
	}
	// The bootstrap may linger in the group after the emulator exits.
	syscall.Kill(-pgid, syscall.SIGKILL)
}

// prefixWriter writes whole lines to w, each starting with prefix.
type prefixWriter struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		if line := p.buf[:i+1]; !isReportLine(line) {
			p.w.Write(append([]byte(p.prefix), line...))
		}
		p.buf = p.buf[i+1:]
	}
	if len(p.buf) > 64<<10 { // a very long line: pass it on in pieces
		p.w.Write(append(append([]byte(p.prefix), p.buf...), '\n'))
		p.buf = nil
	}
	return len(b), nil
}

// Flush writes a trailing partial line.
func (p *prefixWriter) Flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.buf) > 0 {
		p.w.Write(append(append([]byte(p.prefix), p.buf...), '\n'))
		p.buf = nil
	}
}

// isReportLine matches the emulator's START / END / REPORT lines, which say
// nothing a developer needs locally.
func isReportLine(line []byte) bool {
	for _, p := range [][]byte{[]byte("START RequestId: "), []byte("END RequestId: "), []byte("REPORT RequestId: ")} {
		if bytes.HasPrefix(line, p) {
			return true
		}
	}
	return false
}
