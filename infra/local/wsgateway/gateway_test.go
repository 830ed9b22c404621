package wsgateway_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi/types"
	"github.com/coder/websocket"

	"github.com/wedsync/backup-replication/infra/local/samtemplate"
	"github.com/wedsync/backup-replication/infra/local/wsgateway"
)

// recorder is a WebSocket integration for these tests: it refuses
// $connect without ?token=ok, answers every route with a body naming the
// route, fails the "boom" route, and keeps every event.
type recorder struct {
	mu     sync.Mutex
	events []events.APIGatewayWebsocketProxyRequest
	got    chan events.APIGatewayWebsocketProxyRequest
}

func newRecorder() *recorder {
	return &recorder{got: make(chan events.APIGatewayWebsocketProxyRequest, 100)}
}

func (r *recorder) Invoke(_ context.Context, ev events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
	r.got <- ev
	route := ev.RequestContext.RouteKey
	switch {
	case route == "$connect" && ev.QueryStringParameters["token"] != "ok":
		return events.APIGatewayProxyResponse{StatusCode: 401, Body: `{"type":"error"}`}, nil
	case route == "boom":
		return events.APIGatewayProxyResponse{}, errors.New("handler crashed")
	}
	return events.APIGatewayProxyResponse{StatusCode: 200, Body: `{"route":"` + route + `"}`}, nil
}

// next waits for the next event of route.
func (r *recorder) next(t *testing.T, route string) events.APIGatewayWebsocketProxyRequest {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev := <-r.got:
			if ev.RequestContext.RouteKey == route {
				return ev
			}
		case <-timeout:
			t.Fatalf("no %s event", route)
		}
	}
}

func start(t *testing.T, fn wsgateway.Function) *wsgateway.Gateway {
	t.Helper()
	g := wsgateway.New(wsgateway.Config{Function: fn, Routes: []string{"subscribe", "unsubscribe", "boom"},
		ResponseRoutes: []string{"subscribe", "boom"}})
	if err := g.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

// management is the AWS SDK's client, pointed at the gateway.
func management(g *wsgateway.Gateway) *apigatewaymanagementapi.Client {
	return apigatewaymanagementapi.NewFromConfig(aws.Config{Region: "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")},
		func(o *apigatewaymanagementapi.Options) { o.BaseEndpoint = aws.String(g.Endpoint()) })
}

func dial(t *testing.T, g *wsgateway.Gateway, query string) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.Dial(t.Context(), g.URL()+query, &websocket.DialOptions{
		HTTPHeader: http.Header{"User-Agent": {"wedding-planner/1.0"}, "X-Extra": {"a", "b"}}})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c
}

func read(t *testing.T, c *websocket.Conn) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, b, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(b)
}

func TestConnectIsAskedFirst(t *testing.T) {
	fn := newRecorder()
	g := start(t, fn)
	_, resp, err := websocket.Dial(t.Context(), g.URL()+"?token=bad", nil)
	if err == nil || resp == nil || resp.StatusCode != 401 {
		t.Fatalf("refused $connect: err %v, response %+v; want the handshake refused with 401", err, resp)
	}
	if n := len(g.Connections()); n != 0 {
		t.Errorf("%d connections after a refusal", n)
	}
	dial(t, g, "?token=ok&lang=pt&lang=en")
	ev := fn.next(t, "$connect")
	ev = fn.next(t, "$connect")
	rc := ev.RequestContext
	if rc.EventType != "CONNECT" || rc.ConnectionID == "" || rc.Stage != "local" || rc.DomainName == "" || rc.ConnectedAt == 0 {
		t.Errorf("request context %+v", rc)
	}
	if ev.QueryStringParameters["token"] != "ok" || ev.QueryStringParameters["lang"] != "en" ||
		!slices.Equal(ev.MultiValueQueryStringParameters["lang"], []string{"pt", "en"}) {
		t.Errorf("query string %v / %v", ev.QueryStringParameters, ev.MultiValueQueryStringParameters)
	}
	if ev.Headers["User-Agent"] != "wedding-planner/1.0" || !slices.Equal(ev.MultiValueHeaders["X-Extra"], []string{"a", "b"}) ||
		rc.Identity.UserAgent != "wedding-planner/1.0" || rc.Identity.SourceIP != "127.0.0.1" {
		t.Errorf("headers %v, identity %+v", ev.Headers, rc.Identity)
	}
	if got := g.Connections(); len(got) != 1 || got[0] != rc.ConnectionID {
		t.Errorf("connections %v, want [%s]", got, rc.ConnectionID)
	}
}

