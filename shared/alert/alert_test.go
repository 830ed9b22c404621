package alert

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/wedsync/backup-replication/infra/emulator"
	"github.com/wedsync/backup-replication/shared/secret"
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

// world is one test's topic (read through a subscribed queue), webhook and
// incidents table, all fresh.
type world struct {
	t       *testing.T
	db      *dynamodb.Client
	sqs     *sqs.Client
	queue   string
	hook    *hookServer
	topic   string
	table   string
	manager *Manager
}

type hookServer struct {
	*httptest.Server
	fail   atomic.Bool
	mu     sync.Mutex
	bodies []string
	tries  atomic.Int32
}

func (h *hookServer) texts() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.bodies...)
}

func newWorld(t *testing.T) *world {
	t.Helper()
	emulator.Require(t, motoErr)
	ctx := t.Context()
	cfg, _ := moto.AWSConfig(ctx)
	// The incident table through a proxy that serialises requests: moto
	// lets two concurrent conditional writes both pass, DynamoDB does not.
	serial, err := emulator.Serialize(moto.URL)
	if err != nil {
		t.Fatal(err)
	}
	dcfg, _ := (&emulator.Moto{URL: serial}).AWSConfig(ctx)
	w := &world{t: t, db: dynamodb.NewFromConfig(dcfg), sqs: sqs.NewFromConfig(cfg), table: "health-" + randHex()}
	_, err = w.db.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:   aws.String(w.table),
		BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String("provider"), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String("at"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String("provider"), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String("at"), KeyType: types.KeyTypeRange}},
	})
	if err != nil {
		t.Fatal(err)
	}
	sn := sns.NewFromConfig(cfg)
	topic, err := sn.CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String("alerts-" + randHex())})
	if err != nil {
		t.Fatal(err)
	}
	w.topic = *topic.TopicArn
	q, err := w.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("alerts-" + randHex())})
	if err != nil {
		t.Fatal(err)
	}
	w.queue = *q.QueueUrl
	attrs, err := w.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: q.QueueUrl,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sn.Subscribe(ctx, &sns.SubscribeInput{TopicArn: topic.TopicArn, Protocol: aws.String("sqs"),
		Endpoint: aws.String(attrs.Attributes["QueueArn"])}); err != nil {
		t.Fatal(err)
	}
	w.hook = &hookServer{}
	w.hook.Server = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.hook.tries.Add(1)
		if w.hook.fail.Load() {
			http.Error(rw, "no", http.StatusInternalServerError)
			return
		}
		var v struct{ Text string }
		if r.Header.Get("Content-Type") != "application/json" || json.NewDecoder(r.Body).Decode(&v) != nil {
			http.Error(rw, "bad", http.StatusBadRequest)
			return
		}
		w.hook.mu.Lock()
		w.hook.bodies = append(w.hook.bodies, v.Text)
		w.hook.mu.Unlock()
		io.WriteString(rw, "ok")
	}))
	t.Cleanup(w.hook.Close)
	w.manager, err = New(w.db, Config{Table: w.table, Stage: "ws191-test"},
		[]Channel{SNS(sn, w.topic), Webhook(secret.Secret(w.hook.URL+"/services/T0/B0/tok3n"), nil)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// published is one SNS message as the subscribed queue received it.
type published struct {
	Subject, Message  string
	MessageAttributes map[string]struct{ Value string }
}

// drain returns every message the topic delivered since the last drain.
func (w *world) drain() []published {
	w.t.Helper()
	var out []published
	for {
		r, err := w.sqs.ReceiveMessage(w.t.Context(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(w.queue), MaxNumberOfMessages: 10})
		if err != nil {
			w.t.Fatal(err)
		}
		if len(r.Messages) == 0 {
			return out
		}
		for _, m := range r.Messages {
			var p published
			if err := json.Unmarshal([]byte(*m.Body), &p); err != nil {
				w.t.Fatalf("SNS envelope: %v", err)
			}
			out = append(out, p)
			w.sqs.DeleteMessage(w.t.Context(), &sqs.DeleteMessageInput{QueueUrl: aws.String(w.queue), ReceiptHandle: m.ReceiptHandle})
		}
	}
}

func randHex() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}

var gcsDown = Alert{Key: "provider_down:gcs", Severity: Critical, Title: "provider gcs is down",
	Text: "2 canary probes failed in a row (put: transient)."}

var gcsUp = Alert{Title: "provider gcs is back up", Text: "3 canary probes passed; dead letters redriven."}

func TestOneAlertPerIncident(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	var opened atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := w.manager.Raise(ctx, gcsDown)
			if err != nil {
				t.Error(err)
			}
			if ok {
				opened.Add(1)
			}
		}()
	}
	wg.Wait()
	if opened.Load() != 1 {
		t.Errorf("%d callers opened the incident, want 1", opened.Load())
	}
	msgs := w.drain()
	if len(msgs) != 1 || len(w.hook.texts()) != 1 {
		t.Fatalf("%d SNS messages and %d webhook posts, want 1 each", len(msgs), len(w.hook.texts()))
	}
	m := msgs[0]
	if m.Subject != "[ws191-test] PROBLEM: provider gcs is down" || !strings.Contains(m.Message, "2 canary probes failed") ||
		!strings.Contains(m.Message, "incident: provider_down:gcs") {
		t.Errorf("message: %q / %q", m.Subject, m.Message)
	}
	if m.MessageAttributes["incident"].Value != "provider_down:gcs" || m.MessageAttributes["phase"].Value != "open" ||
		m.MessageAttributes["severity"].Value != "critical" {
		t.Errorf("attributes: %+v", m.MessageAttributes)
	}
	// Raised again while open: nothing new.
	if ok, err := w.manager.Raise(ctx, gcsDown); ok || err != nil {
		t.Errorf("second raise: opened %v, %v", ok, err)
	}
	if n := len(w.drain()); n != 0 {
		t.Errorf("%d more SNS messages for an open incident", n)
	}
	open, err := w.manager.Open(ctx, "provider_down:")
	if err != nil || len(open) != 1 || open[0].Key != "provider_down:gcs" || !open[0].Done {
		t.Errorf("open incidents: %+v, %v", open, err)
	}
}

