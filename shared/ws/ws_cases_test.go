package ws_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/coder/websocket"

	"github.com/wedsync/backup-replication/infra/emulator"
	"github.com/wedsync/backup-replication/infra/local/wsgateway"
	"github.com/wedsync/backup-replication/shared/api"
	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/ws"
)

// wired is functions/ws as Wire builds it from its environment, behind the
// local WebSocket gateway (which plays API Gateway and its management API).
type wired struct {
	gw   *wsgateway.Gateway
	conn string // the connections table
	db   *dynamodb.Client
}

// wire creates the tables, sets env's table names and WS_ENDPOINT, and
// starts the gateway in front of Wire's handler. env supplies the token
// settings.
func wire(t *testing.T, env map[string]string) (*wired, error) {
	t.Helper()
	emulator.Require(t, motoErr)
	ctx := t.Context()
	awsCfg, _ := moto.AWSConfig(ctx)
	w := &wired{db: dynamodb.NewFromConfig(awsCfg), conn: "conns-" + randomHex(4)}
	if err := ws.EnsureTables(ctx, w.db, w.conn); err != nil {
		t.Fatal(err)
	}
	names := catalog.Config{BackupsTable: "b-" + randomHex(4), ReplicasTable: "r-" + randomHex(4)}
	if err := catalog.EnsureTables(ctx, w.db, names); err != nil {
		t.Fatal(err)
	}
	var h *ws.Handler
	w.gw = wsgateway.New(wsgateway.Config{Function: wsgateway.FunctionFunc(func(ctx context.Context, ev events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
		return h.Handle(ctx, ev)
	})})
	if err := w.gw.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.gw.Close() })
	all := map[string]string{"AWS_REGION": emulator.MotoRegion, "CONNECTIONS_TABLE": w.conn, "BACKUPS_TABLE": names.BackupsTable,
		"REPLICAS_TABLE": names.ReplicasTable, "API_JWT_ISSUER": testIssuer, "WS_ENDPOINT": w.gw.Endpoint(), "WS_MAX_SUBSCRIPTIONS": "5"}
	for k, v := range env {
		all[k] = v
	}
	s, err := ws.LoadSettings(func(k string) string { return all[k] })
	if err != nil {
		t.Fatal(err)
	}
	h, err = ws.Wire(ctx, s, awsCfg, nil)
	return w, err
}

// dial opens a socket with a token of org.
func (w *wired) dial(t *testing.T, org string) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.Dial(t.Context(), w.gw.URL()+"?token="+token(org, time.Hour), nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c
}

// exchange sends msg and returns the reply the function posted back.
func exchange(t *testing.T, c *websocket.Conn, msg string) ws.Reply {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	_, b, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("no reply to %s: %v", msg, err)
	}
	var r ws.Reply
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("reply %q is not JSON", b)
	}
	return r
}

func secretARN(t *testing.T, value string) string {
	t.Helper()
	awsCfg, _ := moto.AWSConfig(t.Context())
	out, err := secretsmanager.NewFromConfig(awsCfg).CreateSecret(t.Context(), &secretsmanager.CreateSecretInput{
		Name: aws.String("ws-jwt-" + randomHex(4)), SecretString: aws.String(value)})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.ARN)
}

