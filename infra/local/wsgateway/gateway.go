// Package wsgateway plays API Gateway's WebSocket API on loopback, so that
// the ws function and the publisher run locally exactly as deployed:
//
//   - clients connect to ws://127.0.0.1:{port}/{stage}; the handshake
//     becomes a $connect event (query string and headers included), and a
//     refusal (a status outside 2xx, or a function error) refuses the
//     handshake with that status;
//   - each text message is routed on $request.body.action to a route of
//     the API, else $default, and delivered as an
//     APIGatewayWebsocketProxyRequest; the integration's answer goes back
//     to the client only for routes with a route response, as on AWS;
//   - a closed socket (either side, idle for IdleTimeout, or older than
//     MaxLifetime) becomes a $disconnect event;
//   - the management API that PostToConnection calls is served at
//     http://127.0.0.1:{port}/{stage}/@connections/{id}: POST sends the
//     body to the client, DELETE closes it, GET describes it; an unknown
//     connection answers 410 GoneException, an unsigned request 403
//     ForbiddenException, a body over 128 KB 413 PayloadTooLargeException,
//     in the shapes the AWS SDK decodes.
//
// The function is pluggable: in process (a Go func, for tests) or, as a
// stack.WebSocketGateway, the ws function the local stack runs under
// aws-lambda-rie, with routes, stage and target read from template.yaml.
package wsgateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

// API Gateway's WebSocket limits that the gateway copies.
const (
	MaxMessage         = 128 << 10 // bytes in one message (frames are joined)
	DefaultIdleTimeout = 10 * time.Minute
	DefaultMaxLifetime = 2 * time.Hour
	DefaultInvokeLimit = 29 * time.Second // the integration timeout
	writeTimeout       = 5 * time.Second
)

// Function is the WebSocket API's integration: it handles one event.
type Function interface {
	Invoke(ctx context.Context, ev events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error)
}

// FunctionFunc adapts a Go func (ws.Handler.Handle) to Function.
type FunctionFunc func(ctx context.Context, ev events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error)

// Invoke calls f.
func (f FunctionFunc) Invoke(ctx context.Context, ev events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
	return f(ctx, ev)
}

// Config is the gateway's shape; zero fields take the defaults. When the
// local stack starts the gateway (Start), Function, Stage, Routes and
// ResponseRoutes come from template.yaml instead.
type Config struct {
	// Addr is where to listen (default "127.0.0.1:0", a free port).
	Addr string
	// Stage is the stage name in the URLs (default "local").
	Stage string
	// APIID fills requestContext.apiId (default "local").
	APIID string
	// Function handles every route.
	Function Function
	// Routes are the route keys besides $connect, $disconnect and
	// $default (default: subscribe, unsubscribe).
	Routes []string
	// ResponseRoutes are the routes with a route response: their
	// integration's body is sent back to the client (default: none, as in
	// template.yaml).
	ResponseRoutes []string
	// IdleTimeout and MaxLifetime close connections as API Gateway does.
	IdleTimeout time.Duration
	MaxLifetime time.Duration
	// InvokeTimeout bounds one invocation (default 29 s).
	InvokeTimeout time.Duration
	// Logger receives the gateway's log (default: discard).
	Logger *slog.Logger
}

// Gateway is a local WebSocket API. Build it with New; start it with
// Listen (in process) or let the local stack call Start.
type Gateway struct {
	cfg    Config
	log    *slog.Logger
	routes map[string]bool
	answer map[string]bool

	srv    *http.Server
	ln     net.Listener
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	conns map[string]*client
}

// New returns a gateway; nothing listens until Listen or Start.
func New(cfg Config) *Gateway {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.Stage == "" {
		cfg.Stage = "local"
	}
	if cfg.APIID == "" {
		cfg.APIID = "local"
	}
	if cfg.Routes == nil {
		cfg.Routes = []string{"subscribe", "unsubscribe"}
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.MaxLifetime <= 0 {
		cfg.MaxLifetime = DefaultMaxLifetime
	}
	if cfg.InvokeTimeout <= 0 {
		cfg.InvokeTimeout = DefaultInvokeLimit
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Gateway{cfg: cfg, log: cfg.Logger.With("component", "wsgateway"), conns: map[string]*client{}}
}

// Listen starts serving with cfg.Function.
func (g *Gateway) Listen() error {
	if g.cfg.Function == nil {
		return errors.New("wsgateway: no Function to invoke")
	}
	if g.srv != nil {
		return errors.New("wsgateway: already listening")
	}
	g.routes, g.answer = map[string]bool{}, map[string]bool{}
	for _, r := range g.cfg.Routes {
		g.routes[r] = true
	}
	for _, r := range g.cfg.ResponseRoutes {
		g.answer[r] = true
	}
	ln, err := net.Listen("tcp", g.cfg.Addr)
	if err != nil {
		return fmt.Errorf("wsgateway: %w", err)
	}
	g.ln = ln
	g.ctx, g.cancel = context.WithCancel(context.Background())
	mux := http.NewServeMux()
	stage := "/" + g.cfg.Stage
	mux.HandleFunc("GET "+stage, g.serveSocket)
	mux.HandleFunc("GET "+stage+"/{$}", g.serveSocket)
	mux.HandleFunc("POST "+stage+"/@connections/{id}", g.postToConnection)
	mux.HandleFunc("DELETE "+stage+"/@connections/{id}", g.deleteConnection)
	mux.HandleFunc("GET "+stage+"/@connections/{id}", g.getConnection)
	g.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go g.srv.Serve(ln)
	g.log.Info("websocket gateway listening", "url", g.URL(), "endpoint", g.Endpoint())
	return nil
}

// URL is where clients connect: ws://127.0.0.1:{port}/{stage}.
func (g *Gateway) URL() string { return "ws://" + g.ln.Addr().String() + "/" + g.cfg.Stage }

// Endpoint is the management API endpoint, what the publisher and the ws
// function post to (their WS_ENDPOINT): http://127.0.0.1:{port}/{stage}.
func (g *Gateway) Endpoint() string { return "http://" + g.ln.Addr().String() + "/" + g.cfg.Stage }

// Connections lists the open connections' ids, sorted.
func (g *Gateway) Connections() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	ids := make([]string, 0, len(g.conns))
	for id := range g.conns {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// Close closes every connection (each gets its $disconnect, within a
// few seconds) and stops listening. It is safe to call more than once.
func (g *Gateway) Close() error {
	if g.srv == nil {
		return nil
	}
	g.mu.Lock()
	conns := make([]*client, 0, len(g.conns))
	for _, c := range g.conns {
		conns = append(conns, c)
	}
	g.mu.Unlock()
	for _, c := range conns {
		<-c.ready
		c.close(1001, "Going away")
	}
	done := make(chan struct{})
	go func() { g.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
	g.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := g.srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = g.srv.Close()
	}
	return err
}

// lookup returns the open connection id, waiting for its upgrade to
// finish; nil when there is none.
func (g *Gateway) lookup(id string) *client {
	g.mu.Lock()
	c := g.conns[id]
	g.mu.Unlock()
	if c == nil {
		return nil
	}
	select {
	case <-c.ready:
	case <-time.After(writeTimeout):
		return nil
	}
	if c.conn == nil {
		return nil
	}
	return c
}