func TestOneRecoveryPerIncident(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	if _, err := w.manager.Raise(ctx, gcsDown); err != nil {
		t.Fatal(err)
	}
	w.drain()
	var resolved atomic.Int32
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ok, err := w.manager.Resolve(ctx, "provider_down:gcs", gcsUp); err != nil {
				t.Error(err)
			} else if ok {
				resolved.Add(1)
			}
		}()
	}
	wg.Wait()
	if resolved.Load() != 1 {
		t.Errorf("%d callers resolved it", resolved.Load())
	}
	msgs := w.drain()
	hooks := w.hook.texts()
	if len(msgs) != 1 || len(hooks) != 2 {
		t.Fatalf("%d SNS recovery messages, %d webhook posts in all; want 1 and 2", len(msgs), len(hooks))
	}
	if msgs[0].Subject != "[ws191-test] RESOLVED: provider gcs is back up" || !strings.Contains(msgs[0].Message, "resolved: ") ||
		msgs[0].MessageAttributes["phase"].Value != "resolved" {
		t.Errorf("recovery: %q %q", msgs[0].Subject, msgs[0].Message)
	}
	if ok, _ := w.manager.Resolve(ctx, "provider_down:s3", gcsUp); ok {
		t.Error("resolved an incident that was never opened")
	}
	// The same key later is a new incident.
	if ok, err := w.manager.Raise(ctx, gcsDown); !ok || err != nil {
		t.Fatalf("reopen: %v %v", ok, err)
	}
	if n := len(w.drain()); n != 1 {
		t.Errorf("reopened incident sent %d messages", n)
	}
	if open, _ := w.manager.Open(ctx, ""); len(open) != 1 || open[0].Generation != 2 {
		t.Errorf("open after reopening: %+v", open)
	}
}

