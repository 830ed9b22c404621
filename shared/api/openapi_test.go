package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/awslabs/aws-lambda-go-api-proxy/httpadapter"

	"github.com/wedsync/backup-replication/shared/api"
)

// specRoutes reads the method+path pairs the OpenAPI description lists.
func specRoutes(t *testing.T, spec []byte) map[api.Route]bool {
	t.Helper()
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(spec, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi version %q", doc.OpenAPI)
	}
	out := map[api.Route]bool{}
	for path, item := range doc.Paths {
		for method := range item {
			switch method {
			case "get", "put", "post", "delete", "patch", "head", "options":
				out[api.Route{Method: strings.ToUpper(method), Path: path}] = true
			}
		}
	}
	return out
}

func TestOpenAPIMatchesRoutes(t *testing.T) {
	e := newEnv(t, nil)
	r := e.call("GET", "/openapi.json", "", nil)
	if r.Status != 200 || !bytes.Equal(r.Body, api.OpenAPISpec) {
		t.Fatalf("GET /openapi.json: %d, %d bytes", r.Status, len(r.Body))
	}
	listed := specRoutes(t, r.Body)
	served := map[api.Route]bool{}
	for _, rt := range api.Routes() {
		served[rt] = true
		if !listed[rt] {
			t.Errorf("%s %s is served but not in openapi.json", rt.Method, rt.Path)
		}
	}
	var names []string
	for rt := range listed {
		names = append(names, rt.Method+" "+rt.Path)
		if !served[rt] {
			t.Errorf("%s %s is in openapi.json but not in the route table", rt.Method, rt.Path)
		}
		// Whatever the route table says, the mux must answer the request.
		r := e.call(rt.Method, concrete(rt.Path, "01ABC"), "org1", "{}")
		if c := r.code(); c == api.CodeRouteNotFound || c == api.CodeMethodNotAllowed || r.Status == 405 {
			t.Errorf("%s %s: the mux answered %d %s", rt.Method, rt.Path, r.Status, r.Body)
		}
	}
	sort.Strings(names)
	t.Logf("%d routes: %s", len(names), strings.Join(names, ", "))

	// And what it does not serve it says so in JSON.
	if r := e.call("GET", "/nope", "org1", nil); r.Status != 404 || r.code() != api.CodeRouteNotFound {
		t.Errorf("unknown route: %d %s", r.Status, r.Body)
	}
	if r := e.call("DELETE", "/backups", "org1", nil); r.Status != 405 || r.code() != api.CodeMethodNotAllowed {
		t.Errorf("DELETE /backups: %d %s", r.Status, r.Body)
	}
}

// TestLambdaAdapter serves the handler the way functions/api does: an API
// Gateway HTTP API (v2) event through httpadapter.
func TestLambdaAdapter(t *testing.T) {
	e := newEnv(t, nil)
	body, _ := json.Marshal(createReq("org1", "timeline.pdf", []byte("timeline")))
	proxy := httpadapter.NewV2(e.h).ProxyWithContext
	ev := events.APIGatewayV2HTTPRequest{
		Version: "2.0", RouteKey: "$default", RawPath: "/backups",
		Headers: map[string]string{"content-type": "application/json", "authorization": "Bearer " + token(t, "org1", nil)},
		Body:    string(body),
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			DomainName: "api.example.com", Stage: "$default", TimeEpoch: time.Now().UnixMilli(),
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: "POST", Path: "/backups", Protocol: "HTTP/1.1", SourceIP: "203.0.113.9"},
		},
	}
	resp, err := proxy(context.Background(), ev)
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /backups through the adapter: %v %d %s", err, resp.StatusCode, resp.Body)
	}
	var out api.BackupResponse
	if err := json.Unmarshal([]byte(resp.Body), &out); err != nil || out.Upload.URL == "" {
		t.Fatalf("answer %s: %v", resp.Body, err)
	}
	ev.RawPath, ev.RequestContext.HTTP.Method, ev.RequestContext.HTTP.Path, ev.Body = "/backups/"+out.Backup.ID, "GET", "/backups/"+out.Backup.ID, ""
	resp, err = proxy(context.Background(), ev)
	if err != nil || resp.StatusCode != 200 || !strings.Contains(resp.Body, out.Backup.ID) {
		t.Fatalf("GET /backups/{id} through the adapter: %v %d %s", err, resp.StatusCode, resp.Body)
	}
}
