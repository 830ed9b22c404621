package health

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/wedsync/backup-replication/shared/catalog"
)

// TestReconcileOnDemand: Reconcile queues the landing event again for each
// landed backup whose copy on the provider is missing or FAILED, writes
// the copy itself from a verified provider when the landing object is
// gone, leaves alone backups landed within the grace period and providers
// that owe nothing, and reports each; a limit cuts it short, saying so
// (the limit is checked between pages, so only "not everything" is
// asserted).
func TestReconcileOnDemand(t *testing.T) {
	w := newWorld(t, nil)
	data := payload(3000)
	missing := w.backup(data, 2*time.Hour, "supabase", "s3")
	failed := w.backup(data, 2*time.Hour, "supabase", "s3")
	w.replica(failed, "gcs", catalog.ReplicaFailed)
	gone := w.backup(data, 2*time.Hour, "supabase", "s3")
	if _, err := w.s3.DeleteObject(w.ctx, &s3.DeleteObjectInput{Bucket: aws.String(w.landing), Key: aws.String(gone.LandingKey)}); err != nil {
		t.Fatal(err)
	}
	fresh := w.backup(data, 0, "supabase", "s3")
	complete := w.backup(data, 2*time.Hour, "supabase", "s3", "gcs")

	rep, err := w.h.Reconcile(w.ctx, []string{"gcs", "s3"}, periodicStatuses)
	if err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	if rep.Scanned != 4 || rep.Queued != 2 || rep.Repaired != 1 || rep.Failed != 0 || rep.Incomplete {
		t.Fatalf("report %+v, want 4 scanned (the PROTECTED one is not), 2 queued, 1 repaired", rep)
	}
	var keys []string
	for _, ev := range w.events("gcs") {
		keys = append(keys, ev.Key)
	}
	slices.Sort(keys)
	want := []string{missing.LandingKey, failed.LandingKey}
	slices.Sort(want)
	if !slices.Equal(keys, want) {
		t.Fatalf("gcs queue holds events for %v, want %v (not %s, landed just now, nor %s, complete)", keys, want, fresh.ID, complete.ID)
	}
	if n := len(w.events("s3")); n != 0 {
		t.Errorf("%d events queued for s3, which owes nothing", n)
	}
	if got := w.read("gcs", gone.LandingKey); string(got) != string(data) {
		t.Errorf("the copy repaired on gcs holds %d bytes, want the %d of the backup", len(got), len(data))
	}

	cfg := w.cfg
	cfg.ReconcileLimit = 2
	limited, err := New(cfg, w.h.d)
	if err != nil {
		t.Fatal(err)
	}
	rep, err = limited.Reconcile(w.ctx, []string{"gcs"}, periodicStatuses)
	if err == nil || !strings.Contains(err.Error(), "cut short") || !rep.Incomplete || rep.Scanned >= 4 {
		t.Fatalf("Reconcile with a limit of 2: %+v, %v; want it incomplete before the last backup, saying it was cut short", rep, err)
	}
	w.events("gcs")
}

// TestReconcileWithoutAQueue: a provider with no queue configured cannot be
// sent the event; with the landing object present its copy is written here
// from a verified provider instead.
func TestReconcileWithoutAQueue(t *testing.T) {
	w := newWorld(t, nil)
	data := payload(2000)
	b := w.backup(data, 2*time.Hour, "supabase", "gcs")
	cfg := w.cfg
	cfg.Queues = map[string]Queue{"supabase": w.queues["supabase"], "gcs": w.queues["gcs"]}
	h, err := New(cfg, w.h.d)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := h.Reconcile(w.ctx, []string{"s3"}, []catalog.Status{b.Status})
	if err != nil || rep.Repaired != 1 || rep.Queued != 0 {
		t.Fatalf("Reconcile: %+v, %v; want the s3 copy repaired here", rep, err)
	}
	if got := w.read("s3", b.LandingKey); string(got) != string(data) {
		t.Errorf("s3 copy holds %d bytes, want %d", len(got), len(data))
	}
	if n := len(w.events("s3")); n != 0 {
		t.Errorf("%d events sent to the s3 queue, which is not configured", n)
	}
}

// deadLetters sends n messages with an attribute to url.
func (w *world) deadLetters(url string, n int) {
	w.t.Helper()
	for i := range n {
		if _, err := w.sqs.SendMessage(w.ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url),
			MessageBody: aws.String(`{"letter":` + strconv.Itoa(i) + `}`),
			MessageAttributes: map[string]sqstypes.MessageAttributeValue{
				"origin": {DataType: aws.String("String"), StringValue: aws.String("replicate")}}}); err != nil {
			w.t.Fatal(err)
		}
	}
}