func TestFailedChannelIsRetriedAlone(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	w.hook.fail.Store(true)
	opened, err := w.manager.Raise(ctx, gcsDown)
	if !opened || err == nil {
		t.Fatalf("raise with a failing webhook: opened %v, err %v", opened, err)
	}
	if strings.Contains(err.Error(), "tok3n") || strings.Contains(err.Error(), w.hook.URL) {
		t.Errorf("error quotes the webhook URL: %v", err)
	}
	if n := len(w.drain()); n != 1 {
		t.Fatalf("SNS got %d", n)
	}
	// Still failing: Retry tries again, SNS is left alone.
	if n, err := w.manager.Retry(ctx); n != 1 || err == nil {
		t.Errorf("retry while failing: %d, %v", n, err)
	}
	w.hook.fail.Store(false)
	if _, err := w.manager.Retry(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := w.manager.Retry(ctx); n != 0 || err != nil {
		t.Errorf("nothing left to retry, yet %d tried (%v)", n, err)
	}
	if len(w.drain()) != 0 || len(w.hook.texts()) != 1 || w.hook.tries.Load() != 3 {
		t.Errorf("webhook posts %d after %d tries; want 1 after 3, and no new SNS message", len(w.hook.texts()), w.hook.tries.Load())
	}
}

func TestRecoveryGoesWhereTheProblemWent(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	w.hook.fail.Store(true)
	w.manager.Raise(ctx, gcsDown)
	w.hook.fail.Store(false)
	if ok, err := w.manager.Resolve(ctx, gcsDown.Key, gcsUp); !ok || err != nil {
		t.Fatalf("resolve: %v %v", ok, err)
	}
	if n := len(w.drain()); n != 2 {
		t.Errorf("SNS got %d messages, want the problem and its recovery", n)
	}
	if n := len(w.hook.texts()); n != 0 {
		t.Errorf("the webhook never heard of the problem but got %d messages", n)
	}
	if n, _ := w.manager.Retry(ctx); n != 0 {
		t.Errorf("retry found %d undelivered", n)
	}
}

func TestNoSecretsInAlerts(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	secrets := []string{
		"X-Amz-Signature=0123456789abcdef", "X-Amz-Credential=AKIAABCDEFGHIJKLMNOP",
		"eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2lnbmF0dXJl", "T00000000/B00000000/XXXXXXXXXXXXXXXX",
		"AKIAZZZZZZZZZZZZZZZZ", "sk_live_abcdef",
	}
	a := Alert{Key: "integrity:b1:s3", Title: "copy of b1 on s3 is corrupt",
		Text: "get https://bucket.s3.amazonaws.com/backups/o/b1?X-Amz-Signature=0123456789abcdef&X-Amz-Credential=AKIAABCDEFGHIJKLMNOP failed; " +
			"Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2lnbmF0dXJl; " +
			"hook https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXX; key AKIAZZZZZZZZZZZZZZZZ; api_key=sk_live_abcdef"}
	if _, err := w.manager.Raise(ctx, a); err != nil {
		t.Fatal(err)
	}
	msgs := w.drain()
	texts := append(w.hook.texts(), msgs[0].Message, msgs[0].Subject)
	open, _ := w.manager.Open(ctx, "integrity:")
	texts = append(texts, open[0].Text)
	for _, txt := range texts {
		for _, s := range secrets {
			if strings.Contains(txt, s) {
				t.Errorf("alert text carries %q:\n%s", s, txt)
			}
		}
	}
	if !strings.Contains(msgs[0].Message, "https://bucket.s3.amazonaws.com/backups/o/b1") {
		t.Errorf("the useful part of the text went too: %s", msgs[0].Message)
	}
}

func TestSubjectIsSNSSafe(t *testing.T) {
	s := subject("stage", PhaseOpen, "backup «mariage» at risk\nfor "+strings.Repeat("very ", 40)+"long")
	if len(s) > 100 || strings.ContainsAny(s, "\n«»") {
		t.Errorf("subject %q", s)
	}
}
