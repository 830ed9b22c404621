package tests

// Live progress end to end, in process: the real API handler (with the
// dashboard), the real ws handler behind the local WebSocket gateway, the
// real seal step (KMS and the keys table on moto), the real replicate
// handlers copying the sealed object to the three real providers on their
// emulators, and the one publisher between replicate and the sockets.
//
// What is not the deployed path: the S3 "Object Created" → EventBridge →
// SQS → Lambda chain. The test hands each replicate handler the SQS event
// EventBridge would deliver (the local stack plays that chain, but its
// replicate functions do not publish progress until replicate.Wire takes a
// publisher; see the report of helper I6).

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/coder/websocket"

	"github.com/wedsync/backup-replication/infra/emulator"
	"github.com/wedsync/backup-replication/infra/local/apiclient"
	"github.com/wedsync/backup-replication/infra/local/stack"
	"github.com/wedsync/backup-replication/infra/local/wsgateway"
	"github.com/wedsync/backup-replication/shared/api"
	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/config"
	"github.com/wedsync/backup-replication/shared/dashboard"
	"github.com/wedsync/backup-replication/shared/keys"
	"github.com/wedsync/backup-replication/shared/providers"
	"github.com/wedsync/backup-replication/shared/publish"
	"github.com/wedsync/backup-replication/shared/replicate"
	"github.com/wedsync/backup-replication/shared/sealer"
	"github.com/wedsync/backup-replication/shared/storage"
	"github.com/wedsync/backup-replication/shared/ws"
)

// liveProviders are the providers a live world copies to.
var liveProviders = []string{config.NameSupabase, config.NameS3, config.NameGCS}

// liveWorld is the system assembled in this process on the emulators.
type liveWorld struct {
	t        *testing.T
	moto     *emulator.Moto
	gcs      *emulator.GCS
	supabase *emulator.Supabase
	awsCfg   aws.Config
	env      map[string]string
	gateway  *wsgateway.Gateway
	conns    *ws.Dynamo
	pub      *publish.Publisher
	apiURL   string
	handlers map[string]*replicate.Handler
	sealer   *sealer.Handler
	store    *catalog.Dynamo
	// providers are the replica providers as the handlers use them.
	providers map[string]storage.Provider
	wsFunc    wsgateway.Function
	log       *slog.Logger
	// dropDisconnect makes the gateway's $disconnect events vanish, as a
	// lost $disconnect does on AWS (its delivery is best effort).
	dropDisconnect bool
}

// newLiveWorld starts the emulators and wires the system; withCopies adds
// the providers, the replicate handlers and the API.
func newLiveWorld(t *testing.T, withCopies bool) *liveWorld {
	t.Helper()
	ctx := t.Context()
	w := &liveWorld{t: t, handlers: map[string]*replicate.Handler{}, providers: map[string]storage.Provider{}}
	var err error
	w.moto, err = emulator.StartMoto(ctx)
	emulator.Require(t, err)
	t.Cleanup(func() { w.moto.Close() })
	w.awsCfg, _ = w.moto.AWSConfig(ctx)
	logFile, err := os.Create(filepath.Join(artifactsDir(t), strings.ReplaceAll(t.Name(), "/", "_")+".log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logFile.Close() })
	w.log = slog.New(slog.NewJSONHandler(&lockedWriter{w: logFile}, &slog.HandlerOptions{Level: slog.LevelDebug}))

	suffix := strings.ToLower(api.NewID(time.Now())[18:])
	w.env = map[string]string{
		"AWS_REGION": emulator.MotoRegion, "AWS_ENDPOINT_URL": w.moto.URL,
		"LANDING_BUCKET": "landing-" + suffix, "BACKUPS_TABLE": "backups-" + suffix, "REPLICAS_TABLE": "replicas-" + suffix,
		"CONNECTIONS_TABLE": "connections-" + suffix,
		"API_JWT_SECRET":    stack.DevJWTSecret, "API_JWT_ISSUER": stack.DevJWTIssuer, "API_JWT_AUDIENCE": stack.DevJWTAudience,
	}
	db := dynamodb.NewFromConfig(w.awsCfg)
	if err := catalog.EnsureTables(ctx, db, catalog.Config{BackupsTable: w.env["BACKUPS_TABLE"], ReplicasTable: w.env["REPLICAS_TABLE"]}); err != nil {
		t.Fatal(err)
	}
	if err := ws.EnsureTables(ctx, db, w.env["CONNECTIONS_TABLE"]); err != nil {
		t.Fatal(err)
	}
	w.conns, _ = ws.NewDynamo(db, w.env["CONNECTIONS_TABLE"], nil)

	// The WebSocket API: the ws handler (wired from its settings, as
	// functions/ws does) behind the gateway.
	var h *ws.Handler
	w.wsFunc = wsgateway.FunctionFunc(func(ctx context.Context, ev events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
		if w.dropDisconnect && ev.RequestContext.RouteKey == ws.RouteDisconnect {
			return events.APIGatewayProxyResponse{StatusCode: 200}, nil
		}
		return h.Handle(ctx, ev)
	})
	w.gateway = wsgateway.New(wsgateway.Config{Logger: w.log, Function: w.wsFunc})
	if err := w.gateway.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.gateway.Close() })
	w.env["WS_ENDPOINT"] = w.gateway.Endpoint()
	settings, err := ws.LoadSettings(config.Map(w.env))
	if err != nil {
		t.Fatal(err)
	}
	if h, err = ws.Wire(ctx, settings, w.awsCfg, w.log.With("function", "ws")); err != nil {
		t.Fatal(err)
	}
	if w.pub, err = publish.Wire(w.awsCfg, w.env["WS_ENDPOINT"], w.env["CONNECTIONS_TABLE"], publish.Config{}, w.log.With("component", "publish")); err != nil {
		t.Fatal(err)
	}
	if withCopies {
		w.startCopies()
	}
	return w
}