// TestWiredSocketAnswersOverTheConnection: the function Wire builds (JWT
// key from API_JWT_SECRET, from a secret holding the key, or from a secret
// holding {"secret": key}) accepts a socket opened with a valid token and
// posts every answer back over that socket: an error for a malformed or
// unknown message, "subscribed" for a good one.
func TestWiredSocketAnswersOverTheConnection(t *testing.T) {
	keys := map[string]func(t *testing.T) map[string]string{
		"API_JWT_SECRET": func(*testing.T) map[string]string { return map[string]string{"API_JWT_SECRET": testSecret} },
		"secret holding the key": func(t *testing.T) map[string]string {
			return map[string]string{"API_JWT_SECRET_ARN": secretARN(t, " "+testSecret+"\n")}
		},
		"secret holding JSON": func(t *testing.T) map[string]string {
			return map[string]string{"API_JWT_SECRET_ARN": secretARN(t, `{"secret":"`+testSecret+`"}`)}
		},
	}
	for name, env := range keys {
		t.Run(name, func(t *testing.T) {
			w, err := wire(t, env(t))
			if err != nil {
				t.Fatal(err)
			}
			org := api.NewID(time.Now())
			c := w.dial(t, org)
			cases := []struct {
				send, wantType, wantCode string
			}{
				{`hello`, "error", ws.CodeUnknownAction},
				{`{"action":"subscribe","backupId":"../../etc"}`, "error", ws.CodeInvalidMessage},
				{`{"action":"subscribe","backupId":` /* truncated JSON */, "error", ws.CodeUnknownAction},
				{`{"action":"subscribe","backupId":"` + api.NewID(time.Now()) + `"}`, "error", ws.CodeSubscriptionDenied},
				{`{"action":"subscribe","backupId":"*"}`, "subscribed", ""},
				{`{"action":"unsubscribe","backupId":"*"}`, "unsubscribed", ""},
			}
			for _, tc := range cases {
				r := exchange(t, c, tc.send)
				if r.Type != tc.wantType || (tc.wantCode != "" && (r.Error == nil || r.Error.Code != tc.wantCode)) {
					t.Errorf("sent %s: got %+v (error %+v), want %s %s", tc.send, r, r.Error, tc.wantType, tc.wantCode)
				}
			}
		})
	}
}

// TestWiredSocketRefusesABadToken: a token signed with another key is
// refused at the handshake with 401, and no connection is recorded.
func TestWiredSocketRefusesABadToken(t *testing.T) {
	w, err := wire(t, map[string]string{"API_JWT_SECRET": "another-key-another-key-0123456789abc"})
	if err != nil {
		t.Fatal(err)
	}
	_, resp, err := websocket.Dial(t.Context(), w.gw.URL()+"?token="+token(api.NewID(time.Now()), time.Hour), nil)
	if err == nil || resp == nil || resp.StatusCode != 401 {
		t.Fatalf("dial with a token of another key: %v (response %v), want 401", err, resp)
	}
	out, err := w.db.Scan(t.Context(), &dynamodb.ScanInput{TableName: aws.String(w.conn)})
	if err != nil || len(out.Items) != 0 {
		t.Fatalf("connections recorded: %d (%v)", len(out.Items), err)
	}
}

// TestWireFailsWithoutTheJWTSecret: a key secret that does not exist stops
// the start with an error naming the secret, never a key.
func TestWireFailsWithoutTheJWTSecret(t *testing.T) {
	missing := "arn:aws:secretsmanager:" + emulator.MotoRegion + ":123456789012:secret:no-such-" + randomHex(3)
	_, err := wire(t, map[string]string{"API_JWT_SECRET_ARN": missing})
	if err == nil || !strings.Contains(err.Error(), missing) {
		t.Fatalf("Wire = %v, want an error naming %s", err, missing)
	}
	var s ws.Settings
	if _, err := ws.Wire(t.Context(), s, aws.Config{}, nil); err == nil || !strings.Contains(err.Error(), "CONNECTIONS_TABLE") {
		t.Fatalf("Wire with no tables = %v, want CONNECTIONS_TABLE named", err)
	}
}

// TestNewNamesEveryMissingDependency: a handler without its ports, or with
// negative limits, is refused at start.
func TestNewNamesEveryMissingDependency(t *testing.T) {
	_, err := ws.New(ws.Config{TTL: -time.Second}, ws.Deps{})
	for _, want := range []string{"Store", "Backups", "Auth", "negative"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New error %v does not name %s", err, want)
		}
	}
	if _, err := ws.NewDynamo(nil, "t", nil); err == nil || !strings.Contains(err.Error(), "CONNECTIONS_TABLE") {
		t.Errorf("NewDynamo without a client: %v", err)
	}
	if err := ws.EnsureTables(t.Context(), nil, ""); err == nil || !strings.Contains(err.Error(), "CONNECTIONS_TABLE") {
		t.Errorf("EnsureTables without a name: %v", err)
	}
}

