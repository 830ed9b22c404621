package ws_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/golang-jwt/jwt/v5"

	"github.com/wedsync/backup-replication/infra/emulator"
	"github.com/wedsync/backup-replication/shared/api"
	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/ws"
)

const (
	testSecret   = "ws-test-secret-0123456789abcdef0123456789"
	testIssuer   = "http://127.0.0.1/auth/v1"
	testAudience = "authenticated"
)

var (
	moto    *emulator.Moto
	motoErr error
)

func TestMain(m *testing.M) {
	moto, motoErr = emulator.StartMoto(context.Background())
	code := m.Run()
	moto.Close()
	os.Exit(code)
}

// world is one test's tables on the shared moto and a handler over them.
type world struct {
	t       *testing.T
	store   *ws.Dynamo
	catalog *catalog.Dynamo
	h       *ws.Handler
	now     time.Time
}

func newWorld(t *testing.T, cfg ws.Config) *world {
	t.Helper()
	emulator.Require(t, motoErr)
	ctx := t.Context()
	awsCfg, _ := moto.AWSConfig(ctx)
	db := dynamodb.NewFromConfig(awsCfg)
	w := &world{t: t, now: time.Now()}
	table := "conns-" + randomHex(4)
	if err := ws.EnsureTables(ctx, db, table); err != nil {
		t.Fatal(err)
	}
	clock := func() time.Time { return w.now }
	var err error
	if w.store, err = ws.NewDynamo(db, table, clock); err != nil {
		t.Fatal(err)
	}
	names := catalog.Config{BackupsTable: "b-" + randomHex(4), ReplicasTable: "r-" + randomHex(4)}
	if err := catalog.EnsureTables(ctx, db, names); err != nil {
		t.Fatal(err)
	}
	if w.catalog, err = catalog.NewDynamo(db, names); err != nil {
		t.Fatal(err)
	}
	auth, err := api.NewJWTAuthenticator(api.JWTConfig{Secret: []byte(testSecret), Issuer: testIssuer, Audience: testAudience})
	if err != nil {
		t.Fatal(err)
	}
	if w.h, err = ws.New(cfg, ws.Deps{Store: w.store, Backups: w.catalog, Auth: auth, Now: clock}); err != nil {
		t.Fatal(err)
	}
	return w
}

func token(org string, ttl time.Duration) string {
	now := time.Now()
	s, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": testIssuer, "aud": testAudience, "sub": "user-1", "iat": now.Unix(), "exp": now.Add(ttl).Unix(),
		"app_metadata": map[string]any{"org_id": org},
	}).SignedString([]byte(testSecret))
	return s
}

func (w *world) event(route, conn string, body string) events.APIGatewayWebsocketProxyRequest {
	return events.APIGatewayWebsocketProxyRequest{Body: body, RequestContext: events.APIGatewayWebsocketProxyRequestContext{
		RouteKey: route, ConnectionID: conn, Stage: "test", DomainName: "127.0.0.1", EventType: "MESSAGE"}}
}

func (w *world) call(ev events.APIGatewayWebsocketProxyRequest) (int, ws.Reply) {
	w.t.Helper()
	resp, err := w.h.Handle(w.t.Context(), ev)
	if err != nil {
		w.t.Fatalf("Handle returned an error: %v", err)
	}
	var r ws.Reply
	if resp.Body != "" {
		if err := json.Unmarshal([]byte(resp.Body), &r); err != nil {
			w.t.Fatalf("%s answered a body that is not JSON: %q", ev.RequestContext.RouteKey, resp.Body)
		}
	}
	return resp.StatusCode, r
}

// connect opens connection id for org with a query-string token.
func (w *world) connect(id, org string) {
	w.t.Helper()
	ev := w.event(ws.RouteConnect, id, "")
	ev.QueryStringParameters = map[string]string{"token": token(org, time.Hour)}
	if code, r := w.call(ev); code != 200 {
		w.t.Fatalf("connect %s: %d %+v", id, code, r.Error)
	}
}

func (w *world) subscribe(conn, backupID string) (int, ws.Reply) {
	return w.call(w.event(ws.RouteSubscribe, conn, `{"action":"subscribe","backupId":"`+backupID+`"}`))
}

func (w *world) backup(org string) catalog.Backup {
	w.t.Helper()
	id := api.NewID(time.Now())
	b, _, err := w.catalog.CreateBackup(w.t.Context(), catalog.Backup{ID: id, OrganizationID: org, Name: "Ávila & Ng — wedding.zip",
		Size: 1, SHA256: "00", Status: catalog.StatusReplicating, LandingKey: "backups/" + org + "/" + id, CreatedAt: time.Now()})
	if err != nil {
		w.t.Fatal(err)
	}
	return b
}