// startCopies starts the GCS and Supabase emulators, creates every bucket,
// and wires the API and one replicate handler per provider.
func (w *liveWorld) startCopies() {
	t, ctx := w.t, w.t.Context()
	var err error
	w.gcs, err = emulator.StartGCS()
	emulator.Require(t, err)
	t.Cleanup(func() { w.gcs.Close() })
	w.supabase, err = emulator.StartSupabase("")
	emulator.Require(t, err)
	t.Cleanup(func() { w.supabase.Close() })
	w.env["S3_REPLICA_BUCKET"] = "replica-" + strings.ToLower(api.NewID(time.Now())[18:])
	// Spelled as the local stack spells it (shared/config trims the slash;
	// before 8b26a2a that broke resumable uploads over 32 MiB).
	w.env["GCS_BUCKET"], w.env["GCS_ENDPOINT"] = "offsite", w.gcs.URL+"/storage/v1/"
	w.env["SUPABASE_URL"], w.env["SUPABASE_BUCKET"], w.env["SUPABASE_SERVICE_KEY"] = w.supabase.URL, "backups", w.supabase.ServiceKey
	orgKey, err := kms.NewFromConfig(w.awsCfg).CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("organisations' key")})
	if err != nil {
		t.Fatal(err)
	}
	w.env["KEYS_TABLE"], w.env["KMS_KEY_ID"] = "keys-"+strings.ToLower(api.NewID(time.Now())[18:]), aws.ToString(orgKey.KeyMetadata.Arn)
	if err := keys.EnsureTable(ctx, dynamodb.NewFromConfig(w.awsCfg), w.env["KEYS_TABLE"]); err != nil {
		t.Fatal(err)
	}
	s3c := s3.NewFromConfig(w.awsCfg, func(o *s3.Options) { o.UsePathStyle = true })
	for _, b := range []string{w.env["LANDING_BUCKET"], w.env["S3_REPLICA_BUCKET"]} {
		if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(b)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.gcs.CreateBucket("offsite"); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(ctx, "POST", w.supabase.URL+"/storage/v1/bucket", strings.NewReader(`{"id":"backups","name":"backups","public":false}`))
	req.Header.Set("Authorization", "Bearer "+w.supabase.ServiceKey)
	req.Header.Set("Content-Type", "application/json")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode/100 != 2 {
		t.Fatalf("supabase bucket: %v %v", err, resp)
	}

	// The API, with the dashboard at GET /, wired as functions/api does.
	apiCfg, err := config.LoadAPI(config.Map(w.env))
	if err != nil {
		t.Fatal(err)
	}
	handler, err := api.Wire(ctx, apiCfg, api.Env{AuthMode: api.AuthModeJWT}, w.awsCfg, w.log.With("function", "api"),
		dashboard.New(dashboard.Config{WebSocketURL: w.gateway.URL()}))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	w.apiURL = srv.URL

	// One replicate handler per provider: replicate.Wire's parts plus the
	// publisher (replicate.Wire has no seam for it yet).
	for _, name := range liveProviders {
		env := map[string]string{"PROVIDER": name}
		for k, v := range w.env {
			env[k] = v
		}
		cfg, err := config.LoadReplicate(config.Map(env))
		if err != nil {
			t.Fatal(err)
		}
		ps, err := providers.Build(ctx, cfg.Providers.Select(name), w.awsCfg, w.log)
		if err != nil {
			t.Fatal(err)
		}
		store, _ := catalog.NewDynamo(dynamodb.NewFromConfig(w.awsCfg), catalog.Config{BackupsTable: cfg.Tables.Backups, ReplicasTable: cfg.Tables.Replicas})
		h, err := replicate.New(replicate.Config{Provider: name, LandingBucket: cfg.LandingBucket}, replicate.Deps{
			Provider: ps[name], Landing: replicate.NewLanding(s3c, cfg.LandingBucket, w.moto.URL), Store: store,
			Policy: cfg.Policy, Logger: w.log.With("function", "replicate", "provider", name), Progress: w.pub,
		})
		if err != nil {
			t.Fatal(err)
		}
		w.handlers[name] = h
		w.providers[name] = ps[name]
	}
	// The seal step, wired as functions/seal does.
	sc, err := config.LoadSeal(config.Map(w.env))
	if err != nil {
		t.Fatal(err)
	}
	if w.sealer, err = sealer.Wire(ctx, sc, w.awsCfg, w.log.With("function", "seal"), io.Discard); err != nil {
		t.Fatal(err)
	}
	w.store, _ = catalog.NewDynamo(dynamodb.NewFromConfig(w.awsCfg), catalog.Config{BackupsTable: w.env["BACKUPS_TABLE"], ReplicasTable: w.env["REPLICAS_TABLE"]})
}

