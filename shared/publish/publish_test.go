package publish_test

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"

	"github.com/wedsync/backup-replication/infra/emulator"
	"github.com/wedsync/backup-replication/infra/local/wsgateway"
	"github.com/wedsync/backup-replication/shared/api"
	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/publish"
	"github.com/wedsync/backup-replication/shared/replicate"
	"github.com/wedsync/backup-replication/shared/ws"
)

const testSecret = "publish-test-secret-0123456789abcdef01234"

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

// world is the real ws handler behind the local gateway, on moto tables,
// and a publisher posting through the AWS SDK to the gateway.
type world struct {
	t       *testing.T
	g       *wsgateway.Gateway
	store   *ws.Dynamo
	catalog *catalog.Dynamo
	pub     *publish.Publisher
}

func newWorld(t *testing.T, cfg publish.Config) *world {
	t.Helper()
	emulator.Require(t, motoErr)
	ctx := t.Context()
	awsCfg, _ := moto.AWSConfig(ctx)
	db := dynamodb.NewFromConfig(awsCfg)
	w := &world{t: t}
	table := "conns-" + api.NewID(time.Now())[20:]
	if err := ws.EnsureTables(ctx, db, table); err != nil {
		t.Fatal(err)
	}
	w.store, _ = ws.NewDynamo(db, table, nil)
	names := catalog.Config{BackupsTable: "b-" + api.NewID(time.Now())[20:], ReplicasTable: "r-" + api.NewID(time.Now())[20:]}
	if err := catalog.EnsureTables(ctx, db, names); err != nil {
		t.Fatal(err)
	}
	w.catalog, _ = catalog.NewDynamo(db, names)
	auth, _ := api.NewJWTAuthenticator(api.JWTConfig{Secret: []byte(testSecret), Issuer: "test", Audience: "authenticated"})
	var h *ws.Handler
	w.g = wsgateway.New(wsgateway.Config{Function: wsgateway.FunctionFunc(func(ctx context.Context, ev events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
		return h.Handle(ctx, ev)
	})})
	if err := w.g.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.g.Close() })
	mgmt := publish.NewPoster(awsCfg, w.g.Endpoint())
	var err error
	if h, err = ws.New(ws.Config{Endpoint: w.g.Endpoint()}, ws.Deps{Store: w.store, Backups: w.catalog, Auth: auth, Replies: mgmt}); err != nil {
		t.Fatal(err)
	}
	if w.pub, err = publish.New(cfg, publish.Deps{Poster: mgmt, Audience: w.store}); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *world) backup(org string) catalog.Backup {
	w.t.Helper()
	id := api.NewID(time.Now())
	b, _, err := w.catalog.CreateBackup(w.t.Context(), catalog.Backup{ID: id, OrganizationID: org, Name: "x", Size: 1000,
		SHA256: "00", Status: catalog.StatusReplicating, LandingKey: "backups/" + org + "/" + id, CreatedAt: time.Now()})
	if err != nil {
		w.t.Fatal(err)
	}
	return b
}

// client is a subscriber: its messages arrive on msgs until it closes.
type client struct {
	c    *websocket.Conn
	msgs chan map[string]any
}

func (w *world) connect(org string, subscribe ...string) *client {
	w.t.Helper()
	tok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": "test", "aud": "authenticated",
		"exp": time.Now().Add(time.Hour).Unix(), "app_metadata": map[string]any{"org_id": org}}).SignedString([]byte(testSecret))
	c, _, err := websocket.Dial(w.t.Context(), w.g.URL()+"?token="+tok, nil)
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { c.CloseNow() })
	cl := &client{c: c, msgs: make(chan map[string]any, 10000)}
	go func() {
		defer close(cl.msgs)
		for {
			_, b, err := c.Read(context.Background())
			if err != nil {
				return
			}
			var m map[string]any
			json.Unmarshal(b, &m)
			cl.msgs <- m
		}
	}()
	for _, id := range subscribe {
		c.Write(w.t.Context(), websocket.MessageText, []byte(`{"action":"subscribe","backupId":"`+id+`"}`))
		if m := cl.next(w.t); m["type"] != "subscribed" {
			w.t.Fatalf("subscribe %s: %v", id, m)
		}
	}
	return cl
}

func (cl *client) next(t *testing.T) map[string]any {
	t.Helper()
	select {
	case m, ok := <-cl.msgs:
		if !ok {
			t.Fatal("connection closed")
		}
		return m
	case <-time.After(15 * time.Second):
		t.Fatal("no message")
	}
	return nil
}

// until collects messages up to and including the first for which last is true.
func (cl *client) until(t *testing.T, last func(map[string]any) bool) []map[string]any {
	t.Helper()
	var out []map[string]any
	for {
		m := cl.next(t)
		out = append(out, m)
		if last(m) {
			return out
		}
	}
}

func isStatus(s string) func(map[string]any) bool {
	return func(m map[string]any) bool { return m["type"] == "backup_status" && m["status"] == s }
}

