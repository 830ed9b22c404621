package tests

// The world the fault-injection tests run in: real emulators (moto for S3,
// EventBridge, SQS, DynamoDB and KMS; fake-gcs-server; the Supabase
// Storage emulator), a faultproxy in front of each replica provider, the
// real seal step sealing each upload as it lands (played synchronously by
// upload: the faults under test are the providers'), the landing bucket's
// EventBridge notifications of sealed objects routed by one rule per
// provider into that provider's queue (with its dead-letter queue), and
// the real replicate handlers built by replicate.Wire from the same
// variables a deployment reads. The event source mappings are played here, in the test
// process (poll → SQSEvent → Handle → delete what was consumed), not by
// infra/local's stack: the tests steer time and faults per provider and
// read the handlers' decisions directly.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/wedsync/backup-replication/infra/emulator"
	"github.com/wedsync/backup-replication/infra/faultproxy"
	"github.com/wedsync/backup-replication/shared/breaker"
	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/config"
	"github.com/wedsync/backup-replication/shared/keys"
	"github.com/wedsync/backup-replication/shared/replicate"
	"github.com/wedsync/backup-replication/shared/sealer"
	"github.com/wedsync/backup-replication/shared/secret"
	"github.com/wedsync/backup-replication/shared/storage"
	"github.com/wedsync/backup-replication/shared/storage/gcs"
	s3p "github.com/wedsync/backup-replication/shared/storage/s3"
	"github.com/wedsync/backup-replication/shared/storage/supabase"
)

// replicaProviders are the providers with a replicate deployment, in the
// order the tests take them down.
var replicaProviders = []string{config.NameSupabase, config.NameS3, config.NameGCS}

// worldOptions shape a faultWorld.
type worldOptions struct {
	Standby    bool                    // configure the s3-standby bucket (failover)
	MaxReceive int                     // the queues' maxReceiveCount (default 8, the template's)
	Breaker    breaker.Settings        // breaker settings (Name, Logger, OnStateChange are set here)
	Config     func(*replicate.Config) // adjusts every handler's Config
	Now        func() time.Time        // the handlers' clock (default time.Now)
}

// faultQueue is one provider's queue and dead-letter queue.
type faultQueue struct{ URL, DLQ string }

// faultWorld is the running system under test.
type faultWorld struct {
	t        *testing.T
	awsCfg   aws.Config
	s3       *s3.Client
	sqs      *sqs.Client
	db       *dynamodb.Client
	store    *catalog.Dynamo
	landing  string
	buckets  map[string]string             // provider → bucket
	proxies  map[string]*faultproxy.Server // provider → the proxy in front of it
	direct   map[string]storage.Provider   // provider → a client that bypasses the proxy
	queues   map[string]faultQueue         // provider → its queues
	handlers map[string]*replicate.Handler // provider → its handler
	sealer   *sealer.Handler

	mu          sync.Mutex
	transitions map[string][]string // provider → breaker transitions "from>to"
}

