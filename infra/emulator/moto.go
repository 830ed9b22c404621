package emulator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// MotoURLEnv names an already running moto server to use instead of
// starting one (for example "http://127.0.0.1:5000").
const MotoURLEnv = "MOTO_URL"

// MotoRegion, MotoAccessKeyID and MotoSecretAccessKey are what AWSConfig
// gives clients. moto accepts any credentials unless told otherwise.
const (
	MotoRegion          = "us-east-1"
	MotoAccessKeyID     = "test"
	MotoSecretAccessKey = "test"
)

// motoStartTimeout bounds how long StartMoto waits for the server to answer.
const motoStartTimeout = 30 * time.Second

// Moto is a moto_server (AWS service emulator) listening on loopback.
type Moto struct {
	// URL is the server's base URL, e.g. "http://127.0.0.1:40123".
	URL string

	cmd    *exec.Cmd
	stderr *motoLog
	once   sync.Once
	exited chan struct{}
}

// StartMoto starts `moto_server -H 127.0.0.1 -p <free port>` in its own
// process group and returns once it answers HTTP. When MOTO_URL is set it
// uses that server instead, after checking that it answers, and Close leaves
// it running. ctx bounds the start only, not the server's life.
func StartMoto(ctx context.Context) (*Moto, error) {
	if u := os.Getenv(MotoURLEnv); u != "" {
		m := &Moto{URL: strings.TrimRight(u, "/")}
		if err := motoWait(ctx, m.URL, nil); err != nil {
			return nil, fmt.Errorf("moto at %s=%s: %w", MotoURLEnv, u, err)
		}
		return m, nil
	}
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		return nil, fmt.Errorf("moto_server not installed (pip install 'moto[server]'): %w", err)
	}
	port, err := motoFreePort()
	if err != nil {
		return nil, err
	}
	m := &Moto{URL: fmt.Sprintf("http://127.0.0.1:%d", port), stderr: &motoLog{}, exited: make(chan struct{})}
	m.cmd = exec.Command(bin, "-H", "127.0.0.1", "-p", fmt.Sprint(port))
	m.cmd.Stdout = m.stderr
	m.cmd.Stderr = m.stderr
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := m.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start moto_server: %w", err)
	}
	go func() { m.cmd.Wait(); close(m.exited) }()
	if err := motoWait(ctx, m.URL, m.exited); err != nil {
		m.Close()
		return nil, fmt.Errorf("moto_server on port %d: %w (output: %s)", port, err, m.stderr.tail())
	}
	return m, nil
}

// Close stops the server and its children. It does nothing for a server
// given by MOTO_URL, and is safe to call more than once.
func (m *Moto) Close() error {
	if m == nil || m.cmd == nil {
		return nil
	}
	m.once.Do(func() {
		pgid := m.cmd.Process.Pid
		syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-m.exited:
		case <-time.After(5 * time.Second):
			syscall.Kill(-pgid, syscall.SIGKILL)
			<-m.exited
		}
	})
	return nil
}

// AWSConfig returns a configuration that points any aws-sdk-go-v2 client at
// this server: static credentials "test"/"test", region us-east-1 and the
// server as BaseEndpoint. It reads nothing from the environment. S3 clients
// also need UsePathStyle.
func (m *Moto) AWSConfig(ctx context.Context) (aws.Config, error) {
	return aws.Config{
		Region:       MotoRegion,
		Credentials:  credentials.NewStaticCredentialsProvider(MotoAccessKeyID, MotoSecretAccessKey, ""),
		BaseEndpoint: aws.String(m.URL),
	}, nil
}

// Reset clears every resource in the server (POST /moto-api/reset).
func (m *Moto) Reset(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.URL+"/moto-api/reset", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("moto reset: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("moto reset: HTTP %d", resp.StatusCode)
	}
	return nil
}

// motoWait polls url until it answers HTTP, the process exits, ctx ends, or
// motoStartTimeout passes.
func motoWait(ctx context.Context, url string, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, motoStartTimeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/moto-api/", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case <-exited:
			return errors.New("moto_server exited before answering")
		case <-ctx.Done():
			return fmt.Errorf("no answer: %w (last error: %v)", ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// motoFreePort asks the kernel for a free loopback port.
func motoFreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// motoLog keeps the last few KiB of the server's output for error messages.
type motoLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *motoLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	if l.buf.Len() > 64<<10 {
		b := l.buf.Bytes()[l.buf.Len()-8<<10:]
		l.buf = *bytes.NewBuffer(append([]byte(nil), b...))
	}
	return len(p), nil
}

func (l *motoLog) tail() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buf.Bytes()
	if len(b) > 2048 {
		b = b[len(b)-2048:]
	}
	return strings.TrimSpace(string(b))
}
