// Package rie runs a Lambda bootstrap binary under aws-lambda-rie (the
// Runtime Interface Emulator) on loopback, as `sam local` does inside a
// container, and invokes it over the emulator's HTTP invoke endpoint.
//
// One emulator process serves one invocation at a time (a second concurrent
// invoke crashes it), so a Function keeps a pool of instances, hands each
// invocation to a free one, and restarts an instance whose process died.
package rie

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// invokePath is the emulator's invoke endpoint.
const invokePath = "/2015-03-31/functions/function/invocations"

// Config describes one function to run.
type Config struct {
	// Name labels log lines and errors (the template's logical id).
	Name string
	// Bootstrap is the path of the binary to run (built for this machine).
	Bootstrap string
	// RIE is the aws-lambda-rie binary; default: found by FindRIE.
	RIE string
	// Env is the function's environment (KEY=VALUE). The process gets
	// nothing else from the caller's environment except PATH and HOME.
	Env []string
	// Timeout is the function timeout (AWS_LAMBDA_FUNCTION_TIMEOUT).
	Timeout time.Duration
	// MemoryMB is reported as AWS_LAMBDA_FUNCTION_MEMORY_SIZE.
	MemoryMB int
	// Instances is how many invocations can run at once (default 1).
	Instances int
	// Output receives the emulator's and the function's stdout and stderr
	// (default os.Stderr).
	Output io.Writer
	// Dir is the working directory (default: the bootstrap's directory).
	Dir string
}

// Function is a pool of emulator instances running one bootstrap.
type Function struct {
	cfg  Config
	free chan *instance
	all  []*instance
}

// Response is what an invocation returned.
type Response struct {
	// Payload is the function's result, or the error document
	// ({"errorMessage","errorType"}) when FunctionError is set.
	Payload []byte
	// FunctionError is set when the handler returned an error or the
	// runtime failed (a panic, an exit): "Handled" or "Unhandled".
	FunctionError string
}

// Start launches cfg.Instances emulator processes and waits until each
// listens. Close stops them.
func Start(ctx context.Context, cfg Config) (*Function, error) {
	if cfg.Instances <= 0 {
		cfg.Instances = 1
	}
	if cfg.Output == nil {
		cfg.Output = os.Stderr
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.RIE == "" {
		p, err := FindRIE()
		if err != nil {
			return nil, err
		}
		cfg.RIE = p
	}
	abs, err := filepath.Abs(cfg.Bootstrap)
	if err != nil {
		return nil, fmt.Errorf("rie %s: bootstrap: %w", cfg.Name, err)
	}
	cfg.Bootstrap = abs
	if _, err := os.Stat(cfg.Bootstrap); err != nil {
		return nil, fmt.Errorf("rie %s: bootstrap: %w", cfg.Name, err)
	}
	f := &Function{cfg: cfg, free: make(chan *instance, cfg.Instances)}
	for i := 0; i < cfg.Instances; i++ {
		in := &instance{fn: f, n: i}
		if err := in.start(ctx); err != nil {
			f.Close()
			return nil, err
		}
		f.all = append(f.all, in)
		f.free <- in
	}
	return f, nil
}

// Name is the function's label.
func (f *Function) Name() string { return f.cfg.Name }

// Invoke sends payload to a free instance and returns the function's
// answer. A returned error means the emulator could not deliver the
// invocation or answer (the instance is restarted for the next call); a
// function's own failure is Response.FunctionError, not an error.
func (f *Function) Invoke(ctx context.Context, payload []byte) (Response, error) {
	var in *instance
	select {
	case in = <-f.free:
	case <-ctx.Done():
		return Response{}, ctx.Err()
	}
	defer func() { f.free <- in }()
	if !in.alive() {
		if err := in.restart(ctx); err != nil {
			return Response{}, err
		}
	}
	resp, err := in.invoke(ctx, payload)
	if err != nil && !in.alive() {
		// The emulator died under this invocation; bring it back for the next.
		in.restart(context.WithoutCancel(ctx))
	}
	return resp, err
}

// Close stops every instance (emulator and function, by process group).
func (f *Function) Close() error {
	for _, in := range f.all {
		in.stop()
	}
	return nil
}

// FindRIE finds aws-lambda-rie on PATH or in `go env GOPATH`/bin, where
// `make tools` installs it.
func FindRIE() (string, error) {
	if p, err := exec.LookPath("aws-lambda-rie"); err == nil {
		return p, nil
	}
	var candidates []string
	if gb := os.Getenv("GOBIN"); gb != "" {
		candidates = append(candidates, gb)
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		for _, p := range strings.Split(strings.TrimSpace(string(out)), string(os.PathListSeparator)) {
			candidates = append(candidates, p+"/bin")
		}
	}
	if home, err := os.UserHomeDir(); err == nil {
		candidates = append(candidates, home+"/go/bin")
	}
	for _, dir := range candidates {
		p := dir + "/aws-lambda-rie"
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", errors.New("aws-lambda-rie not found (install it with `make tools`, or: go install github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@v0.0.0-20261030222936-bef5c4ba774d)")
}

// invokeResult parses the emulator's answer.
func invokeResult(status int, body []byte) (Response, error) {
	r := Response{Payload: body}
	switch {
	case status == http.StatusOK:
		if isErrorDoc(body) {
			r.FunctionError = "Handled"
		}
		return r, nil
	case status == http.StatusBadGateway:
		// The runtime failed (panic, exit, init error); the body is its error document.
		r.FunctionError = "Unhandled"
		if len(body) == 0 {
			r.Payload = []byte(`{"errorMessage":"runtime exited without a response","errorType":"Runtime.ExitError"}`)
		}
		return r, nil
	default:
		return Response{}, fmt.Errorf("emulator answered HTTP %d: %s", status, truncate(body, 300))
	}
}

// isErrorDoc reports whether body is exactly a Lambda error document.
func isErrorDoc(body []byte) bool {
	var doc map[string]json.RawMessage
	if json.Unmarshal(body, &doc) != nil {
		return false
	}
	_, msg := doc["errorMessage"]
	_, typ := doc["errorType"]
	if !msg || !typ {
		return false
	}
	for k := range doc {
		if k != "errorMessage" && k != "errorType" && k != "stackTrace" {
			return false
		}
	}
	return true
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
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

// post sends one invocation to an emulator.
func post(ctx context.Context, addr string, payload []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+invokePath, bytes.NewReader(payload))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

func itoa(i int) string { return strconv.Itoa(i) }
