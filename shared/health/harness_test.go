package health

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/wedsync/backup-replication/infra/emulator"
	"github.com/wedsync/backup-replication/infra/faultproxy"
	"github.com/wedsync/backup-replication/shared/alert"
	"github.com/wedsync/backup-replication/shared/breaker"
	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/config"
	"github.com/wedsync/backup-replication/shared/policy"
	"github.com/wedsync/backup-replication/shared/providers"
	"github.com/wedsync/backup-replication/shared/replicate"
	"github.com/wedsync/backup-replication/shared/secret"
	"github.com/wedsync/backup-replication/shared/storage"
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

// testPolicy is the production shape: Supabase primary, S3 secondary, GCS
// offsite.
var testPolicy = policy.Table{Providers: []policy.Provider{
	{Name: "supabase", Role: policy.RolePrimary, Cloud: "supabase", Domain: "emu", Order: 1},
	{Name: "s3", Role: policy.RoleSecondary, Cloud: "aws", Domain: "replica", Order: 2},
	{Name: "gcs", Role: policy.RoleOffsite, Cloud: "gcp", Domain: "emu", Order: 3},
}, MinCopies: 3, MinDomains: 2, MinOutsideAWS: 1}

// world is one test's system: moto (landing and S3 buckets, tables,
// queues, the alert topic), fake-gcs-server and the Supabase emulator, each
// of the last two behind a fault proxy, and a Handler over all of it.
type world struct {
	t       *testing.T
	ctx     context.Context
	awsCfg  aws.Config
	s3      *s3.Client
	sqs     *sqs.Client
	cat     *catalog.Dynamo
	store   *Store
	landing string
	// providers go through the proxies; direct ones reach the emulators
	// (to break copies behind the handler's back).
	providers map[string]storage.Provider
	direct    map[string]storage.Provider
	proxy     map[string]*faultproxy.Server
	gcs       *emulator.GCS
	gcsBucket string
	queues    map[string]Queue
	breakers  map[string]*breaker.Breaker
	alertQ    string
	alerts    *alert.Manager
	cfg       Config
	h         *Handler
	logs      *bytes.Buffer
	// env is the environment a deployment on this world reads (Wire).
	env map[string]string
}