// newFaultWorld starts the emulators and proxies and wires the handlers.
func newFaultWorld(t *testing.T, o worldOptions) *faultWorld {
	t.Helper()
	if o.MaxReceive == 0 {
		o.MaxReceive = 8
	}
	ctx := t.Context()
	moto, err := emulator.StartMoto(ctx)
	emulator.Require(t, err)
	t.Cleanup(func() { moto.Close() })
	g, err := emulator.StartGCS()
	emulator.Require(t, err)
	t.Cleanup(func() { g.Close() })
	sb, err := emulator.StartSupabase("")
	emulator.Require(t, err)
	t.Cleanup(func() { sb.Close() })

	w := &faultWorld{t: t, landing: "landing", buckets: map[string]string{config.NameSupabase: "primary",
		config.NameS3: "secondary", config.NameGCS: "offsite", config.NameS3Standby: "standby"},
		proxies: map[string]*faultproxy.Server{}, direct: map[string]storage.Provider{}, queues: map[string]faultQueue{},
		handlers: map[string]*replicate.Handler{}, transitions: map[string][]string{}}
	w.awsCfg, _ = moto.AWSConfig(ctx)
	w.s3 = s3.NewFromConfig(w.awsCfg, func(o *s3.Options) { o.UsePathStyle = true })
	w.sqs = sqs.NewFromConfig(w.awsCfg)
	db := dynamodb.NewFromConfig(w.awsCfg)
	w.db = db
	tables := catalog.Config{BackupsTable: "backups", ReplicasTable: "replicas"}
	check := func(what string, err error) {
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	check("tables", catalog.EnsureTables(ctx, db, tables))
	check("breakers table", breaker.EnsureTable(ctx, db, "breakers"))
	w.store, err = catalog.NewDynamo(db, tables)
	check("catalog", err)
	for _, b := range []string{w.landing, w.buckets[config.NameS3], w.buckets[config.NameS3Standby]} {
		_, err := w.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(b)})
		check("bucket "+b, err)
	}
	_, err = w.s3.PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{Bucket: aws.String(w.landing),
		NotificationConfiguration: &s3types.NotificationConfiguration{EventBridgeConfiguration: &s3types.EventBridgeConfiguration{}}})
	check("landing notifications", err)
	check("gcs bucket", g.CreateBucket(w.buckets[config.NameGCS]))

	for name, target := range map[string]struct {
		url    string
		flavor faultproxy.Flavor
	}{config.NameSupabase: {sb.URL, faultproxy.Supabase}, config.NameS3: {moto.URL, faultproxy.S3}, config.NameGCS: {g.URL, faultproxy.GCS}} {
		px, err := faultproxy.Start(target.url, faultproxy.Options{Flavor: target.flavor})
		check("proxy "+name, err)
		t.Cleanup(func() { px.Close() })
		w.proxies[name] = px
	}
	supa, err := supabase.New(supabase.Config{Name: config.NameSupabase, URL: sb.URL, ServiceKey: secret.Secret(sb.ServiceKey),
		Bucket: w.buckets[config.NameSupabase]}, nil)
	check("supabase", err)
	check("supabase bucket", supa.EnsureBucket(ctx))
	w.direct[config.NameSupabase] = supa
	for _, name := range []string{config.NameS3, config.NameS3Standby} {
		p, err := s3p.New(ctx, s3p.Config{Name: name, Bucket: w.buckets[name], Region: emulator.MotoRegion, Endpoint: moto.URL,
			UsePathStyle: true, AccessKeyID: emulator.MotoAccessKeyID, SecretAccessKey: secret.Secret(emulator.MotoSecretAccessKey)}, nil)
		check(name, err)
		w.direct[name] = p
	}
	gp, err := gcs.New(ctx, gcs.Config{Name: config.NameGCS, Bucket: w.buckets[config.NameGCS], Endpoint: g.Endpoint()}, nil)
	check("gcs", err)
	w.direct[config.NameGCS] = gp

	eb := eventbridge.NewFromConfig(w.awsCfg)
	for _, name := range replicaProviders {
		w.queues[name] = w.createQueues(name, o.MaxReceive)
		check("rule "+name, w.route(eb, name))
	}

	logFile, err := os.Create(filepath.Join(artifactsDir(t), strings.ReplaceAll(t.Name(), "/", "_")+".log"))
	check("log file", err)
	t.Cleanup(func() { logFile.Close() })
	orgKey, err := kms.NewFromConfig(w.awsCfg).CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("organisations' key")})
	check("kms key", err)
	check("keys table", keys.EnsureTable(ctx, db, "keys"))
	ks, err := keys.New(keys.Config{Table: "keys", DefaultKeyID: aws.ToString(orgKey.KeyMetadata.Arn)}, kms.NewFromConfig(w.awsCfg), db)
	check("keys", err)
	w.sealer, err = sealer.New(sealer.Config{LandingBucket: w.landing}, sealer.Deps{Landing: w.s3, Store: w.store, Keys: ks,
		Logger: slog.New(slog.NewJSONHandler(logFile, nil)).With("function", "seal")})
	check("sealer", err)
	for _, name := range replicaProviders {
		env := map[string]string{
			"AWS_REGION": emulator.MotoRegion, "AWS_ENDPOINT_URL": moto.URL, "LANDING_BUCKET": w.landing,
			"BACKUPS_TABLE": tables.BackupsTable, "REPLICAS_TABLE": tables.ReplicasTable, "BREAKERS_TABLE": "breakers",
			"PROVIDER": name, "QUEUE_URL": w.queues[name].URL,
			"SUPABASE_URL": w.proxies[config.NameSupabase].URL, "SUPABASE_BUCKET": w.buckets[config.NameSupabase],
			"SUPABASE_SERVICE_KEY": sb.ServiceKey,
			"S3_REPLICA_BUCKET":    w.buckets[config.NameS3], "S3_REPLICA_ENDPOINT": w.proxies[config.NameS3].URL,
			"GCS_BUCKET": w.buckets[config.NameGCS], "GCS_PROJECT": "wedsync-offsite",
			"GCS_ENDPOINT": w.proxies[config.NameGCS].URL, // the provider appends /storage/v1/
		}
		if o.Standby {
			env["S3_STANDBY_BUCKET"] = w.buckets[config.NameS3Standby] // straight to moto: the standby stays up
		}
		cfg, err := config.LoadReplicate(config.Map(env))
		check("config "+name, err)
		bs := o.Breaker
		bs.OnStateChange = w.recordTransition
		opts := []replicate.Option{replicate.WithBreakerSettings(bs), replicate.WithConfig(func(c *replicate.Config) {
			c.Reserve = time.Second
			if o.Config != nil {
				o.Config(c)
			}
		})}
		if o.Now != nil {
			opts = append(opts, replicate.WithDeps(func(d *replicate.Deps) { d.Now = o.Now }))
		}
		log := slog.New(slog.NewJSONHandler(logFile, nil))
		h, err := replicate.Wire(ctx, cfg, w.awsCfg, log, io.Discard, opts...)
		check("wire "+name, err)
		w.handlers[name] = h
	}
	return w
}

