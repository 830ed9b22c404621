package breaker

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The helper processes of TestOneTrialAcrossProcesses are this test binary
// run again with these variables set.
const (
	helperEnv     = "BREAKER_TEST_HELPER"
	helperURLEnv  = "BREAKER_TEST_MOTO_URL"
	helperTabEnv  = "BREAKER_TEST_TABLE"
	helperSkewEnv = "BREAKER_TEST_CLOCK_OFFSET"

	helperCallers  = 8 // goroutines per process
	helperAttempts = 3 // Allow calls per goroutine
	helperProcs    = 4
	mpTimeout      = time.Minute
)

// TestOneTrialAcrossProcesses is the breaker's central promise: many
// callers in several OS processes share one DynamoDB item; once the open
// breaker's timeout has passed, exactly one trial is allowed while it is
// half-open, and that trial's success closes it for everyone.
func TestOneTrialAcrossProcesses(t *testing.T) {
	db, url := dynamoClient(t)
	table := newTable(t, db)
	store, err := NewDynamoStore(db, table)
	if err != nil {
		t.Fatal(err)
	}
	clk, log := &clock{}, &changeLog{}
	b, err := New(store, Settings{Name: "gcs", Timeout: mpTimeout, Now: clk.Now, OnStateChange: log.record, Logger: failOnWarn(t)})
	if err != nil {
		t.Fatal(err)
	}
	for range DefaultTripAfter {
		fail(t, b, transient("put"))
	}
	mustState(t, b, StateOpen)
	// The cooldown elapses for everyone: the helpers' clocks run this far
	// ahead, and so does ours.
	skew := mpTimeout + time.Second
	clk.Advance(skew)

	helpers := make([]*helper, helperProcs)
	for i := range helpers {
		helpers[i] = startHelper(t, url, table, skew)
	}
	for _, h := range helpers {
		h.expect(t, "ready")
	}
	for _, h := range helpers { // release every caller at once
		h.send(t, "go")
	}
	var allowed, tooMany, open int
	for _, h := range helpers {
		f := strings.Fields(h.expect(t, "result"))
		a, _ := strconv.Atoi(f[1])
		m, _ := strconv.Atoi(f[2])
		o, _ := strconv.Atoi(f[3])
		if f[4] != "0" {
			t.Errorf("helper %d: %s unexpected errors: %s", h.cmd.Process.Pid, f[4], strings.Join(f[5:], " "))
		}
		allowed, tooMany, open = allowed+a, tooMany+m, open+o
	}
	total := helperProcs * helperCallers * helperAttempts
	t.Logf("%d Allow calls in %d processes: %d allowed, %d ErrTooManyRequests, %d ErrOpenState", total, helperProcs, allowed, tooMany, open)
	if allowed != 1 || tooMany != total-1 {
		t.Fatalf("half-open allowed %d trials (refused %d as too many, %d as open) of %d calls, want exactly 1", allowed, tooMany, open, total)
	}
	if _, err := b.Allow(t.Context()); !errors.Is(err, ErrTooManyRequests) {
		t.Fatalf("Allow here while the trial runs elsewhere = %v, want ErrTooManyRequests", err)
	}

	for _, h := range helpers { // the trial succeeds
		h.send(t, "finish")
	}
	var changes []string
	for _, h := range helpers {
		changes = append(changes, strings.Fields(h.expect(t, "finished"))[1:]...)
		h.wait(t)
	}
	mustState(t, b, StateClosed)
	if done, err := b.Allow(t.Context()); err != nil {
		t.Fatalf("Allow after the trial succeeded: %v", err)
	} else {
		done(nil)
	}
	// Each transition was made, and reported, by exactly one process.
	if len(changes) != 2 || !contains(changes, "open->half-open") || !contains(changes, "half-open->closed") {
		t.Fatalf("transitions reported by the helpers = %v, want one open->half-open and one half-open->closed", changes)
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// helper is one child process and its pipes.
type helper struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
}

func startHelper(t *testing.T, url, table string, skew time.Duration) *helper {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"=1", helperURLEnv+"="+url, helperTabEnv+"="+table,
		helperSkewEnv+"="+skew.String())
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &helper{cmd: cmd, stdin: stdin, lines: make(chan string, 16)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "HELPER "); ok {
				h.lines <- rest
			}
		}
		close(h.lines)
	}()
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return h
}

// expect returns the helper's next line, which must start with word.
func (h *helper) expect(t *testing.T, word string) string {
	t.Helper()
	select {
	case line, ok := <-h.lines:
		if !ok || !strings.HasPrefix(line, word) {
			t.Fatalf("helper %d: got %q (open=%v), want %q", h.cmd.Process.Pid, line, ok, word)
		}
		return line
	case <-time.After(2 * time.Minute):
		t.Fatalf("helper %d: no %q line", h.cmd.Process.Pid, word)
	}
	return ""
}

func (h *helper) send(t *testing.T, line string) {
	t.Helper()
	if _, err := fmt.Fprintln(h.stdin, line); err != nil {
		t.Fatal(err)
	}
}

func (h *helper) wait(t *testing.T) {
	t.Helper()
	h.stdin.Close()
	if err := h.cmd.Wait(); err != nil {
		t.Fatalf("helper %d: %v", h.cmd.Process.Pid, err)
	}
}

// TestHelperProcess is not a test: it is the body of the child processes
// of TestOneTrialAcrossProcesses, and does nothing in a normal run.
func TestHelperProcess(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		return // not a skip: CI counts skips, and there is nothing to skip
	}
	skew, err := time.ParseDuration(os.Getenv(helperSkewEnv))
	if err != nil {
		t.Fatal(err)
	}
	store, err := NewDynamoStore(clientAt(t, os.Getenv(helperURLEnv)), os.Getenv(helperTabEnv))
	if err != nil {
		t.Fatal(err)
	}
	clk, log := &clock{}, &changeLog{}
	clk.Advance(skew)
	b, err := New(store, Settings{Name: "gcs", Timeout: mpTimeout, Now: clk.Now, OnStateChange: log.record, Logger: failOnWarn(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Load(t.Context(), "gcs"); err != nil { // warm the connection
		t.Fatal(err)
	}
	in := bufio.NewScanner(os.Stdin)
	fmt.Println("HELPER ready")
	if !in.Scan() || in.Text() != "go" {
		t.Fatalf("expected go, got %q", in.Text())
	}

	var (
		start                    = make(chan struct{})
		wg                       sync.WaitGroup
		allowed, tooMany, opened atomic.Int64
		mu                       sync.Mutex
		dones                    []func(error)
		others                   []string
	)
	for range helperCallers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for range helperAttempts {
				done, err := b.Allow(t.Context())
				mu.Lock()
				switch {
				case err == nil:
					allowed.Add(1)
					dones = append(dones, done)
				case errors.Is(err, ErrTooManyRequests):
					tooMany.Add(1)
				case errors.Is(err, ErrOpenState):
					opened.Add(1)
				default:
					others = append(others, strconv.Quote(err.Error()))
				}
				mu.Unlock()
			}
		}()
	}
	close(start)
	wg.Wait()
	fmt.Printf("HELPER result %d %d %d %d %s\n", allowed.Load(), tooMany.Load(), opened.Load(), len(others), strings.Join(others, " "))

	if !in.Scan() || in.Text() != "finish" {
		t.Fatalf("expected finish, got %q", in.Text())
	}
	for _, done := range dones {
		done(nil)
	}
	var changes []string
	for _, c := range log.list() {
		changes = append(changes, strings.TrimPrefix(c, "gcs:"))
	}
	fmt.Println("HELPER finished", strings.Join(changes, " "))
}