func newWorld(t *testing.T, tune func(*Config)) *world {
	t.Helper()
	emulator.Require(t, motoErr)
	g, err := emulator.StartGCS()
	emulator.Require(t, err)
	t.Cleanup(func() { g.Close() })
	sb, err := emulator.StartSupabase("")
	emulator.Require(t, err)
	t.Cleanup(func() { sb.Close() })
	ctx := t.Context()
	awsCfg, _ := moto.AWSConfig(ctx)
	n := randHex()
	w := &world{t: t, ctx: ctx, awsCfg: awsCfg, gcs: g, logs: &bytes.Buffer{},
		s3: s3.NewFromConfig(awsCfg, func(o *s3.Options) { o.UsePathStyle = true }), sqs: sqs.NewFromConfig(awsCfg),
		landing: "landing-" + n, proxy: map[string]*faultproxy.Server{}, queues: map[string]Queue{}}
	w.proxy["gcs"] = startProxy(t, g.URL, faultproxy.GCS)
	w.proxy["supabase"] = startProxy(t, sb.URL, faultproxy.Supabase)
	for _, b := range []string{w.landing, "s3-" + n} {
		if _, err := w.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(b)}); err != nil {
			t.Fatal(err)
		}
	}
	w.gcsBucket = "gcs-" + n
	if err := g.CreateBucket(w.gcsBucket); err != nil {
		t.Fatal(err)
	}
	pc := func(gcsURL, supaURL string) config.Providers {
		return config.Providers{
			Supabase: config.Supabase{URL: supaURL, Bucket: "supa-" + n, ServiceKey: secret.Secret(sb.ServiceKey)},
			S3: config.S3{Name: "s3", Bucket: "s3-" + n, Region: emulator.MotoRegion, Endpoint: moto.URL, UsePathStyle: true,
				AccessKeyID: emulator.MotoAccessKeyID, SecretAccessKey: emulator.MotoSecretAccessKey},
			GCS: config.GCS{Bucket: "gcs-" + n, Endpoint: gcsURL + "/storage/v1/"},
		}
	}
	if w.providers, err = providers.Build(ctx, pc(w.proxy["gcs"].URL, w.proxy["supabase"].URL), awsCfg, nil); err != nil {
		t.Fatal(err)
	}
	if w.direct, err = providers.Build(ctx, pc(g.URL, sb.URL), awsCfg, nil); err != nil {
		t.Fatal(err)
	}
	if err := w.direct["supabase"].(interface{ EnsureBucket(context.Context) error }).EnsureBucket(ctx); err != nil {
		t.Fatal(err)
	}

	db := dynamodb.NewFromConfig(awsCfg)
	tables := catalog.Config{BackupsTable: "backups-" + n, ReplicasTable: "replicas-" + n}
	if err := catalog.EnsureTables(ctx, db, tables); err != nil {
		t.Fatal(err)
	}
	if w.cat, err = catalog.NewDynamo(db, tables); err != nil {
		t.Fatal(err)
	}
	if err := EnsureTable(ctx, db, "health-"+n); err != nil {
		t.Fatal(err)
	}
	if w.store, err = NewStore(db, "health-"+n); err != nil {
		t.Fatal(err)
	}
	if err := breaker.EnsureTable(ctx, db, "breakers-"+n); err != nil {
		t.Fatal(err)
	}
	bstore, _ := breaker.NewDynamoStore(db, "breakers-"+n)
	w.breakers = map[string]*breaker.Breaker{}
	for _, p := range testPolicy.Providers {
		if w.breakers[p.Name], err = breaker.New(bstore, breaker.Settings{Name: p.Name}); err != nil {
			t.Fatal(err)
		}
		w.queues[p.Name] = Queue{URL: w.queue(p.Name + "-" + n), DLQURL: w.queue(p.Name + "-dlq-" + n)}
	}

	sn := sns.NewFromConfig(awsCfg)
	topic, err := sn.CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String("alerts-" + n)})
	if err != nil {
		t.Fatal(err)
	}
	w.alertQ = w.queue("alerts-" + n)
	if _, err := sn.Subscribe(ctx, &sns.SubscribeInput{TopicArn: topic.TopicArn, Protocol: aws.String("sqs"),
		Endpoint: aws.String(w.queueArn(w.alertQ))}); err != nil {
		t.Fatal(err)
	}
	if w.alerts, err = alert.New(db, alert.Config{Table: "health-" + n, Stage: "test"},
		[]alert.Channel{alert.SNS(sn, *topic.TopicArn)}, nil); err != nil {
		t.Fatal(err)
	}

	w.env = map[string]string{
		"AWS_REGION": emulator.MotoRegion, "AWS_ENDPOINT_URL": moto.URL, "LANDING_BUCKET": w.landing,
		"BACKUPS_TABLE": tables.BackupsTable, "REPLICAS_TABLE": tables.ReplicasTable, "BREAKERS_TABLE": "breakers-" + n,
		"HEALTH_TABLE": "health-" + n, "ALERT_TOPIC_ARN": *topic.TopicArn,
		"SUPABASE_URL": sb.URL, "SUPABASE_BUCKET": "supa-" + n, "SUPABASE_SERVICE_KEY": sb.ServiceKey,
		"S3_REPLICA_BUCKET": "s3-" + n, "S3_REPLICA_ACCESS_KEY_ID": emulator.MotoAccessKeyID,
		"S3_REPLICA_SECRET_ACCESS_KEY": emulator.MotoSecretAccessKey, "GCS_BUCKET": w.gcsBucket, "GCS_ENDPOINT": g.URL,
		"SUPABASE_QUEUE_URL": w.queues["supabase"].URL, "SUPABASE_DLQ_URL": w.queues["supabase"].DLQURL,
		"S3_QUEUE_URL": w.queues["s3"].URL, "S3_DLQ_URL": w.queues["s3"].DLQURL,
		"GCS_QUEUE_URL": w.queues["gcs"].URL, "GCS_DLQ_URL": w.queues["gcs"].DLQURL,
	}
	w.cfg = Config{Stage: "test", Providers: testPolicy.Names(), LandingBucket: w.landing, Queues: w.queues,
		SingleRound: true, ProbeTimeout: 5 * time.Second, AtRiskAlertAfter: time.Hour, ReconcileGrace: time.Minute,
		RedriveMode: RedriveCopy}
	if tune != nil {
		tune(&w.cfg)
	}
	w.h, err = New(w.cfg, Deps{Providers: w.providers, Breakers: w.breakers, Catalog: w.cat, Policy: testPolicy,
		Store: w.store, Alerts: w.alerts, Queues: w.sqs, Landing: replicate.NewLanding(w.s3, w.landing, moto.URL),
		Logger: slog.New(slog.NewJSONHandler(w.logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func startProxy(t *testing.T, target string, f faultproxy.Flavor) *faultproxy.Server {
	t.Helper()
	p, err := faultproxy.Start(target, faultproxy.Options{Flavor: f})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func (w *world) queue(name string) string {
	w.t.Helper()
	out, err := w.sqs.CreateQueue(w.ctx, &sqs.CreateQueueInput{QueueName: aws.String(name)})
	if err != nil {
		w.t.Fatal(err)
	}
	return *out.QueueUrl
}

func (w *world) queueArn(url string) string {
	out, err := w.sqs.GetQueueAttributes(w.ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		w.t.Fatal(err)
	}
	return out.Attributes["QueueArn"]
}

// drain receives and deletes every message in url and returns their bodies.
func (w *world) drain(url string) []string {
	w.t.Helper()
	var out []string
	for {
		r, err := w.sqs.ReceiveMessage(w.ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10})
		if err != nil {
			w.t.Fatal(err)
		}
		if len(r.Messages) == 0 {
			return out
		}
		for _, m := range r.Messages {
			out = append(out, *m.Body)
			w.sqs.DeleteMessage(w.ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle})
		}
	}
}

// sent is an alert as the topic's subscriber queue received it.
type sent struct {
	Subject, Message  string
	MessageAttributes map[string]struct{ Value string }
}

func (s sent) incident() string { return s.MessageAttributes["incident"].Value }
func (s sent) phase() string    { return s.MessageAttributes["phase"].Value }

// alertsSent returns the alerts published since the last call.
func (w *world) alertsSent() []sent {
	w.t.Helper()
	var out []sent
	for _, body := range w.drain(w.alertQ) {
		var s sent
		if err := json.Unmarshal([]byte(body), &s); err != nil {
			w.t.Fatalf("SNS envelope: %v", err)
		}
		out = append(out, s)
	}
	return out
}

// events parses the replicate events waiting in provider's queue.
func (w *world) events(provider string) []replicate.ObjectEvent {
	w.t.Helper()
	var out []replicate.ObjectEvent
	for _, body := range w.drain(w.queues[provider].URL) {
		ev, err := replicate.ParseEvent(body)
		if err != nil {
			w.t.Fatalf("queued message is not an event replicate reads: %v\n%s", err, body)
		}
		out = append(out, ev)
	}
	return out
}

// backup lands data as a new backup and makes verified copies of it on
// the named providers; the backup's standing follows the policy.
func (w *world) backup(data []byte, landedAgo time.Duration, verifiedOn ...string) catalog.Backup {
	w.t.Helper()
	sum := sha256.Sum256(data)
	org, id := "org-"+randHex(), "b-"+randHex()
	key := replicate.LandingPrefix + org + "/" + id
	if _, err := w.s3.PutObject(w.ctx, &s3.PutObjectInput{Bucket: aws.String(w.landing), Key: aws.String(key),
		Body: bytes.NewReader(data)}); err != nil {
		w.t.Fatal(err)
	}
	landed := time.Now().Add(-landedAgo).UTC()
	b, _, err := w.cat.CreateBackup(w.ctx, catalog.Backup{ID: id, OrganizationID: org, Name: "wedding " + id + ".tar.gz",
		Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:]), ContentType: "application/gzip", LandingKey: key,
		Status: catalog.StatusReplicating, LandedAt: &landed, CreatedAt: landed})
	if err != nil {
		w.t.Fatal(err)
	}
	for _, name := range verifiedOn {
		if _, err := w.direct[name].Put(w.ctx, key, bytes.NewReader(data), b.Size, storage.PutOptions{SHA256: b.SHA256}); err != nil {
			w.t.Fatalf("put on %s: %v", name, err)
		}
		w.replica(b, name, catalog.ReplicaVerified)
	}
	if _, err := w.h.settle(w.ctx, b.ID); err != nil {
		w.t.Fatal(err)
	}
	b, _ = w.cat.GetBackup(w.ctx, b.ID)
	return b
}

// replica records b's copy on provider in state.
func (w *world) replica(b catalog.Backup, provider string, state catalog.ReplicaState) {
	w.t.Helper()
	want, size := policy.CopyDigest(b)
	r := catalog.Replica{BackupID: b.ID, Provider: provider, State: state, Key: b.LandingKey, Bytes: size, Attempts: 1}
	if state == catalog.ReplicaVerified {
		now := time.Now().UTC()
		r.VerifiedSHA256, r.Evidence, r.VerifiedAt = want, "test", &now
	}
	if state == catalog.ReplicaFailed {
		r.LastError, r.LastErrorKind = "gcs put: transient: 503", "transient"
	}
	if cur, err := w.cat.GetReplica(w.ctx, b.ID, provider); err == nil {
		r.Version = cur.Version
	}
	if _, err := w.cat.PutReplica(w.ctx, r); err != nil {
		w.t.Fatal(err)
	}
}

// read returns provider's copy of key, through the direct client.
func (w *world) read(provider, key string) []byte {
	w.t.Helper()
	rc, err := w.direct[provider].Get(w.ctx, key, 0, -1)
	if err != nil {
		w.t.Fatalf("read %s from %s: %v", key, provider, err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	buf.ReadFrom(rc)
	return buf.Bytes()
}

// round runs one round and returns provider's part of it.
func (w *world) round(provider string) ProviderRound {
	w.t.Helper()
	for _, p := range w.h.Round(w.ctx).Providers {
		if p.Provider == provider {
			return p
		}
	}
	w.t.Fatalf("no round for %s", provider)
	return ProviderRound{}
}

func randHex() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// payload is size bytes of wedding-ish data.
func payload(size int) []byte {
	return []byte(strings.Repeat("Guest list: Ana & Bruno, table 7; ", size/34+1))[:size]
}