// createQueues creates provider's queue and dead-letter queue, with the
// template's redrive policy.
func (w *faultWorld) createQueues(provider string, maxReceive int) faultQueue {
	w.t.Helper()
	ctx := w.t.Context()
	dlq, err := w.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("replicate-" + provider + "-dlq")})
	if err != nil {
		w.t.Fatal(err)
	}
	dlqArn := w.queueArn(aws.ToString(dlq.QueueUrl))
	q, err := w.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("replicate-" + provider),
		Attributes: map[string]string{"VisibilityTimeout": "30",
			"RedrivePolicy": fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":%d}`, dlqArn, maxReceive)}})
	if err != nil {
		w.t.Fatal(err)
	}
	return faultQueue{URL: aws.ToString(q.QueueUrl), DLQ: aws.ToString(dlq.QueueUrl)}
}

func (w *faultWorld) queueArn(url string) string {
	out, err := w.sqs.GetQueueAttributes(w.t.Context(), &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		w.t.Fatal(err)
	}
	return out.Attributes[string(sqstypes.QueueAttributeNameQueueArn)]
}

// route is the template's fan-out rule: sealed backups → provider's queue.
func (w *faultWorld) route(eb *eventbridge.Client, provider string) error {
	ctx := w.t.Context()
	pattern := fmt.Sprintf(`{"source":["aws.s3"],"detail-type":["Object Created"],"detail":{"bucket":{"name":[%q]},"object":{"key":[{"prefix":"sealed/"}]}}}`, w.landing)
	rule := "replicate-" + provider
	if _, err := eb.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String(rule), EventPattern: aws.String(pattern),
		State: ebtypes.RuleStateEnabled}); err != nil {
		return err
	}
	_, err := eb.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String(rule),
		Targets: []ebtypes.Target{{Id: aws.String(provider + "-queue"), Arn: aws.String(w.queueArn(w.queues[provider].URL))}}})
	return err
}

func (w *faultWorld) recordTransition(name string, from, to breaker.State) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.transitions[name] = append(w.transitions[name], from.String()+">"+to.String())
}

// transitionsOf returns provider's breaker transitions so far.
func (w *faultWorld) transitionsOf(provider string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.transitions[provider])
}

// opened counts how many times provider's breaker opened.
func (w *faultWorld) opened(provider string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, tr := range w.transitions[provider] {
		if strings.HasSuffix(tr, ">open") {
			n++
		}
	}
	return n
}

