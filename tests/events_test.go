package tests

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/wedsync/backup-replication/infra/local/rie"
	"github.com/wedsync/backup-replication/infra/local/stack"
)

// eventCase is one event of events/ and what a sane answer to it is.
type eventCase struct {
	file string
	// adapt rewrites the event for the local stack (names, fresh tokens).
	adapt func(t *testing.T, s *stack.Stack, ev map[string]any)
	// check judges the answer; every case also requires that the runtime
	// did not crash (no Unhandled error: panic, exit, timeout).
	check func(t *testing.T, resp rie.Response)
}

// eventCases are the events of events/ by function.
var eventCases = map[string][]eventCase{
	"ApiFunction": {
		{file: "api-post-backups.json", check: wantHTTPStatus(401)}, // as stored: its token expired long ago
		{file: "api-post-backups.json", adapt: freshAPIToken, check: wantHTTPStatus(201)},
	},
	"ReplicateSupabaseFunction": {{file: "replicate-sqs.json", adapt: localSQS("ReplicateSupabaseQueue"), check: wantBatchResponse}},
	"ReplicateS3Function":       {{file: "replicate-sqs.json", adapt: localSQS("ReplicateS3Queue"), check: wantBatchResponse}},
	"ReplicateGcsFunction":      {{file: "replicate-sqs.json", adapt: localSQS("ReplicateGcsQueue"), check: wantBatchResponse}},
	"SealFunction":              {{file: "seal.json", adapt: localSQS("SealQueue"), check: wantBatchResponse}},
	"HealthFunction":            {{file: "health-schedule.json", check: wantNoError}},
	// The four steps in order under the stored token: a whole rotation of
	// the S3 credentials (the stack made the IAM user and its first key).
	"RotateFunction": {
		{file: "rotate-createSecret.json", adapt: localSecret, check: wantNoError},
		{file: "rotate-setSecret.json", adapt: localSecret, check: wantNoError},
		{file: "rotate-testSecret.json", adapt: localSecret, check: wantNoError},
		{file: "rotate-finishSecret.json", adapt: localSecret, check: wantNoError},
	},
	"WsFunction": {
		{file: "ws-connect.json", check: wantRefused}, // as stored: expired token
		{file: "ws-subscribe.json", check: wantHTTPAnswer},
	},
}

// TestEventsInvoke is our `sam local invoke`: every function whose folder
// exists is built for this machine, run under aws-lambda-rie with the
// environment the template gives it (pointing at the shared stack's moto),
// and invoked with its events from events/.
func TestEventsInvoke(t *testing.T) {
	have := existingFunctions(t)
	if len(have) == 0 {
		t.Skip("no function folder exists yet under functions/")
	}
	for id := range eventCases {
		if _, ok := loadTemplate(t).Functions[id]; !ok {
			t.Errorf("events cover %s, which template.yaml does not declare", id)
		}
	}
	s := sharedStack(t).Stack
	for _, id := range loadTemplate(t).FunctionIDs() {
		t.Run(id, func(t *testing.T) {
			if reason, skipped := s.Skipped[id]; skipped {
				t.Skipf("%s: %s", id, reason)
			}
			cases := eventCases[id]
			if len(cases) == 0 {
				t.Fatalf("events/ has no event for %s", id)
			}
			for _, c := range cases {
				raw, err := os.ReadFile(filepath.Join(repoRoot(t), "events", c.file))
				if err != nil {
					t.Fatal(err)
				}
				var ev map[string]any
				if err := json.Unmarshal(raw, &ev); err != nil {
					t.Fatalf("%s: %v", c.file, err)
				}
				if c.adapt != nil {
					c.adapt(t, s, ev)
				}
				payload, _ := json.Marshal(ev)
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				resp, err := s.Invoke(ctx, id, payload)
				cancel()
				if err != nil {
					t.Fatalf("%s: invoke: %v", c.file, err)
				}
				if resp.FunctionError == "Unhandled" {
					t.Fatalf("%s: the runtime crashed: %s", c.file, resp.Payload)
				}
				if c.check != nil {
					c.check(t, resp)
				}
				t.Logf("%s → %s", c.file, truncate(resp.Payload, 300))
			}
		})
	}
}

