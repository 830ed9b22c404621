// Package stack runs the whole system on one machine, as `sam local` would
// but without Docker: moto_server for AWS (S3 with EventBridge
// notifications, EventBridge rules to SQS with dead-letter queues,
// DynamoDB, Secrets Manager, SNS), fake-gcs-server and the Supabase
// emulator in process, and every function of template.yaml built for this
// machine and run under aws-lambda-rie with the environment the template
// gives it, resolved to the local endpoints. It plays the event sources: the
// HTTP API, one SQS poller per event source mapping, and the schedule.
//
// `make dev` (infra/local) and the end-to-end tests (tests/) start it with
// Start; Close stops everything it started.
package stack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/wedsync/backup-replication/infra/emulator"
	"github.com/wedsync/backup-replication/infra/local/rie"
	"github.com/wedsync/backup-replication/infra/local/samtemplate"
)

// Options configure a local stack. The zero value runs every function
// whose folder exists, on free loopback ports.
type Options struct {
	// Root is the repository root (go.mod, template.yaml, Makefile,
	// functions/); default: found above the working directory.
	Root string
	// StackName names local resources (default "ws191-local").
	StackName string
	// APIAddr is where the HTTP API listens (default "127.0.0.1:0").
	APIAddr string
	// Output receives the functions' logs, one line each, prefixed with the
	// function's logical id (default os.Stderr).
	Output io.Writer
	// Logger receives the stack's own log (default: JSON to Output).
	Logger *slog.Logger
	// Functions limits which functions run (logical ids); default: every
	// function whose folder under functions/ exists.
	Functions []string
	// Instances sets how many invocations of a function can run at once
	// (default: ApiFunction 3, replicate functions 2, others 1).
	Instances map[string]int
	// ScheduleInterval replaces the template's schedule rate (make dev
	// uses 30 s); 0 keeps the template's, negative disables schedules.
	ScheduleInterval time.Duration
	// VisibilityTimeout replaces the queues' VisibilityTimeout when
	// positive (a failed batch comes back sooner than the 90 minutes the
	// deployed queues wait).
	VisibilityTimeout time.Duration
	// PollWait is the SQS long-poll wait of the event source mappings
	// (default 1 s).
	PollWait time.Duration
	// Env is added to every function's environment (after the template's
	// and the local endpoints), e.g. to point a provider at a fault proxy.
	Env map[string]string
	// FunctionEnv is added to one function's environment, by logical id.
	FunctionEnv map[string]map[string]string
	// Parameters override template parameters, after the local values
	// (e.g. DlqMaxReceives, so that tests see a message dead-lettered
	// after fewer receives).
	Parameters map[string]any
	// SupabaseDir keeps the Supabase emulator's objects (default: a
	// temporary directory removed by Close).
	SupabaseDir string
	// WebSocket, when set, plays the WebSocket API (infra/local/wsgateway).
	WebSocket WebSocketGateway
}

// WebSocketGateway is the hook for the WebSocket API gateway. Start is
// called after the AWS resources exist and before any function starts; it
// returns the URL clients connect to and the management endpoint
// (https://{api}.execute-api…/{stage} in AWS) that functions post to, which
// becomes their WS_ENDPOINT. The gateway invokes functions through inv,
// which answers once the stack is ready.
type WebSocketGateway interface {
	Start(ctx context.Context, t *samtemplate.Template, inv Invoker) (clientURL, endpointURL string, err error)
	Close() error
}

// Invoker invokes a function of the stack by logical id.
type Invoker interface {
	Invoke(ctx context.Context, logicalID string, payload []byte) (rie.Response, error)
}