// injected is the faults every proxy injected so far.
func (w *faultWorld) injected() int64 {
	var n int64
	for _, px := range w.proxies {
		n += px.Stats().Injected
	}
	return n
}

// landed is one backup the test uploaded: Key is the key of every copy,
// SHA256 what every copy must hash to (the sealed bytes'), Size the
// upload's.
type landed struct {
	ID, Key, SHA256 string
	Size            int64
}

// upload registers backup i (as the API does), puts its bytes in the
// landing bucket and seals them (what the seal queue and function do);
// the sealed object's notification starts the fan-out.
func (w *faultWorld) upload(i int, size int64) landed {
	w.t.Helper()
	data := make([]byte, size)
	rand.NewChaCha8([32]byte{byte(i), byte(i >> 8), 7}).Read(data)
	sum := faultSum(data)
	org, id := "org-faults", fmt.Sprintf("B%06d", i)
	b := catalog.Backup{ID: id, OrganizationID: org, Name: fmt.Sprintf("Müller & O'Brien wedding #%d.zip", i),
		Size: size, SHA256: sum, ContentType: "application/zip", LandingKey: "backups/" + org + "/" + id}
	if _, _, err := w.store.CreateBackup(w.t.Context(), b); err != nil {
		w.t.Fatal(err)
	}
	if _, err := w.s3.PutObject(w.t.Context(), &s3.PutObjectInput{Bucket: aws.String(w.landing), Key: aws.String(b.LandingKey),
		Body: strings.NewReader(string(data))}); err != nil {
		w.t.Fatal(err)
	}
	body := fmt.Sprintf(`{"version":"0","detail-type":"Object Created","source":"aws.s3","detail":{"bucket":{"name":%q},"object":{"key":%q,"size":%d}}}`,
		w.landing, b.LandingKey, size)
	resp, err := w.sealer.Handle(w.t.Context(), events.SQSEvent{Records: []events.SQSMessage{{MessageId: "seal-" + id, Body: body,
		Attributes: map[string]string{"ApproximateReceiveCount": "1"}}}})
	if err != nil || len(resp.BatchItemFailures) > 0 {
		w.t.Fatalf("seal %s: %v %v", id, resp, err)
	}
	sealed, err := w.store.GetBackup(w.t.Context(), id)
	if err != nil || sealed.Seal == nil {
		w.t.Fatalf("%s not sealed: %v", id, err)
	}
	return landed{ID: id, Key: b.LandingKey, SHA256: sealed.Seal.CipherSHA256, Size: size}
}

// receive long-polls provider's queue (or dead-letter queue) once and
// returns what it got as the records Lambda would pass.
func (w *faultWorld) receive(ctx context.Context, url string, max int32, wait time.Duration) ([]events.SQSMessage, error) {
	out, err := w.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: max,
		WaitTimeSeconds:             int32(wait / time.Second),
		MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll},
		MessageAttributeNames:       []string{"All"}})
	if err != nil {
		return nil, err
	}
	recs := make([]events.SQSMessage, 0, len(out.Messages))
	for _, m := range out.Messages {
		r := events.SQSMessage{MessageId: aws.ToString(m.MessageId), ReceiptHandle: aws.ToString(m.ReceiptHandle),
			Body: aws.ToString(m.Body), Attributes: m.Attributes, MessageAttributes: map[string]events.SQSMessageAttribute{},
			EventSource: "aws:sqs", AWSRegion: emulator.MotoRegion}
		for k, v := range m.MessageAttributes {
			r.MessageAttributes[k] = events.SQSMessageAttribute{DataType: aws.ToString(v.DataType), StringValue: v.StringValue,
				BinaryValue: v.BinaryValue}
		}
		recs = append(recs, r)
	}
	return recs, nil
}