// upload registers a backup through the API and uploads its bytes.
func (w *liveWorld) upload(ctx context.Context, c *apiclient.Client, org, name string, data liveData) (catalog.Backup, error) {
	size := data.size
	created, err := c.CreateBackup(ctx, api.CreateBackupRequest{OrganizationID: org, Name: name, Size: &size,
		SHA256: data.sha256(), ContentType: "application/gzip", IdempotencyKey: api.NewID(time.Now())})
	if err != nil {
		return catalog.Backup{}, err
	}
	return created.Backup, c.Upload(ctx, created.Upload, data, data.size)
}

// replicate delivers the upload's "Object Created" event to the seal step,
// then its sealed object's to every provider's handler at once, as their
// SQS queues would, and reports batch item failures; it returns the
// sealed backup.
func (w *liveWorld) replicate(ctx context.Context, b catalog.Backup) (catalog.Backup, error) {
	event := func(key string, size int64) string {
		return fmt.Sprintf(`{"version":"0","id":"%s","detail-type":"Object Created","source":"aws.s3","account":"123456789012",
"time":"%s","region":"us-east-1","resources":["arn:aws:s3:::%s"],"detail":{"version":"0","bucket":{"name":"%s"},
"object":{"key":"%s","size":%d,"etag":"x","sequencer":"00"},"request-id":"R","requester":"123456789012","reason":"PutObject"}}`,
			api.NewID(time.Now()), time.Now().UTC().Format(time.RFC3339), w.env["LANDING_BUCKET"], w.env["LANDING_BUCKET"], key, size)
	}
	msg := func(id, body string) events.SQSEvent {
		return events.SQSEvent{Records: []events.SQSMessage{{MessageId: id, Body: body, Attributes: map[string]string{"ApproximateReceiveCount": "1"}}}}
	}
	if resp, err := w.sealer.Handle(ctx, msg("m-seal", event(b.LandingKey, b.Size))); err != nil || len(resp.BatchItemFailures) > 0 {
		return b, fmt.Errorf("seal: the message went back to the queue (see the test's log) %v", err)
	}
	sb, err := w.store.GetBackup(ctx, b.ID)
	if err != nil || sb.Seal == nil {
		return b, fmt.Errorf("backup %s not sealed (%v)", b.ID, err)
	}
	body := event(sb.Seal.Key, sb.Seal.CipherSize)
	var wg sync.WaitGroup
	errs := make([]error, len(liveProviders))
	for i, name := range liveProviders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := w.handlers[name].Handle(ctx, msg("m-"+name, body))
			if err == nil && len(resp.BatchItemFailures) > 0 {
				err = fmt.Errorf("%s: the message went back to the queue (see the test's log)", name)
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return sb, err
		}
	}
	return sb, nil
}

// liveClient is a Go WebSocket client of the gateway.
type liveClient struct {
	conn *websocket.Conn
	msgs chan map[string]any
}