func (w *world) subscribers(backupID, org string) []string {
	w.t.Helper()
	ids, err := w.store.Subscribers(w.t.Context(), backupID, org)
	if err != nil {
		w.t.Fatal(err)
	}
	slices.Sort(ids)
	return ids
}

func TestConnectNeedsAValidToken(t *testing.T) {
	w := newWorld(t, ws.Config{})
	org := api.NewID(time.Now())
	cases := []struct {
		name    string
		query   map[string]string
		headers map[string]string
		want    int
	}{
		{name: "no token", want: 401},
		{name: "empty token", query: map[string]string{"token": " "}, want: 401},
		{name: "garbage", query: map[string]string{"token": "not.a.jwt"}, want: 401},
		{name: "expired", query: map[string]string{"token": token(org, -time.Hour)}, want: 401},
		{name: "other key", query: map[string]string{"token": func() string {
			s, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": testIssuer, "aud": testAudience,
				"exp": time.Now().Add(time.Hour).Unix(), "app_metadata": map[string]any{"org_id": org}}).SignedString([]byte("another-secret-another-secret-0123"))
			return s
		}()}, want: 401},
		{name: "basic auth header", headers: map[string]string{"Authorization": "Basic dXNlcjpwdw=="}, want: 401},
		{name: "query token", query: map[string]string{"token": token(org, time.Hour)}, want: 200},
		{name: "header token, any case", headers: map[string]string{"authorization": "bearer " + token(org, time.Hour)}, want: 200},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id := "conn" + string(rune('A'+i)) + "="
			ev := w.event(ws.RouteConnect, id, "")
			ev.QueryStringParameters, ev.Headers = c.query, c.headers
			code, r := w.call(ev)
			if code != c.want {
				t.Fatalf("status %d, want %d (%+v)", code, c.want, r.Error)
			}
			_, err := w.store.Connection(t.Context(), id)
			if c.want == 200 && err != nil {
				t.Errorf("accepted but not recorded: %v", err)
			}
			if c.want != 200 {
				if err == nil {
					t.Errorf("refused but recorded")
				}
				if r.Type != "error" || r.Error == nil || r.Error.Code != ws.CodeUnauthenticated {
					t.Errorf("refusal reply %+v, want an unauthenticated error", r)
				}
			}
		})
	}
}

func TestSubscriptionsAreScopedToTheOrganization(t *testing.T) {
	w := newWorld(t, ws.Config{})
	orgA, orgB := api.NewID(time.Now()), api.NewID(time.Now().Add(time.Millisecond))
	a, b := w.backup(orgA), w.backup(orgB)
	w.connect("alice=", orgA)
	w.connect("bob=", orgB)
	w.connect("ann=", orgA)

	if code, r := w.subscribe("alice=", a.ID); code != 200 || r.Type != "subscribed" || r.BackupID != a.ID || r.Status != "REPLICATING" {
		t.Fatalf("own backup: %d %+v", code, r)
	}
	// Another organization's backup and a backup that does not exist are
	// refused with the same answer.
	code1, r1 := w.subscribe("alice=", b.ID)
	code2, r2 := w.subscribe("alice=", api.NewID(time.Now()))
	if code1 != 403 || r1.Error == nil || r1.Error.Code != ws.CodeSubscriptionDenied {
		t.Errorf("other organization's backup: %d %+v", code1, r1)
	}
	if code1 != code2 || r1.Error == nil || r2.Error == nil || *r1.Error != *r2.Error {
		t.Errorf("answers differ for another organization's backup (%d %+v) and a missing one (%d %+v)", code1, r1.Error, code2, r2.Error)
	}
	if code, _ := w.subscribe("bob=", "*"); code != 200 {
		t.Fatalf("bob *: %d", code)
	}
	if code, _ := w.subscribe("ann=", "*"); code != 200 {
		t.Fatalf("ann *: %d", code)
	}

	if got, want := w.subscribers(a.ID, orgA), []string{"alice=", "ann="}; !slices.Equal(got, want) {
		t.Errorf("subscribers of A's backup: %v, want %v (never B's \"*\")", got, want)
	}
	if got, want := w.subscribers(b.ID, orgB), []string{"bob="}; !slices.Equal(got, want) {
		t.Errorf("subscribers of B's backup: %v, want %v", got, want)
	}
	if got, want := w.subscribers("", ""), []string{"ann=", "bob="}; !slices.Equal(got, want) {
		t.Errorf("subscribers of provider health: %v, want every \"*\" %v", got, want)
	}

	if code, r := w.call(w.event(ws.RouteUnsubscribe, "alice=", `{"action":"unsubscribe","backupId":"`+a.ID+`"}`)); code != 200 || r.Type != "unsubscribed" {
		t.Errorf("unsubscribe: %d %+v", code, r)
	}
	if got, want := w.subscribers(a.ID, orgA), []string{"ann="}; !slices.Equal(got, want) {
		t.Errorf("after unsubscribe: %v, want %v", got, want)
	}
	if code, _ := w.call(w.event(ws.RouteDisconnect, "ann=", "")); code != 200 {
		t.Errorf("disconnect: %d", code)
	}
	if got := w.subscribers(a.ID, orgA); len(got) != 0 {
		t.Errorf("after disconnect: %v, want none", got)
	}
	if _, err := w.store.Connection(t.Context(), "ann="); err == nil {
		t.Error("disconnected connection still recorded")
	}
	if code, r := w.subscribe("ann=", "*"); code != 410 || r.Error == nil || r.Error.Code != ws.CodeNotConnected {
		t.Errorf("subscribe after disconnect: %d %+v", code, r)
	}
}