func TestRouteSelectionOnAction(t *testing.T) {
	fn := newRecorder()
	g := start(t, fn)
	c := dial(t, g, "?token=ok")
	fn.next(t, "$connect")
	cases := []struct {
		send      string
		binary    bool
		route     string
		reply     string // what the client receives ("" nothing)
		base64Out bool
	}{
		{send: `{"action":"subscribe","backupId":"*"}`, route: "subscribe", reply: `{"route":"subscribe"}`},
		{send: `{"action":"unsubscribe","backupId":"*"}`, route: "unsubscribe"}, // no route response
		{send: `{"action":"dance"}`, route: "$default"},
		{send: `{"action":7}`, route: "$default"},
		{send: `not json`, route: "$default"},
		{send: "\x00\xffbinary", binary: true, route: "$default", base64Out: true},
		{send: `{"action":"boom"}`, route: "boom", reply: "Internal server error"},
	}
	for _, tc := range cases {
		typ := websocket.MessageText
		if tc.binary {
			typ = websocket.MessageBinary
		}
		if err := c.Write(t.Context(), typ, []byte(tc.send)); err != nil {
			t.Fatal(err)
		}
		ev := fn.next(t, tc.route)
		body := ev.Body
		if tc.base64Out {
			b, _ := base64.StdEncoding.DecodeString(body)
			body = string(b)
			if !ev.IsBase64Encoded {
				t.Errorf("%q: binary body not marked base64", tc.send)
			}
		}
		if body != tc.send || ev.RequestContext.EventType != "MESSAGE" || ev.RequestContext.MessageID == nil {
			t.Errorf("%q reached %s as %q (%+v)", tc.send, tc.route, body, ev.RequestContext)
		}
		if tc.reply != "" {
			if got := read(t, c); !strings.Contains(got, tc.reply) {
				t.Errorf("%q: client received %q, want %q", tc.send, got, tc.reply)
			}
		}
	}
	// Nothing else was sent back: the next message is what we post now.
	id := g.Connections()[0]
	if _, err := management(g).PostToConnection(t.Context(), &apigatewaymanagementapi.PostToConnectionInput{
		ConnectionId: aws.String(id), Data: []byte("marker")}); err != nil {
		t.Fatal(err)
	}
	if got := read(t, c); got != "marker" {
		t.Errorf("client received %q, want only replies of routes with a route response", got)
	}
}