func TestProgressInOrderToTheRightSubscribers(t *testing.T) {
	w := newWorld(t, publish.Config{})
	orgA, orgB := api.NewID(time.Now()), api.NewID(time.Now().Add(time.Millisecond))
	b := w.backup(orgA)
	alice := w.connect(orgA, b.ID) // this backup
	ann := w.connect(orgA, "*")    // every backup of A
	bob := w.connect(orgB, "*")    // another organization

	const positions = 200
	providers := []string{"supabase", "s3", "gcs"}
	ctx := t.Context()
	ev := func(p string, st catalog.ReplicaState, n int64) replicate.ProgressEvent {
		return replicate.ProgressEvent{BackupID: b.ID, OrganizationID: orgA, Provider: p, State: st, Bytes: n, Total: b.Size, At: time.Now()}
	}
	for _, p := range providers {
		w.pub.Progress(ctx, ev(p, catalog.ReplicaCopying, 0))
	}
	for i := int64(1); i <= positions; i++ {
		for _, p := range providers {
			w.pub.Progress(ctx, ev(p, catalog.ReplicaCopying, i*b.Size/positions))
		}
	}
	for i, p := range providers {
		e := ev(p, catalog.ReplicaVerified, b.Size)
		e.BackupStatus = catalog.StatusAtRisk
		if i == len(providers)-1 {
			e.BackupStatus = catalog.StatusProtected
		}
		w.pub.Progress(ctx, e) // returns once delivered
	}
	w.pub.ProviderHealth(ctx, publish.ProviderHealth{Provider: "gcs", State: "down", Breaker: "open", Latency: 1500 * time.Millisecond,
		LastError: strings.Repeat("connection reset; ", 200)})

	for name, cl := range map[string]*client{"alice": alice, "ann": ann} {
		got := cl.until(t, isStatus("PROTECTED"))
		checkOrder(t, name, got, providers, b.Size, positions)
	}
	// provider health goes to "*" subscribers of every organization, and
	// it is the first thing bob hears: nothing of A's backup reached him.
	for name, cl := range map[string]*client{"ann": ann, "bob": bob} {
		m := cl.next(t)
		if m["type"] != "provider_health" || m["provider"] != "gcs" || m["state"] != "down" || m["latencyMs"] != 1500.0 {
			t.Errorf("%s: %v, want gcs down", name, m)
		}
		if e, _ := m["error"].(string); len(e) > 1100 {
			t.Errorf("%s: error text of %d bytes not clipped", name, len(e))
		}
	}
	if s := w.pub.Stats(); s.Gone != 0 || s.Failed != 0 || s.Throttled == 0 {
		t.Errorf("stats %+v: want no failures, and progress positions coalesced", s)
	}
}

// checkOrder: for each provider, replica_state COPYING first, then
// positions that never go back, then backup_progress verified at 100 %
// and replica_state VERIFIED; the last message is backup_status PROTECTED;
// and far fewer positions than were published.
func checkOrder(t *testing.T, who string, msgs []map[string]any, providers []string, total int64, positions int) {
	t.Helper()
	type seen struct {
		state    string
		last     float64
		progress int
		verified bool
	}
	per := map[string]*seen{}
	for _, p := range providers {
		per[p] = &seen{}
	}
	for i, m := range msgs {
		p, _ := m["provider"].(string)
		s := per[p]
		switch m["type"] {
		case "replica_state":
			if m["state"] == "COPYING" && s.state != "" || m["state"] == "VERIFIED" && !s.verified {
				t.Errorf("%s: %s replica_state %v out of order (message %d)", who, p, m["state"], i)
			}
			s.state = m["state"].(string)
		case "backup_progress":
			b := m["bytes"].(float64)
			if s.state != "COPYING" || b < s.last {
				t.Errorf("%s: %s progress %v after state %q at %v bytes", who, p, m, s.state, s.last)
			}
			s.last = b
			if m["step"] == "verified" {
				s.verified = true
				if b != float64(total) || m["percent"] != 100.0 {
					t.Errorf("%s: %s final progress %v", who, p, m)
				}
			} else {
				s.progress++
			}
			if _, ok := m["timestamp"].(string); !ok {
				t.Errorf("%s: no timestamp in %v", who, m)
			}
		case "backup_status":
			if i != len(msgs)-1 && m["status"] == "PROTECTED" {
				t.Errorf("%s: PROTECTED before the end", who)
			}
		default:
			t.Errorf("%s: unexpected %v", who, m)
		}
	}
	for _, p := range providers {
		s := per[p]
		if s.state != "VERIFIED" || !s.verified {
			t.Errorf("%s: %s ended in %q (final progress %v)", who, p, s.state, s.verified)
		}
		if s.progress < 1 || s.progress > positions/10 {
			t.Errorf("%s: %s sent %d of %d positions; want a few (throttled)", who, p, s.progress, positions)
		}
	}
	if t.Failed() {
		b, _ := json.Marshal(msgs)
		t.Logf("%s received: %s", who, b)
	}
	t.Logf("%s received %d messages", who, len(msgs))
}