// Stack is a running local stack.
type Stack struct {
	// APIURL is the HTTP API's base URL, e.g. http://127.0.0.1:3000.
	APIURL string
	// WebSocketURL is the WebSocket API's URL ("" without a gateway).
	WebSocketURL string
	// Template is template.yaml resolved to the local names.
	Template *samtemplate.Template
	// Moto, GCS and Supabase are the emulators.
	Moto     *emulator.Moto
	GCS      *emulator.GCS
	Supabase *emulator.Supabase
	// AWS is a configuration for clients of the local AWS (moto).
	AWS aws.Config
	// Buckets says where each copy lives (see Buckets).
	Buckets Buckets
	// Skipped lists functions not running, with the reason.
	Skipped map[string]string

	opts      Options
	root      string
	log       *slog.Logger
	clients   *awsClients
	functions map[string]*rie.Function
	fnMu      sync.RWMutex
	api       *httpAPI
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// Buckets names the landing bucket and each provider's bucket.
type Buckets struct {
	Landing  string `json:"landing"`  // on moto
	S3       string `json:"s3"`       // the S3 secondary, on moto
	Standby  string `json:"standby"`  // the failover standby, on moto
	GCS      string `json:"gcs"`      // on fake-gcs-server
	Supabase string `json:"supabase"` // on the Supabase emulator
}

// Start brings the stack up and returns once the HTTP API answers and
// every function has started. On error, whatever was started is stopped.
func Start(ctx context.Context, opts Options) (_ *Stack, err error) {
	s := &Stack{opts: opts, functions: map[string]*rie.Function{}, Skipped: map[string]string{}}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if err := s.init(); err != nil {
		return nil, err
	}
	if err := s.startEmulators(ctx); err != nil {
		return nil, err
	}
	if err := s.createAWS(ctx); err != nil {
		return nil, err
	}
	if err := s.createProviderBuckets(ctx); err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	endpoint := ""
	if s.opts.WebSocket != nil {
		if s.WebSocketURL, endpoint, err = s.opts.WebSocket.Start(ctx, s.Template, s); err != nil {
			return nil, fmt.Errorf("websocket gateway: %w", err)
		}
	}
	if err := s.startFunctions(ctx, endpoint); err != nil {
		return nil, err
	}
	s.api = newHTTPAPI(s.Template.Functions, s.functions, s.Template.Ref("AWS::AccountId"), s.log)
	if s.APIURL, err = s.api.listen(s.opts.APIAddr); err != nil {
		return nil, err
	}
	s.startEventSources(runCtx)
	s.log.Info("local stack ready", "api", s.APIURL, "moto", s.Moto.URL, "gcs", s.GCS.URL, "supabase", s.Supabase.URL)
	return s, nil
}

func (s *Stack) init() error {
	o := &s.opts
	if o.Root == "" {
		wd, err := os.Getwd()
		if err != nil {
			return err
		}
		if o.Root, err = FindRoot(wd); err != nil {
			return err
		}
	}
	s.root = o.Root
	if o.StackName == "" {
		o.StackName = "ws191-local"
	}
	if o.APIAddr == "" {
		o.APIAddr = "127.0.0.1:0"
	}
	if o.Output == nil {
		o.Output = os.Stderr
	}
	o.Output = &syncWriter{w: o.Output}
	if o.PollWait == 0 {
		o.PollWait = time.Second
	}
	s.log = o.Logger
	if s.log == nil {
		s.log = slog.New(slog.NewJSONHandler(o.Output, nil)).With("component", "local-stack")
	}
	return nil
}

func (s *Stack) startEmulators(ctx context.Context) error {
	var err error
	if s.Moto, err = emulator.StartMoto(ctx); err != nil {
		return err
	}
	if s.GCS, err = emulator.StartGCS(); err != nil {
		return err
	}
	if s.Supabase, err = emulator.StartSupabase(s.opts.SupabaseDir); err != nil {
		return err
	}
	s.AWS, err = s.Moto.AWSConfig(ctx)
	return err
}

// createAWS reads the template, creates its secrets and KMS keys (their
// ARNs are only known afterwards), reads it again with those ARNs, and
// creates the rest.
func (s *Stack) createAWS(ctx context.Context) error {
	s.clients = newAWSClients(s.AWS)
	topts := samtemplate.Options{StackName: s.opts.StackName, Region: emulator.MotoRegion, QueueURLBase: s.Moto.URL, Parameters: s.parameters()}
	path := filepath.Join(s.root, "template.yaml")
	t, err := samtemplate.Load(path, topts)
	if err != nil {
		return err
	}
	values, err := s.secretValues(ctx, t)
	if err != nil {
		return err
	}
	arns, err := s.clients.createSecrets(ctx, t, values)
	if err != nil {
		return err
	}
	refs, attrs, err := s.clients.createKeys(ctx, t)
	if err != nil {
		return err
	}
	for id, arn := range arns {
		refs[id] = arn
	}
	topts.Refs, topts.Attrs = refs, attrs
	if s.Template, err = samtemplate.Load(path, topts); err != nil {
		return err
	}
	s.Buckets = s.buckets()
	return s.clients.createResources(ctx, s.Template, s.opts.VisibilityTimeout)
}

// Invoke invokes a running function by logical id.
func (s *Stack) Invoke(ctx context.Context, logicalID string, payload []byte) (rie.Response, error) {
	s.fnMu.RLock()
	f := s.functions[logicalID]
	s.fnMu.RUnlock()
	if f == nil {
		return rie.Response{}, fmt.Errorf("%s: %w", logicalID, errNoFunction)
	}
	return f.Invoke(ctx, payload)
}

// Running lists the logical ids of the running functions.
func (s *Stack) Running() []string {
	s.fnMu.RLock()
	defer s.fnMu.RUnlock()
	var ids []string
	for _, id := range s.Template.FunctionIDs() {
		if s.functions[id] != nil {
			ids = append(ids, id)
		}
	}
	return ids
}

// Close stops the event sources, the functions and the emulators, in that
// order. It is safe to call more than once.
func (s *Stack) Close() error {
	s.closeOnce.Do(func() {
		if s.cancel != nil {
			s.cancel()
		}
		if s.api != nil {
			s.api.close()
		}
		if s.opts.WebSocket != nil {
			s.opts.WebSocket.Close()
		}
		s.wg.Wait()
		s.fnMu.Lock()
		var wg sync.WaitGroup
		for _, f := range s.functions {
			wg.Add(1)
			go func() { defer wg.Done(); f.Close() }()
		}
		wg.Wait()
		s.functions = map[string]*rie.Function{}
		s.fnMu.Unlock()
		for _, c := range []io.Closer{s.Supabase, s.GCS, s.Moto} {
			if c != nil && !isNilCloser(c) {
				c.Close()
			}
		}
	})
	return nil
}

func isNilCloser(c io.Closer) bool {
	switch v := c.(type) {
	case *emulator.Supabase:
		return v == nil
	case *emulator.GCS:
		return v == nil
	case *emulator.Moto:
		return v == nil
	}
	return false
}

// syncWriter serialises writes from many functions' output.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

var errNotReady = errors.New("local stack: not ready")
