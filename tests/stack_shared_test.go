package tests

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/wedsync/backup-replication/infra/local/stack"
	"github.com/wedsync/backup-replication/shared/keys"
)

// sharedMaxReceives is the queues' maxReceiveCount in the shared stack (the
// template's DlqMaxReceives, 8 when deployed): low enough that a message
// failing every time reaches its dead-letter queue within minutes (the
// replicate function hides a failed message 30 s, then 60 s, …).
const sharedMaxReceives = 3

// sharedEnv is the local stack the end-to-end tests share: starting one
// builds every bootstrap and takes a minute or more on a busy 2-core box,
// so it starts once, on first use, and TestMain stops it after the last
// test. Each test works in an organization of its own.
type sharedEnv struct {
	*stack.Stack
	// Log holds every line the functions and the stack wrote (also in
	// tests/artifacts/shared-stack.log).
	Log *logTap
	S3  *s3.Client
	SQS *sqs.Client
	// Read reads a copy straight from its emulator, by provider name (and
	// "landing"); Open streams it.
	Read map[string]copyReader
	Open map[string]copyOpener
	// Keys unwraps backups' data keys (the keys table and KMS), to decrypt
	// copies as an operator's restore would.
	Keys *keys.Store
	// deadLetters is the dead-letter scenario, started with the stack.
	deadLetters *deadLetterRun
}

var (
	sharedOnce sync.Once
	sharedVal  *sharedEnv
	sharedErr  error
)

// TestMain stops the shared stack, if a test started it, once every test
// has run.
func TestMain(m *testing.M) {
	code := m.Run()
	if sharedVal != nil {
		sharedVal.Close()
		sharedVal.Log.Close()
	}
	os.Exit(code)
}

// e2eFunctions are the functions an end-to-end run needs.
var e2eFunctions = []string{"ApiFunction", "SealFunction", "ReplicateSupabaseFunction", "ReplicateS3Function", "ReplicateGcsFunction"}

// sharedStack returns the shared local stack, starting it on first use.
// It skips the test while a function the pipeline needs does not exist,
// and fails or skips (REQUIRE_EMULATORS) when a tool is missing.
func sharedStack(t *testing.T) *sharedEnv {
	t.Helper()
	for _, id := range e2eFunctions {
		if dir, ok := functionDir(t, id); !ok {
			t.Skipf("functions/%s does not exist yet; the end-to-end run needs %v", dir, e2eFunctions)
		}
	}
	requireStackTools(t)
	root := repoRoot(t)
	sharedOnce.Do(func() {
		var tap *logTap
		if tap, sharedErr = newLogTap(filepath.Join(root, "tests", "artifacts", "shared-stack.log")); sharedErr != nil {
			return
		}
		start := time.Now()
		s, err := launchStack(root, stack.Options{
			ScheduleInterval: -1, // health runs only when a test invokes it
			Parameters:       map[string]any{"DlqMaxReceives": fmt.Sprint(sharedMaxReceives)},
			FunctionEnv: map[string]map[string]string{
				// Backups above 16 MiB upload in 8 MiB parts, so that the
				// multipart path is exercised without gigabytes.
				"ApiFunction":    {"API_MULTIPART_THRESHOLD": "16MiB", "API_PART_SIZE": "8MiB"},
				"HealthFunction": {"HEALTH_SINGLE_ROUND": "true"},
			},
			Output: tap,
		})
		if err != nil {
			tap.Close()
			sharedErr = err
			return
		}
		fmt.Fprintf(os.Stderr, "shared local stack started in %s (log: tests/artifacts/shared-stack.log)\n", time.Since(start).Round(time.Second))
		ks, err := sealKeys(s)
		if err != nil {
			s.Close()
			tap.Close()
			sharedErr = err
			return
		}
		open := copyOpeners(s)
		sharedVal = &sharedEnv{
			Stack: s, Log: tap,
			S3:   s3.NewFromConfig(s.AWS, func(o *s3.Options) { o.UsePathStyle = true }),
			SQS:  sqs.NewFromConfig(s.AWS),
			Read: copyReaders(open),
			Open: open,
			Keys: ks,
		}
		sharedVal.deadLetters = startDeadLetters(sharedVal)
	})
	if sharedErr != nil {
		t.Fatalf("start the shared local stack: %v", sharedErr)
	}
	return sharedVal
}

// queueURL is the URL of a queue of the template, by logical id.
func (e *sharedEnv) queueURL(id string) string { return e.Template.Ref(id) }

// providerQueues are the replication queues and their dead-letter queues by
// provider name.
var providerQueues = map[string][2]string{
	"supabase": {"ReplicateSupabaseQueue", "ReplicateSupabaseDLQ"},
	"s3":       {"ReplicateS3Queue", "ReplicateS3DLQ"},
	"gcs":      {"ReplicateGcsQueue", "ReplicateGcsDLQ"},
}

var crashPattern = regexp.MustCompile(`(?i)\bpanic\b|"function_error"|runtime error`)

// requireNoCrash fails the test if any function panicked or crashed so far
// (a panic's trace, or a function error reported to the event source).
func (e *sharedEnv) requireNoCrash(t *testing.T) {
	t.Helper()
	for _, l := range e.Log.Find(crashPattern.MatchString) {
		t.Errorf("a function crashed: %s", truncate([]byte(l), 600))
	}
}

// logTap is an io.Writer that keeps every line written to it, and copies
// it to a file, so that tests can wait for and search the functions' logs.
type logTap struct {
	mu      sync.Mutex
	f       *os.File
	partial []byte
	lines   []string
	changed chan struct{} // closed at every new line
}

func newLogTap(path string) (*logTap, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	return &logTap{f: f, changed: make(chan struct{})}, nil
}

// Write implements io.Writer.
func (l *logTap) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.f.Write(p)
	l.partial = append(l.partial, p...)
	added := false
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.lines = append(l.lines, string(l.partial[:i]))
		l.partial = l.partial[i+1:]
		added = true
	}
	if added {
		close(l.changed)
		l.changed = make(chan struct{})
	}
	return len(p), nil
}

// Close closes the file.
func (l *logTap) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Close()
}

// Find returns every line so far that match accepts.
func (l *logTap) Find(match func(string) bool) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, s := range l.lines {
		if match(s) {
			out = append(out, s)
		}
	}
	return out
}

// WaitFor waits until n lines accepted by match have been written, and
// returns them.
func (l *logTap) WaitFor(ctx context.Context, n int, match func(string) bool) ([]string, error) {
	for {
		l.mu.Lock()
		changed := l.changed
		l.mu.Unlock()
		got := l.Find(match)
		if len(got) >= n {
			return got, nil
		}
		select {
		case <-ctx.Done():
			return got, fmt.Errorf("%d of %d log lines: %w", len(got), n, ctx.Err())
		case <-changed:
		}
	}
}

// replicateLine matches the line a replicate function writes when it is
// done with one record of backupID (whatever became of it), from the
// function of provider.
func replicateLine(provider, backupID string) func(string) bool {
	prefix := "[Replicate" + map[string]string{"supabase": "Supabase", "s3": "S3", "gcs": "Gcs"}[provider] + "Function"
	return func(l string) bool {
		return strings.HasPrefix(l, prefix) && strings.Contains(l, `"op":"replicate"`) &&
			strings.Contains(l, `"backup_id":"`+backupID+`"`) && strings.Contains(l, `"outcome":`)
	}
}
