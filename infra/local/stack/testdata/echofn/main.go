// Command echofn is a Lambda function for the local stack's own tests: it
// answers HTTP API events with what it received, reports SQS messages whose
// body is "fail" as batch item failures, and panics on "panic".
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
)

func main() {
	lambda.Start(func(ctx context.Context, raw json.RawMessage) (any, error) {
		var probe struct {
			Records []json.RawMessage `json:"Records"`
			RawPath *string           `json:"rawPath"`
		}
		json.Unmarshal(raw, &probe)
		switch {
		case probe.Records != nil:
			var ev events.SQSEvent
			json.Unmarshal(raw, &ev)
			var resp events.SQSEventResponse
			for _, r := range ev.Records {
				switch r.Body {
				case "panic":
					panic("asked to panic")
				case "fail":
					resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: r.MessageId})
				}
			}
			return resp, nil
		case probe.RawPath != nil:
			var ev events.APIGatewayV2HTTPRequest
			json.Unmarshal(raw, &ev)
			if ev.RawPath == "/error" {
				return nil, errors.New("asked to fail")
			}
			body := []byte(ev.Body)
			if ev.IsBase64Encoded {
				body, _ = base64.StdEncoding.DecodeString(ev.Body)
			}
			echo, _ := json.Marshal(map[string]any{
				"routeKey": ev.RouteKey, "path": ev.RawPath, "query": ev.RawQueryString,
				"params": ev.PathParameters, "auth": ev.Headers["authorization"], "bodyLen": len(body),
			})
			if ev.RawPath == "/binary" {
				return events.APIGatewayV2HTTPResponse{StatusCode: 200, IsBase64Encoded: true,
					Headers: map[string]string{"Content-Type": "application/octet-stream"},
					Body:    base64.StdEncoding.EncodeToString(body)}, nil
			}
			return events.APIGatewayV2HTTPResponse{StatusCode: 201, Headers: map[string]string{"Content-Type": "application/json"},
				Cookies: []string{"a=1"}, Body: string(echo)}, nil
		}
		return map[string]string{"ok": "scheduled"}, nil
	})
}