func (w *liveWorld) dial(org string, subscribe ...string) *liveClient {
	w.t.Helper()
	ctx := w.t.Context()
	c, _, err := websocket.Dial(ctx, w.gateway.URL()+"?token="+stack.DevToken(org, time.Hour), nil)
	if err != nil {
		w.t.Fatalf("dial: %v", err)
	}
	c.SetReadLimit(wsgateway.MaxMessage)
	w.t.Cleanup(func() { c.CloseNow() })
	lc := &liveClient{conn: c, msgs: make(chan map[string]any, 100000)}
	go func() {
		defer close(lc.msgs)
		for {
			_, b, err := c.Read(context.Background())
			if err != nil {
				return
			}
			var m map[string]any
			if json.Unmarshal(b, &m) == nil {
				lc.msgs <- m
			}
		}
	}()
	for _, id := range subscribe {
		c.Write(ctx, websocket.MessageText, []byte(`{"action":"subscribe","backupId":"`+id+`"}`))
		if m := lc.next(w.t, 30*time.Second); m["type"] != "subscribed" {
			w.t.Fatalf("subscribe %s: %v", id, m)
		}
	}
	return lc
}

func (c *liveClient) next(t *testing.T, timeout time.Duration) map[string]any {
	t.Helper()
	select {
	case m, ok := <-c.msgs:
		if !ok {
			t.Fatal("the connection closed")
		}
		return m
	case <-time.After(timeout):
		t.Fatalf("no message within %s", timeout)
	}
	return nil
}

// TestLiveProgressOf100MiBBackup: a client subscribed to a 100 MiB backup
// receives, for every provider, COPYING, positions that only go forward
// and the final verified state at 100 %, and backup_status PROTECTED once,
// when the copies are verified (the last copy's own VERIFIED may follow it
// by a moment: the three replicate functions run apart).
func TestLiveProgressOf100MiBBackup(t *testing.T) {
	w := newLiveWorld(t, true)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	org := api.NewID(time.Now())
	c := apiclient.New(w.apiURL, stack.DevToken(org, time.Hour))
	data := liveData{seed: 191, size: 100 << 20}
	size := data.size
	created, err := c.CreateBackup(ctx, api.CreateBackupRequest{OrganizationID: org, Name: "Silva & Okafor — full archive.tar.gz",
		Size: &size, SHA256: data.sha256(), ContentType: "application/gzip", IdempotencyKey: api.NewID(time.Now())})
	if err != nil {
		t.Fatal(err)
	}
	b := created.Backup
	client := w.dial(org, b.ID)
	if err := c.Upload(ctx, created.Upload, data, data.size); err != nil {
		t.Fatal(err)
	}
	sealed, err := w.replicate(ctx, b)
	if err != nil {
		t.Fatal(err)
	}

	// Read until PROTECTED and every provider's final state. Each replicate
	// function publishes its own copy's messages in order, but the three
	// run apart (three Lambdas): the one whose policy check sees the third
	// verified copy first says PROTECTED, possibly just before the last
	// copy's own function has said VERIFIED.
	var msgs []map[string]any
	final := map[string]bool{}
	for protected := false; !protected || len(final) < len(liveProviders); {
		m := client.next(t, 2*time.Minute)
		msgs = append(msgs, m)
		switch {
		case m["type"] == "backup_status" && m["status"] == "PROTECTED":
			protected = true
		case m["type"] == "replica_state" && m["state"] == "VERIFIED":
			final[m["provider"].(string)] = true
		}
	}
	// The copies are the sealed bytes: progress counts those.
	checkLiveOrder(t, msgs, b.ID, sealed.Seal.CipherSize)
	if d, err := c.Backup(ctx, b.ID); err != nil || d.Backup.Status != catalog.StatusProtected {
		t.Errorf("the catalog says %s (%v), the socket said PROTECTED", d.Backup.Status, err)
	}
	if s := w.pub.Stats(); s.Failed != 0 {
		t.Errorf("publisher stats %+v", s)
	}
}