// wantHTTPStatus expects an API Gateway payload 2.0 answer with status
// code and a JSON body (errors as {"error":{"code","message"}}).
func wantHTTPStatus(code int) func(*testing.T, rie.Response) {
	return func(t *testing.T, resp rie.Response) {
		t.Helper()
		r := httpAnswer(t, resp)
		if r.StatusCode != code {
			t.Errorf("status %d, want %d: %s", r.StatusCode, code, r.Body)
		}
		var body map[string]any
		if err := json.Unmarshal([]byte(r.Body), &body); err != nil {
			t.Errorf("body is not JSON: %q", r.Body)
		}
		if code >= 400 {
			if e, _ := body["error"].(map[string]any); e == nil || e["code"] == "" || e["message"] == "" {
				t.Errorf("error body without code and message: %s", r.Body)
			}
		}
	}
}

func httpAnswer(t *testing.T, resp rie.Response) events.APIGatewayV2HTTPResponse {
	t.Helper()
	if resp.FunctionError != "" {
		t.Fatalf("function error instead of an HTTP answer: %s", resp.Payload)
	}
	var r events.APIGatewayV2HTTPResponse
	if err := json.Unmarshal(resp.Payload, &r); err != nil || r.StatusCode == 0 {
		t.Fatalf("not an API Gateway answer: %s", resp.Payload)
	}
	return r
}

// wantHTTPAnswer accepts any status an API Gateway proxy answer can carry.
func wantHTTPAnswer(t *testing.T, resp rie.Response) {
	t.Helper()
	httpAnswer(t, resp)
}

// wantRefused expects a WebSocket $connect to be refused (4xx).
func wantRefused(t *testing.T, resp rie.Response) {
	t.Helper()
	if r := httpAnswer(t, resp); r.StatusCode < 400 || r.StatusCode >= 500 {
		t.Errorf("$connect with an expired token answered %d, want 401 or 403", r.StatusCode)
	}
}

// wantBatchResponse expects an SQSEventResponse naming only messages of
// the batch: the unknown backups of the stored event come back as item
// failures (or are dropped as unprocessable), never as a function error.
func wantBatchResponse(t *testing.T, resp rie.Response) {
	t.Helper()
	if resp.FunctionError != "" {
		t.Fatalf("function error for a batch with unknown backups: %s", resp.Payload)
	}
	var r events.SQSEventResponse
	if err := json.Unmarshal(resp.Payload, &r); err != nil {
		t.Fatalf("not an SQSEventResponse: %s", resp.Payload)
	}
	ids := map[string]bool{"059f36b4-87a3-44ab-83d2-661975830a7d": true, "2e1424d4-f796-459a-8184-9c92662be6da": true}
	for _, f := range r.BatchItemFailures {
		if !ids[f.ItemIdentifier] {
			t.Errorf("batchItemFailures names %q, which is not in the batch", f.ItemIdentifier)
		}
	}
}

func wantNoError(t *testing.T, resp rie.Response) {
	t.Helper()
	if resp.FunctionError != "" {
		t.Errorf("function error: %s", resp.Payload)
	}
}

// freshAPIToken replaces the stored event's expired token with one the
// local API accepts, for the organization named in the body.
func freshAPIToken(t *testing.T, s *stack.Stack, ev map[string]any) {
	var body struct{ OrganizationID string }
	json.Unmarshal([]byte(ev["body"].(string)), &body)
	ev["headers"].(map[string]any)["authorization"] = "Bearer " + stack.DevToken(body.OrganizationID, time.Hour)
}

// localSQS points the stored batch at the local landing bucket and queue.
func localSQS(queueID string) func(*testing.T, *stack.Stack, map[string]any) {
	return func(t *testing.T, s *stack.Stack, ev map[string]any) {
		for _, r := range ev["Records"].([]any) {
			rec := r.(map[string]any)
			rec["eventSourceARN"] = s.Template.Attr(queueID, "Arn")
			rec["awsRegion"] = s.Template.Ref("AWS::Region")
			var body map[string]any
			json.Unmarshal([]byte(rec["body"].(string)), &body)
			body["detail"].(map[string]any)["bucket"] = map[string]any{"name": s.Buckets.Landing}
			body["resources"] = []string{"arn:aws:s3:::" + s.Buckets.Landing}
			b, _ := json.Marshal(body)
			rec["body"] = string(b)
		}
	}
}

// localSecret points a rotation step at the local S3 credentials secret.
func localSecret(t *testing.T, s *stack.Stack, ev map[string]any) {
	ev["SecretId"] = s.Template.Ref("S3Secret")
}

func truncate(b []byte, n int) string {
	s := strings.TrimSpace(string(b))
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