func TestManagementAPIWithTheAWSClient(t *testing.T) {
	fn := newRecorder()
	g := start(t, fn)
	c := dial(t, g, "?token=ok")
	id := fn.next(t, "$connect").RequestContext.ConnectionID
	mgmt := management(g)
	ctx := t.Context()

	msg := []byte(`{"type":"backup_progress","provider":"gcs","percent":42.5}`)
	if _, err := mgmt.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{ConnectionId: aws.String(id), Data: msg}); err != nil {
		t.Fatalf("PostToConnection: %v", err)
	}
	if got := read(t, c); got != string(msg) {
		t.Errorf("client received %q, want %q", got, msg)
	}
	info, err := mgmt.GetConnection(ctx, &apigatewaymanagementapi.GetConnectionInput{ConnectionId: aws.String(id)})
	if err != nil {
		t.Fatalf("GetConnection: %v", err)
	}
	if info.ConnectedAt == nil || info.Identity == nil || aws.ToString(info.Identity.SourceIp) != "127.0.0.1" || info.LastActiveAt == nil {
		t.Errorf("GetConnection: %+v", info)
	}
	_, err = mgmt.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{ConnectionId: aws.String(id),
		Data: bytes.Repeat([]byte("x"), wsgateway.MaxMessage+1)})
	var tooLarge *types.PayloadTooLargeException
	if !errors.As(err, &tooLarge) {
		t.Errorf("129 KB post: %v, want PayloadTooLargeException", err)
	}
	if _, err := mgmt.DeleteConnection(ctx, &apigatewaymanagementapi.DeleteConnectionInput{ConnectionId: aws.String(id)}); err != nil {
		t.Fatalf("DeleteConnection: %v", err)
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, _, err := c.Read(rctx); websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Errorf("after DeleteConnection the client read %v, want a normal closure", err)
	}
	if ev := fn.next(t, "$disconnect"); ev.RequestContext.ConnectionID != id || ev.RequestContext.EventType != "DISCONNECT" {
		t.Errorf("$disconnect event %+v", ev.RequestContext)
	}
	for _, call := range []func() error{
		func() error {
			_, err := mgmt.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{ConnectionId: aws.String(id), Data: msg})
			return err
		},
		func() error {
			_, err := mgmt.GetConnection(ctx, &apigatewaymanagementapi.GetConnectionInput{ConnectionId: aws.String(id)})
			return err
		},
		func() error {
			_, err := mgmt.DeleteConnection(ctx, &apigatewaymanagementapi.DeleteConnectionInput{ConnectionId: aws.String(id)})
			return err
		},
	} {
		var gone *types.GoneException
		if err := call(); !errors.As(err, &gone) {
			t.Errorf("call on a closed connection: %v, want GoneException", err)
		}
	}
	resp, err := http.Post(g.Endpoint()+"/@connections/"+id, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 || resp.Header.Get("X-Amzn-ErrorType") != "ForbiddenException" {
		t.Errorf("unsigned post: %d %s, want 403 ForbiddenException", resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"))
	}
}

func TestClientCloseDisconnects(t *testing.T) {
	fn := newRecorder()
	g := start(t, fn)
	c := dial(t, g, "?token=ok")
	id := fn.next(t, "$connect").RequestContext.ConnectionID
	c.Close(websocket.StatusNormalClosure, "bye")
	ev := fn.next(t, "$disconnect")
	if ev.RequestContext.ConnectionID != id || ev.RequestContext.DisconnectStatusCode != 1000 {
		t.Errorf("$disconnect %+v", ev.RequestContext)
	}
	if n := len(g.Connections()); n != 0 {
		t.Errorf("%d connections left", n)
	}
}

func TestIdleConnectionsAreClosed(t *testing.T) {
	fn := newRecorder()
	g := wsgateway.New(wsgateway.Config{Function: fn, IdleTimeout: 300 * time.Millisecond})
	if err := g.Listen(); err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	c := dial(t, g, "?token=ok")
	fn.next(t, "$connect")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, _, err := c.Read(ctx); websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Errorf("idle client read %v, want 1001 going away", err)
	}
	if ev := fn.next(t, "$disconnect"); ev.RequestContext.DisconnectStatusCode != 1001 {
		t.Errorf("$disconnect status %d, want 1001", ev.RequestContext.DisconnectStatusCode)
	}
}

func TestReadAPIFromTemplate(t *testing.T) {
	tp, err := samtemplate.Load("../../../template.yaml", samtemplate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	api, err := wsgateway.ReadAPI(tp)
	if err != nil {
		t.Fatal(err)
	}
	for _, route := range []string{"$connect", "$disconnect", "$default", "subscribe", "unsubscribe"} {
		if api.Functions[route] != "WsFunction" {
			t.Errorf("route %s → %q, want WsFunction", route, api.Functions[route])
		}
	}
	if api.Stage == "" || api.ID == "" {
		t.Errorf("api %+v", api)
	}
	b, _ := json.Marshal(api)
	t.Logf("template's WebSocket API: %s", b)
}