func TestBadMessages(t *testing.T) {
	w := newWorld(t, ws.Config{MaxSubscriptions: 2})
	org := api.NewID(time.Now())
	w.connect("c1=", org)
	cases := []struct {
		name, route, body, code string
		status                  int
	}{
		{"unknown action", ws.RouteDefault, `{"action":"dance"}`, ws.CodeUnknownAction, 400},
		{"not JSON", ws.RouteDefault, `hello`, ws.CodeUnknownAction, 400},
		{"subscribe without id", ws.RouteSubscribe, `{"action":"subscribe"}`, ws.CodeInvalidMessage, 400},
		{"subscribe to a key", ws.RouteSubscribe, `{"action":"subscribe","backupId":"backups/x/../y"}`, ws.CodeInvalidMessage, 400},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, r := w.call(w.event(c.route, "c1=", c.body))
			if status != c.status || r.Type != "error" || r.Error == nil || r.Error.Code != c.code || r.Error.Message == "" {
				t.Errorf("%d %+v, want %d %s", status, r, c.status, c.code)
			}
		})
	}
	t.Run("too many subscriptions", func(t *testing.T) {
		b1, b2, b3 := w.backup(org), w.backup(org), w.backup(org)
		for _, id := range []string{b1.ID, b2.ID, b2.ID} { // the repeat is one subscription
			if code, r := w.subscribe("c1=", id); code != 200 {
				t.Fatalf("subscribe %s: %d %+v", id, code, r)
			}
		}
		if code, r := w.subscribe("c1=", b3.ID); code != 429 || r.Error == nil || r.Error.Code != ws.CodeTooManySubscriptions {
			t.Errorf("third subscription: %d %+v", code, r)
		}
	})
}

func TestExpiredConnectionsAreIgnored(t *testing.T) {
	w := newWorld(t, ws.Config{TTL: time.Hour})
	org := api.NewID(time.Now())
	w.connect("old=", org)
	if code, _ := w.subscribe("old=", "*"); code != 200 {
		t.Fatal("subscribe")
	}
	w.now = w.now.Add(2 * time.Hour) // TTL passed, DynamoDB has not deleted yet
	if got := w.subscribers("", org); len(got) != 0 {
		t.Errorf("expired subscriptions still receive: %v", got)
	}
	if code, _ := w.subscribe("old=", "*"); code != 410 {
		t.Errorf("expired connection can subscribe: %d", code)
	}
}

func TestLoadSettingsNamesEveryMissingVariable(t *testing.T) {
	_, err := ws.LoadSettings(func(string) string { return "" })
	for _, name := range []string{"CONNECTIONS_TABLE", "BACKUPS_TABLE", "REPLICAS_TABLE", "API_JWT_ISSUER", "API_JWT_SECRET"} {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("error does not name %s: %v", name, err)
		}
	}
	env := map[string]string{"CONNECTIONS_TABLE": "c", "BACKUPS_TABLE": "b", "REPLICAS_TABLE": "r",
		"API_JWT_ISSUER": testIssuer, "API_JWT_SECRET": testSecret, "WS_CONNECTION_TTL": "3h", "WS_ENDPOINT": "http://127.0.0.1:9/local"}
	s, err := ws.LoadSettings(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if s.TTL != 3*time.Hour || s.WSEndpoint != "http://127.0.0.1:9/local" || s.JWTAudience != "authenticated" {
		t.Errorf("settings %+v", s)
	}
	if got := s.JWTSecret.String(); strings.Contains(got, testSecret) {
		t.Errorf("secret prints: %s", got)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