// TestRedriveMovesEveryDeadLetter: dead letters go back to their queue
// with body and attributes, each once; an empty dead-letter queue is no
// work; in auto mode the letters end up back too, whichever way SQS
// allows; a dead-letter queue that does not exist is an error naming it.
func TestRedriveMovesEveryDeadLetter(t *testing.T) {
	w := newWorld(t, nil)
	q := w.queues["gcs"]
	w.deadLetters(q.DLQURL, 12)
	h := w.h
	moved, err := h.redrive(w.ctx, q)
	if moved != 12 || err != nil {
		t.Fatalf("redrive: moved %d, %v; want all 12", moved, err)
	}
	if n, _ := h.depth(w.ctx, q.DLQURL); n != 0 {
		t.Fatalf("dead letters left: %d", n)
	}
	if moved, err = h.redrive(w.ctx, q); moved != 0 || err != nil {
		t.Fatalf("redrive of an empty dead-letter queue: %d, %v", moved, err)
	}
	var bodies []string
	for {
		out, err := w.sqs.ReceiveMessage(w.ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(q.URL), MaxNumberOfMessages: 10,
			MessageAttributeNames: []string{"All"}})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Messages) == 0 {
			break
		}
		for _, m := range out.Messages {
			bodies = append(bodies, aws.ToString(m.Body))
			if aws.ToString(m.MessageAttributes["origin"].StringValue) != "replicate" {
				t.Errorf("redriven letter %s lost its attributes: %v", aws.ToString(m.Body), m.MessageAttributes)
			}
			w.sqs.DeleteMessage(w.ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(q.URL), ReceiptHandle: m.ReceiptHandle})
		}
	}
	slices.Sort(bodies)
	if len(bodies) != 12 || len(slices.Compact(slices.Clone(bodies))) != 12 {
		t.Fatalf("queue holds %v, want the 12 letters once each", bodies)
	}

	auto := w.cfg
	auto.RedriveMode = RedriveAuto
	ha, err := New(auto, w.h.d)
	if err != nil {
		t.Fatal(err)
	}
	qs := w.queues["s3"]
	w.deadLetters(qs.DLQURL, 2)
	if _, err := ha.redrive(w.ctx, qs); err != nil {
		t.Fatalf("auto redrive: %v", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		dlq, _ := ha.depth(w.ctx, qs.DLQURL)
		back, _ := ha.depth(w.ctx, qs.URL)
		if dlq == 0 && back == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after an auto redrive the dead-letter queue holds %d and the queue %d, want 0 and 2", dlq, back)
		}
		time.Sleep(200 * time.Millisecond)
	}

	bad := Queue{URL: q.URL, DLQURL: q.DLQURL + "-missing"}
	if _, err := h.redrive(w.ctx, bad); err == nil || !strings.Contains(err.Error(), "-missing") {
		t.Fatalf("redrive of a queue that does not exist: %v, want an error naming it", err)
	}
}

// TestRedriveLimit: a redrive that moves exactly its limit and empties the
// dead-letter queue is no error; one that stops at its limit with letters
// left says how many remain (it used to say "stopped after N messages"
// even when none did).
func TestRedriveLimit(t *testing.T) {
	w := newWorld(t, func(c *Config) { c.RedriveMax = 5 })
	q := w.queues["gcs"]
	w.deadLetters(q.DLQURL, 5)
	if moved, err := w.h.redrive(w.ctx, q); moved != 5 || err != nil {
		t.Fatalf("redrive of exactly the limit: moved %d, %v; want 5 and no error", moved, err)
	}
	w.deadLetters(q.DLQURL, 7)
	moved, err := w.h.redrive(w.ctx, q)
	if moved != 5 || err == nil || !strings.Contains(err.Error(), "about 2 remain") {
		t.Fatalf("redrive beyond the limit: moved %d, %v; want 5 and an error saying 2 remain", moved, err)
	}
	if moved, err := w.h.redrive(w.ctx, q); moved != 2 || err != nil {
		t.Fatalf("next round: moved %d, %v", moved, err)
	}
}

// TestNewNamesEveryProblem: a handler with an invalid configuration or
// missing dependencies is refused at start, each problem named.
func TestNewNamesEveryProblem(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		deps Deps
		want []string
	}{
		{"nothing", Config{}, Deps{}, []string{"no providers", "catalog and a health store"}},
		{"negative limits", Config{Providers: []string{"gcs"}, DownAfter: -1, ScrubBytes: -1, RoundInterval: -time.Second, RedriveMode: "now"},
			Deps{}, []string{"must not be negative", "byte budgets", "negative round interval", `redrive mode "now"`, "provider gcs is not built"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := New(c.cfg, c.deps)
			for _, want := range c.want {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("New error %v does not say %q", err, want)
				}
			}
		})
	}
	if _, err := NewStore(nil, "t"); err == nil || !strings.Contains(err.Error(), "HEALTH_TABLE") {
		t.Errorf("NewStore without a client: %v", err)
	}
	emu, _ := moto.AWSConfig(t.Context())
	s, err := NewStore(dynamodb.NewFromConfig(emu), "health-named")
	if err != nil || s.Table() != "health-named" {
		t.Errorf("NewStore: %v, table %q", err, s.Table())
	}
}
