package stack

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/wedsync/backup-replication/infra/emulator"
	"github.com/wedsync/backup-replication/infra/local/rie"
	"github.com/wedsync/backup-replication/infra/local/samtemplate"
)

// echoFunction builds testdata/echofn and runs it under aws-lambda-rie.
func echoFunction(t *testing.T) *rie.Function {
	t.Helper()
	if _, err := rie.FindRIE(); err != nil {
		emulator.Require(t, err)
	}
	bin := filepath.Join(t.TempDir(), "bootstrap")
	cmd := exec.Command("go", "build", "-tags", "lambda.norpc", "-o", bin, "./testdata/echofn")
	cmd.Env = append(cmd.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build echofn: %v\n%s", err, out)
	}
	var logs bytes.Buffer
	fn, err := rie.Start(context.Background(), rie.Config{Name: "Echo", Bootstrap: bin, Timeout: 10 * time.Second, Instances: 2, Output: &syncWriter{w: &logs}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fn.Close() })
	return fn
}

func TestHTTPAPI(t *testing.T) {
	fn := echoFunction(t)
	fns := map[string]*samtemplate.Function{"Echo": {LogicalID: "Echo", HTTP: []samtemplate.HTTPEvent{
		{Method: "GET", Path: "/backups/{id}"}, {Method: "GET", Path: "/backups/{id}/download"},
		{Method: "POST", Path: "/binary"}, {Method: "GET", Path: "/error"}, {Method: "GET", Path: "/"},
	}}}
	h := newHTTPAPI(fns, map[string]*rie.Function{"Echo": fn}, "123456789012", slog.New(slog.DiscardHandler))
	base, err := h.listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer h.close()

	get := func(path string) (*http.Response, map[string]any) {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		req.Header.Set("Authorization", "Bearer tok")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		return resp, m
	}
	resp, echo := get("/backups/01ABC/download?x=1&x=2")
	if resp.StatusCode != 201 || echo["routeKey"] != "GET /backups/{id}/download" || echo["query"] != "x=1&x=2" || echo["auth"] != "Bearer tok" {
		t.Errorf("GET /backups/01ABC/download = %d %v", resp.StatusCode, echo)
	}
	if p, _ := echo["params"].(map[string]any); p["id"] != "01ABC" {
		t.Errorf("path parameters = %v, want id=01ABC", echo["params"])
	}
	if c := resp.Header.Values("Set-Cookie"); len(c) != 1 || c[0] != "a=1" {
		t.Errorf("cookies = %v", c)
	}
	if resp, _ := get("/"); resp.StatusCode != 201 {
		t.Errorf("GET / = %d", resp.StatusCode)
	}
	for path, want := range map[string]int{"/nope": 404, "/backups": 404, "/error": 500} {
		if resp, m := get(path); resp.StatusCode != want || m["message"] == nil {
			t.Errorf("GET %s = %d %v, want %d with an API Gateway message", path, resp.StatusCode, m, want)
		}
	}

	bin := make([]byte, 300<<10)
	rand.Read(bin)
	r, err := http.Post(base+"/binary", "application/octet-stream", bytes.NewReader(bin))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if r.StatusCode != 200 || !bytes.Equal(got, bin) {
		t.Errorf("binary round trip: %d, %d bytes back of %d", r.StatusCode, len(got), len(bin))
	}
	r, err = http.Post(base+"/binary", "application/octet-stream", bytes.NewReader(make([]byte, httpAPIMaxBody+1)))
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("an 10 MB + 1 body: %d, want 413", r.StatusCode)
	}
}