// TestLoadSettingsRejectsOutOfRangeLimits: limits outside their range are
// named; values inside are kept.
func TestLoadSettingsRejectsOutOfRangeLimits(t *testing.T) {
	base := map[string]string{"CONNECTIONS_TABLE": "c", "BACKUPS_TABLE": "b", "REPLICAS_TABLE": "r",
		"API_JWT_ISSUER": testIssuer, "API_JWT_SECRET_ARN": "arn:aws:secretsmanager:x"}
	cases := []struct {
		name, key, value, wantErr string
	}{
		{"ttl too short", "WS_CONNECTION_TTL", "30s", "WS_CONNECTION_TTL"},
		{"ttl not a duration", "WS_CONNECTION_TTL", "forever", "WS_CONNECTION_TTL"},
		{"no subscriptions", "WS_MAX_SUBSCRIPTIONS", "0", "WS_MAX_SUBSCRIPTIONS"},
		{"subscriptions not a number", "WS_MAX_SUBSCRIPTIONS", "many", "WS_MAX_SUBSCRIPTIONS"},
		{"subscriptions in range", "WS_MAX_SUBSCRIPTIONS", "250", ""},
		{"dev mode needs no key", "API_AUTH_MODE", "dev", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := map[string]string{c.key: c.value}
			for k, v := range base {
				env[k] = v
			}
			if c.key == "API_AUTH_MODE" {
				delete(env, "API_JWT_ISSUER")
				delete(env, "API_JWT_SECRET_ARN")
			}
			s, err := ws.LoadSettings(func(k string) string { return env[k] })
			if c.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if c.key == "WS_MAX_SUBSCRIPTIONS" && s.MaxSubscriptions != 250 {
					t.Errorf("MaxSubscriptions = %d", s.MaxSubscriptions)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("LoadSettings = %v, want %s named", err, c.wantErr)
			}
		})
	}
}

// TestRouteEdgeCases: malformed subscription bodies, the connection's own
// record named as a backup, tokens in multi-value parameters and headers,
// and a $connect without a connection id.
func TestRouteEdgeCases(t *testing.T) {
	w := newWorld(t, ws.Config{})
	org := api.NewID(time.Now())
	w.connect("c1=", org)
	cases := []struct {
		name, route, body, code string
		status                  int
	}{
		{"subscribe, not JSON", ws.RouteSubscribe, `{"action":"subscribe",`, ws.CodeInvalidMessage, 400},
		{"subscribe, id not a string", ws.RouteSubscribe, `{"action":"subscribe","backupId":7}`, ws.CodeInvalidMessage, 400},
		{"unsubscribe, empty id", ws.RouteUnsubscribe, `{"action":"unsubscribe","backupId":""}`, ws.CodeInvalidMessage, 400},
		{"unsubscribe the connection's own record", ws.RouteUnsubscribe, `{"action":"unsubscribe","backupId":"` + ws.ItemConnection + `"}`, ws.CodeInvalidMessage, 400},
		{"subscribe to the connection's own record", ws.RouteSubscribe, `{"action":"subscribe","backupId":"` + ws.ItemConnection + `"}`, ws.CodeInvalidMessage, 400},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, r := w.call(w.event(c.route, "c1=", c.body))
			if status != c.status || r.Type != "error" || r.Error == nil || r.Error.Code != c.code {
				t.Errorf("%d %+v, want %d %s", status, r, c.status, c.code)
			}
		})
	}
	if _, err := w.store.Connection(t.Context(), "c1="); err != nil {
		t.Fatalf("the connection is gone after bad messages: %v", err)
	}
	t.Run("unsubscribe what was never subscribed", func(t *testing.T) {
		if status, r := w.call(w.event(ws.RouteUnsubscribe, "c1=", `{"action":"unsubscribe","backupId":"*"}`)); status != 200 || r.Type != "unsubscribed" {
			t.Errorf("%d %+v, want 200 unsubscribed", status, r)
		}
	})
	t.Run("unsubscribe on a connection never opened", func(t *testing.T) {
		if status, r := w.call(w.event(ws.RouteUnsubscribe, "ghost=", `{"action":"unsubscribe","backupId":"*"}`)); status != 410 || r.Error == nil || r.Error.Code != ws.CodeNotConnected {
			t.Errorf("%d %+v, want 410 not_connected", status, r)
		}
	})
	t.Run("disconnect of an unknown connection", func(t *testing.T) {
		if status, _ := w.call(w.event(ws.RouteDisconnect, "ghost=", "")); status != 200 {
			t.Errorf("status %d, want 200", status)
		}
	})
	tok := token(org, time.Hour)
	connects := []struct {
		name string
		ev   func(ev *events.APIGatewayWebsocketProxyRequest)
		want int
	}{
		{"multi-value query token", func(ev *events.APIGatewayWebsocketProxyRequest) {
			ev.MultiValueQueryStringParameters = map[string][]string{"token": {" ", tok}}
		}, 200},
		{"multi-value header token", func(ev *events.APIGatewayWebsocketProxyRequest) {
			ev.MultiValueHeaders = map[string][]string{"AUTHORIZATION": {"Basic x", "Bearer " + tok}}
		}, 200},
		{"bearer without a token", func(ev *events.APIGatewayWebsocketProxyRequest) {
			ev.Headers = map[string]string{"Authorization": "Bearer   "}
		}, 401},
	}
	for i, c := range connects {
		t.Run(c.name, func(t *testing.T) {
			id := fmt.Sprintf("mv%d=", i)
			ev := w.event(ws.RouteConnect, id, "")
			c.ev(&ev)
			if status, r := w.call(ev); status != c.want {
				t.Fatalf("status %d (%+v), want %d", status, r.Error, c.want)
			}
			if _, err := w.store.Connection(t.Context(), id); (err == nil) != (c.want == 200) {
				t.Errorf("recorded: %v, want recorded only when accepted", err)
			}
		})
	}
	t.Run("connect without a connection id", func(t *testing.T) {
		ev := w.event(ws.RouteConnect, "", "")
		ev.QueryStringParameters = map[string]string{"token": tok}
		if status, r := w.call(ev); status != 400 || r.Error == nil || r.Error.Code != ws.CodeInvalidMessage {
			t.Errorf("%d %+v, want 400 invalid_message", status, r)
		}
	})
}