// deliver plays the event source mapping once for provider: one batch of
// up to max messages to its handler under a Lambda-like deadline, then the
// consumed records deleted. It returns the records and the failed ids.
func (w *faultWorld) deliver(ctx context.Context, provider string, max int32, wait, deadline time.Duration) ([]events.SQSMessage, map[string]bool, error) {
	q := w.queues[provider]
	recs, err := w.receive(ctx, q.URL, max, wait)
	if err != nil || len(recs) == 0 {
		return nil, nil, err
	}
	hctx, cancel := context.WithTimeout(ctx, deadline)
	resp, _ := w.handlers[provider].Handle(hctx, events.SQSEvent{Records: recs})
	cancel()
	failed := map[string]bool{}
	for _, f := range resp.BatchItemFailures {
		failed[f.ItemIdentifier] = true
	}
	var del []sqstypes.DeleteMessageBatchRequestEntry
	for i, r := range recs {
		if !failed[r.MessageId] {
			del = append(del, sqstypes.DeleteMessageBatchRequestEntry{Id: aws.String(fmt.Sprint(i)), ReceiptHandle: aws.String(r.ReceiptHandle)})
		}
	}
	if len(del) > 0 {
		dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		_, err = w.sqs.DeleteMessageBatch(dctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(q.URL), Entries: del})
		dcancel()
	}
	return recs, failed, err
}

// startPollers plays every provider's event source mapping until the test
// ends: batches of 5, a 30 s deadline per invocation.
func (w *faultWorld) startPollers() {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, name := range replicaProviders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if _, _, err := w.deliver(ctx, name, 5, time.Second, 30*time.Second); err != nil && ctx.Err() == nil {
					time.Sleep(200 * time.Millisecond)
				}
			}
		}()
	}
	w.t.Cleanup(func() { cancel(); wg.Wait() })
}

// depth is the number of messages in url, visible, in flight or delayed.
func (w *faultWorld) depth(url string) int {
	out, err := w.sqs.GetQueueAttributes(w.t.Context(), &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible, sqstypes.QueueAttributeNameApproximateNumberOfMessagesDelayed}})
	if err != nil {
		w.t.Fatal(err)
	}
	n := 0
	for _, v := range out.Attributes {
		var k int
		fmt.Sscan(v, &k)
		n += k
	}
	return n
}

// redrive moves every dead letter of provider back into its queue: what
// the health function does when a provider comes back (its RedriveCopy
// mode, the one moto supports), played here because shared/health is
// not the code under test. It returns how many moved.
func (w *faultWorld) redrive(provider string) int {
	w.t.Helper()
	ctx := w.t.Context()
	q := w.queues[provider]
	moved := 0
	for {
		recs, err := w.receive(ctx, q.DLQ, 10, 0)
		if err != nil {
			w.t.Fatal(err)
		}
		if len(recs) == 0 {
			return moved
		}
		for _, r := range recs {
			if _, err := w.sqs.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(q.URL), MessageBody: aws.String(r.Body)}); err != nil {
				w.t.Fatal(err)
			}
			if _, err := w.sqs.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(q.DLQ), ReceiptHandle: aws.String(r.ReceiptHandle)}); err != nil {
				w.t.Fatal(err)
			}
			moved++
		}
	}
}

// replicas returns backup id's replica records by provider.
func (w *faultWorld) replicas(id string) map[string]catalog.Replica {
	reps, err := w.store.Replicas(w.t.Context(), id)
	if err != nil {
		w.t.Fatal(err)
	}
	out := map[string]catalog.Replica{}
	for _, r := range reps {
		out[r.Provider] = r
	}
	return out
}

// waitUntil polls cond every interval until it reports true or timeout
// passes; then it fails the test with cond's last description.
func (w *faultWorld) waitUntil(what string, timeout, interval time.Duration, cond func() (bool, string)) {
	w.t.Helper()
	end := time.Now().Add(timeout)
	for {
		ok, desc := cond()
		if ok {
			return
		}
		if time.Now().After(end) {
			w.t.Fatalf("%s: not reached within %s: %s", what, timeout, desc)
		}
		select {
		case <-w.t.Context().Done():
			w.t.Fatalf("%s: test ended: %s", what, desc)
		case <-time.After(interval):
		}
	}
}

// faultSum is the hex SHA-256 of b.
func faultSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// readSHA256 reads key from p and returns its SHA-256 ("" when unreadable).
func readSHA256(ctx context.Context, p storage.Provider, key string) string {
	rc, err := p.Get(ctx, key, 0, -1)
	if err != nil {
		return ""
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return ""
	}
	return faultSum(b)
}