func TestPollerDeletesOnlyWhatSucceeded(t *testing.T) {
	ctx := context.Background()
	m, err := emulator.StartMoto(ctx)
	emulator.Require(t, err)
	defer m.Close()
	cfg, _ := m.AWSConfig(ctx)
	client := sqs.NewFromConfig(cfg)
	q, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("poller-" + strings.ToLower(t.Name()[:6])),
		Attributes: map[string]string{"VisibilityTimeout": "60"}})
	if err != nil {
		t.Fatal(err)
	}
	p := &poller{sqs: client, queueURL: *q.QueueUrl, queueArn: "arn:aws:sqs:us-east-1:123456789012:q", region: "us-east-1",
		batchSize: 10, partial: true, fn: echoFunction(t), log: slog.New(slog.DiscardHandler)}

	// remaining makes every message visible again and returns their bodies.
	round := func(bodies ...string) []string {
		for _, b := range bodies {
			if _, err := client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: q.QueueUrl, MessageBody: aws.String(b)}); err != nil {
				t.Fatal(err)
			}
		}
		msgs := receiveAll(t, client, *q.QueueUrl, len(bodies))
		p.deliver(ctx, msgs)
		for _, m := range msgs { // whatever was not deleted comes back now
			client.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: q.QueueUrl, ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0})
		}
		var left []string
		for _, m := range receiveAll(t, client, *q.QueueUrl, -1) {
			left = append(left, *m.Body)
			client.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: q.QueueUrl, ReceiptHandle: m.ReceiptHandle})
		}
		sort.Strings(left)
		return left
	}
	if left := round("ok-1", "fail", "ok-2"); strings.Join(left, ",") != "fail" {
		t.Errorf("after a partial failure the queue holds %v, want [fail]", left)
	}
	if left := round("ok-3", "panic"); strings.Join(left, ",") != "ok-3,panic" {
		t.Errorf("after a crash the queue holds %v, want the whole batch", left)
	}
}

// receiveAll receives until it has n messages (n < 0: until the queue
// answers empty).
func receiveAll(t *testing.T, c *sqs.Client, url string, n int) []types.Message {
	t.Helper()
	var out []types.Message
	deadline := time.Now().Add(20 * time.Second)
	for (n < 0 || len(out) < n) && time.Now().Before(deadline) {
		r, err := c.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10,
			WaitTimeSeconds: 1, MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll}})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Messages) == 0 && n < 0 {
			break
		}
		out = append(out, r.Messages...)
	}
	if n >= 0 && len(out) != n {
		t.Fatalf("received %d messages, want %d", len(out), n)
	}
	return out
}

func TestBatchFailures(t *testing.T) {
	msgs := []types.Message{{MessageId: aws.String("a")}, {MessageId: aws.String("b")}}
	for _, c := range []struct {
		payload string
		failed  []string
		ok      bool
	}{
		{``, nil, true},
		{`null`, nil, true},
		{`{}`, nil, true},
		{`{"batchItemFailures":[{"itemIdentifier":"b"}]}`, []string{"b"}, true},
		{`{"batchItemFailures":[{"itemIdentifier":"zzz"}]}`, nil, false},
		{`{"batchItemFailures":[{"itemIdentifier":""}]}`, nil, false},
		{`"not a response"`, nil, false},
	} {
		failed, ok := batchFailures([]byte(c.payload), msgs)
		var got []string
		for id := range failed {
			got = append(got, id)
		}
		if ok != c.ok || strings.Join(got, ",") != strings.Join(c.failed, ",") {
			t.Errorf("batchFailures(%s) = %v %v, want %v %v", c.payload, got, ok, c.failed, c.ok)
		}
	}
}

func TestRateInterval(t *testing.T) {
	for expr, want := range map[string]time.Duration{"rate(1 minute)": time.Minute, "rate(5 minutes)": 5 * time.Minute, "rate(2 hours)": 2 * time.Hour} {
		if got, err := RateInterval(expr); err != nil || got != want {
			t.Errorf("RateInterval(%q) = %v %v, want %v", expr, got, err, want)
		}
	}
	if _, err := RateInterval("cron(0 12 * * ? *)"); err == nil {
		t.Error("cron expressions are not played locally and should say so")
	}
}