// TestDisconnectRemovesManySubscriptions: a connection holding more
// subscriptions than one DynamoDB batch takes is removed entirely.
func TestDisconnectRemovesManySubscriptions(t *testing.T) {
	w := newWorld(t, ws.Config{})
	org := api.NewID(time.Now())
	w.connect("many=", org)
	c, err := w.store.Connection(t.Context(), "many=")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 30 {
		id := api.NewID(time.Now().Add(time.Duration(i) * time.Millisecond))
		ids = append(ids, id)
		if err := w.store.Subscribe(t.Context(), c, id, 0); err != nil {
			t.Fatal(err)
		}
	}
	if got := w.subscribers(ids[29], org); !slices.Equal(got, []string{"many="}) {
		t.Fatalf("subscribers before disconnect: %v", got)
	}
	if status, _ := w.call(w.event(ws.RouteDisconnect, "many=", "")); status != 200 {
		t.Fatalf("disconnect: %d", status)
	}
	for _, id := range []string{ids[0], ids[24], ids[25], ids[29]} {
		if got := w.subscribers(id, org); len(got) != 0 {
			t.Errorf("subscribers of %s after disconnect: %v", id, got)
		}
	}
	if _, err := w.store.Connection(t.Context(), "many="); err == nil {
		t.Error("connection still recorded")
	}
}