// checkLiveOrder checks one subscriber's messages for a backup.
func checkLiveOrder(t *testing.T, msgs []map[string]any, backupID string, total int64) {
	t.Helper()
	type track struct {
		state     string
		bytes     float64
		positions int
		final     bool
	}
	per := map[string]*track{}
	for _, p := range liveProviders {
		per[p] = &track{}
	}
	countFinal := func(per map[string]*track) int {
		n := 0
		for _, tr := range per {
			if tr.final {
				n++
			}
		}
		return n
	}
	protected := 0
	for i, m := range msgs {
		if m["backupId"] != backupID {
			t.Errorf("message %d is about another backup: %v", i, m)
			continue
		}
		p, _ := m["provider"].(string)
		tr := per[p]
		switch m["type"] {
		case "replica_state":
			want := map[string]bool{"COPYING": tr.state == "", "VERIFIED": tr.final}[m["state"].(string)]
			if !want {
				t.Errorf("%s: replica_state %v out of order (message %d)", p, m["state"], i)
			}
			tr.state = m["state"].(string)
		case "backup_progress":
			n, _ := m["bytes"].(float64)
			if tr.state != "COPYING" || tr.final || n < tr.bytes || m["total"] != float64(total) {
				t.Errorf("%s: backup_progress %v after state %q, %v bytes (message %d)", p, m, tr.state, tr.bytes, i)
			}
			tr.bytes = n
			if m["step"] == "verified" {
				tr.final = true
				if n != float64(total) || m["percent"] != 100.0 {
					t.Errorf("%s: final progress %v", p, m)
				}
			} else {
				tr.positions++
			}
		case "backup_status":
			if m["status"] == "PROTECTED" {
				protected++
				if verified := countFinal(per); verified < len(liveProviders)-1 {
					t.Errorf("PROTECTED at message %d with only %d copies verified", i, verified)
				}
			}
		default:
			t.Errorf("unexpected message %v", m)
		}
	}
	if protected != 1 {
		t.Errorf("backup_status PROTECTED sent %d times", protected)
	}
	for _, p := range liveProviders {
		tr := per[p]
		if tr.state != "VERIFIED" || !tr.final {
			t.Errorf("%s ended in %q (final progress seen: %v)", p, tr.state, tr.final)
		}
		t.Logf("%s: %d progress positions, then verified", p, tr.positions)
	}
	if t.Failed() {
		b, _ := json.Marshal(msgs)
		t.Logf("messages: %s", b)
	}
}

// TestClosedClientIsRemovedOnNextSend: a client goes away and its
// $disconnect never arrives (API Gateway delivers it on a best-effort
// basis); the next message to it meets GoneException, and its connection
// and subscriptions are gone from the table. Others still receive it.
func TestClosedClientIsRemovedOnNextSend(t *testing.T) {
	w := newLiveWorld(t, false)
	w.dropDisconnect = true
	ctx := t.Context()
	org := api.NewID(time.Now())
	leaver := w.dial(org, "*")
	stayer := w.dial(org, "*")
	ids := w.gateway.Connections()
	if len(ids) != 2 {
		t.Fatalf("gateway has %v", ids)
	}
	leaver.conn.Close(websocket.StatusNormalClosure, "closing the laptop")
	for deadline := time.Now().Add(10 * time.Second); len(w.gateway.Connections()) != 1; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the gateway did not notice the close")
		}
	}
	gone := ids[0]
	if gone == w.gateway.Connections()[0] {
		gone = ids[1]
	}
	if _, err := w.conns.Connection(ctx, gone); err != nil {
		t.Fatalf("without $disconnect the record should still be there: %v", err)
	}
	w.pub.ProviderHealth(ctx, publish.ProviderHealth{Provider: "gcs", State: "down", Breaker: "open", LastError: "connection refused"})
	if err := w.pub.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := w.conns.Connection(ctx, gone); err == nil {
		t.Error("the closed client's connection is still recorded after a send")
	}
	if subs, _ := w.conns.Subscribers(ctx, "", org); len(subs) != 1 || subs[0] == gone {
		t.Errorf("subscribers after the send: %v", subs)
	}
	if m := stayer.next(t, 10*time.Second); m["type"] != "provider_health" || m["provider"] != "gcs" {
		t.Errorf("the open client received %v", m)
	}
	if s := w.pub.Stats(); s.Gone != 1 || s.Posts != 1 {
		t.Errorf("stats %+v, want one post and one gone", s)
	}
}

// liveData is size deterministic bytes (seeded), readable at any offset.
type liveData struct {
	seed uint64
	size int64
}

func (d liveData) ReadAt(p []byte, off int64) (int, error) {
	if off >= d.size {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), d.size-off))
	for i := 0; i < n; i++ {
		x := uint64(off+int64(i))/8 ^ d.seed*0x9E3779B97F4A7C15
		x ^= x >> 29
		x *= 0xBF58476D1CE4E5B9
		p[i] = byte(x >> (8 * ((uint64(off) + uint64(i)) % 8)))
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (d liveData) sha256() string {
	h := sha256.New()
	buf := make([]byte, 1<<20)
	for off := int64(0); off < d.size; off += int64(len(buf)) {
		n, _ := d.ReadAt(buf[:min(int64(len(buf)), d.size-off)], off)
		h.Write(buf[:n])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// lockedWriter serialises log lines from many goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  *os.File
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