// TestUnavailableStoresAnswer500: when the connections table or the
// catalog cannot be read, the caller gets 500 "unavailable" in JSON (never
// the dependency's error text, never a misleading 403); $disconnect still
// answers 200 (records expire by TTL).
func TestUnavailableStoresAnswer500(t *testing.T) {
	emulator.Require(t, motoErr)
	ctx := t.Context()
	awsCfg, _ := moto.AWSConfig(ctx)
	db := dynamodb.NewFromConfig(awsCfg)
	auth, err := api.NewJWTAuthenticator(api.JWTConfig{Secret: []byte(testSecret), Issuer: testIssuer, Audience: testAudience})
	if err != nil {
		t.Fatal(err)
	}
	noCatalog, err := catalog.NewDynamo(db, catalog.Config{BackupsTable: "missing-b-" + randomHex(4), ReplicasTable: "missing-r-" + randomHex(4)})
	if err != nil {
		t.Fatal(err)
	}
	noConns, err := ws.NewDynamo(db, "missing-conns-"+randomHex(4), nil)
	if err != nil {
		t.Fatal(err)
	}
	org := api.NewID(time.Now())
	unavailable := func(t *testing.T, resp events.APIGatewayProxyResponse) {
		t.Helper()
		var r ws.Reply
		if resp.StatusCode != 500 || json.Unmarshal([]byte(resp.Body), &r) != nil || r.Error == nil || r.Error.Code != ws.CodeUnavailable {
			t.Fatalf("%d %s, want 500 unavailable", resp.StatusCode, resp.Body)
		}
		if strings.Contains(resp.Body, "ResourceNotFound") || strings.Contains(resp.Body, "missing-") {
			t.Fatalf("the answer leaks the dependency's error: %s", resp.Body)
		}
	}

	t.Run("connections table unavailable", func(t *testing.T) {
		h, err := ws.New(ws.Config{}, ws.Deps{Store: noConns, Backups: noCatalog, Auth: auth})
		if err != nil {
			t.Fatal(err)
		}
		ev := events.APIGatewayWebsocketProxyRequest{QueryStringParameters: map[string]string{"token": token(org, time.Hour)},
			RequestContext: events.APIGatewayWebsocketProxyRequestContext{RouteKey: ws.RouteConnect, ConnectionID: "x="}}
		resp, _ := h.Handle(ctx, ev)
		unavailable(t, resp)
		ev.RequestContext.RouteKey = ws.RouteSubscribe
		ev.Body = `{"action":"subscribe","backupId":"*"}`
		resp, _ = h.Handle(ctx, ev)
		unavailable(t, resp)
		ev.RequestContext.RouteKey = ws.RouteDisconnect
		if resp, _ := h.Handle(ctx, ev); resp.StatusCode != 200 {
			t.Errorf("disconnect: %d, want 200", resp.StatusCode)
		}
	})
	t.Run("catalog unavailable", func(t *testing.T) {
		w := newWorld(t, ws.Config{})
		h, err := ws.New(ws.Config{}, ws.Deps{Store: w.store, Backups: noCatalog, Auth: auth})
		if err != nil {
			t.Fatal(err)
		}
		w.h = h
		w.connect("y=", org)
		resp, _ := h.Handle(ctx, w.event(ws.RouteSubscribe, "y=", `{"action":"subscribe","backupId":"`+api.NewID(time.Now())+`"}`))
		unavailable(t, resp)
		if status, r := w.subscribe("y=", "*"); status != 200 || r.Type != "subscribed" {
			t.Errorf("\"*\" needs no catalog: %d %+v", status, r)
		}
	})
}

// TestReplyToAGoneConnectionStillAnswers: when the management API says the
// caller is gone (410), the reply is still the integration's response.
func TestReplyToAGoneConnectionStillAnswers(t *testing.T) {
	w := newWorld(t, ws.Config{})
	gw := wsgateway.New(wsgateway.Config{Function: wsgateway.FunctionFunc(w.h.Handle)})
	if err := gw.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gw.Close() })
	awsCfg, _ := moto.AWSConfig(t.Context())
	h, err := ws.New(ws.Config{Endpoint: gw.Endpoint()}, ws.Deps{Store: w.store, Backups: w.catalog,
		Auth: mustAuth(t), Replies: apigatewaymanagementapi.NewFromConfig(awsCfg)})
	if err != nil {
		t.Fatal(err)
	}
	w.h = h
	w.connect("not-on-the-gateway=", api.NewID(time.Now()))
	status, r := w.subscribe("not-on-the-gateway=", "*")
	if status != 200 || r.Type != "subscribed" {
		t.Fatalf("%d %+v, want 200 subscribed although the post failed", status, r)
	}
}

func mustAuth(t *testing.T) api.Authenticator {
	t.Helper()
	auth, err := api.NewJWTAuthenticator(api.JWTConfig{Secret: []byte(testSecret), Issuer: testIssuer, Audience: testAudience})
	if err != nil {
		t.Fatal(err)
	}
	return auth
}
