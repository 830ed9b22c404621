package wsgateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-lambda-go/events"

	"github.com/wedsync/backup-replication/infra/local/samtemplate"
	"github.com/wedsync/backup-replication/infra/local/stack"
)

var _ stack.WebSocketGateway = (*Gateway)(nil)

// Start implements stack.WebSocketGateway: it reads the WebSocket API of
// template.yaml (the AWS::ApiGatewayV2::Api with ProtocolType WEBSOCKET,
// its routes, their integrations' functions, its stage and route
// responses), listens, and invokes each route's function through inv. It
// returns the URL clients connect to and the management endpoint (the
// functions' WS_ENDPOINT).
func (g *Gateway) Start(ctx context.Context, t *samtemplate.Template, inv stack.Invoker) (clientURL, endpointURL string, err error) {
	api, err := ReadAPI(t)
	if err != nil {
		return "", "", err
	}
	g.cfg.Stage, g.cfg.APIID = api.Stage, api.ID
	g.cfg.Routes, g.cfg.ResponseRoutes = nil, api.ResponseRoutes
	for key := range api.Functions {
		if !strings.HasPrefix(key, "$") {
			g.cfg.Routes = append(g.cfg.Routes, key)
		}
	}
	g.cfg.Function = &stackFunction{inv: inv, routes: api.Functions}
	if err := g.Listen(); err != nil {
		return "", "", err
	}
	return g.URL(), g.Endpoint(), nil
}

// API is a WebSocket API as template.yaml declares it.
type API struct {
	// ID is the API's local physical id; Stage its stage name.
	ID, Stage string
	// Functions maps each route key to the logical id of its function.
	Functions map[string]string
	// ResponseRoutes are the route keys with a route response.
	ResponseRoutes []string
}

// ReadAPI finds the template's WebSocket API. It requires route selection
// on $request.body.action (the only expression the gateway plays) and
// Lambda proxy integrations.
func ReadAPI(t *samtemplate.Template) (API, error) {
	var out API
	for _, id := range t.IDs("AWS::ApiGatewayV2::Api") {
		var p struct{ ProtocolType, RouteSelectionExpression string }
		props(t, id, &p)
		if p.ProtocolType != "WEBSOCKET" {
			continue
		}
		if out.ID != "" {
			return API{}, errors.New("wsgateway: template.yaml declares more than one WebSocket API")
		}
		if p.RouteSelectionExpression != "$request.body.action" {
			return API{}, fmt.Errorf("wsgateway: route selection %q is not played locally (only $request.body.action)", p.RouteSelectionExpression)
		}
		out.ID = t.Ref(id)
	}
	if out.ID == "" {
		return API{}, errors.New("wsgateway: template.yaml declares no WebSocket API")
	}
	integrations := map[string]string{} // "integrations/<ref>" → function logical id
	for _, id := range t.IDs("AWS::ApiGatewayV2::Integration") {
		var p struct{ ApiId, IntegrationType, IntegrationUri string }
		if props(t, id, &p); p.ApiId != out.ID {
			continue
		}
		arn := strings.TrimSuffix(p.IntegrationUri[strings.LastIndex(p.IntegrationUri, "functions/")+len("functions/"):], "/invocations")
		fn, ok := t.LogicalIDByArn(arn)
		if p.IntegrationType != "AWS_PROXY" || !ok || t.Functions[fn] == nil {
			return API{}, fmt.Errorf("wsgateway: integration %s is not a Lambda proxy to a function of the template", id)
		}
		integrations["integrations/"+t.Ref(id)] = fn
	}
	out.Functions = map[string]string{}
	routeKeys := map[string]string{} // route's Ref → key
	for _, id := range t.IDs("AWS::ApiGatewayV2::Route") {
		var p struct{ ApiId, RouteKey, Target string }
		if props(t, id, &p); p.ApiId != out.ID {
			continue
		}
		fn, ok := integrations[p.Target]
		if !ok {
			return API{}, fmt.Errorf("wsgateway: route %s targets %q, not a Lambda integration of the API", p.RouteKey, p.Target)
		}
		out.Functions[p.RouteKey] = fn
		routeKeys[t.Ref(id)] = p.RouteKey
	}
	for _, id := range t.IDs("AWS::ApiGatewayV2::RouteResponse") {
		var p struct{ ApiId, RouteId string }
		if props(t, id, &p); p.ApiId == out.ID && routeKeys[p.RouteId] != "" {
			out.ResponseRoutes = append(out.ResponseRoutes, routeKeys[p.RouteId])
		}
	}
	for _, id := range t.IDs("AWS::ApiGatewayV2::Stage") {
		var p struct{ ApiId, StageName string }
		if props(t, id, &p); p.ApiId == out.ID {
			out.Stage = p.StageName
		}
	}
	if out.Stage == "" {
		return API{}, errors.New("wsgateway: the WebSocket API has no stage")
	}
	return out, nil
}

// props decodes a resource's resolved Properties into v (best effort: a
// missing or odd property leaves its field empty, and the checks above
// report it).
func props(t *samtemplate.Template, id string, v any) {
	var raw struct{ Properties json.RawMessage }
	if json.Unmarshal(t.Raw[id], &raw) == nil {
		json.Unmarshal(raw.Properties, v)
	}
}

// stackFunction invokes a route's function of the local stack.
type stackFunction struct {
	inv    stack.Invoker
	routes map[string]string
}

func (f *stackFunction) Invoke(ctx context.Context, ev events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
	var resp events.APIGatewayProxyResponse
	fn, ok := f.routes[ev.RequestContext.RouteKey]
	if !ok {
		return resp, fmt.Errorf("no route %s", ev.RequestContext.RouteKey)
	}
	payload, err := json.Marshal(ev)
	if err != nil {
		return resp, err
	}
	out, err := f.inv.Invoke(ctx, fn, payload)
	if err != nil {
		return resp, err
	}
	if out.FunctionError != "" {
		return resp, fmt.Errorf("%s: function error (%s): %.300s", fn, out.FunctionError, out.Payload)
	}
	if err := json.Unmarshal(out.Payload, &resp); err != nil {
		return resp, fmt.Errorf("%s: answer is not an API Gateway proxy response: %.300s", fn, out.Payload)
	}
	return resp, nil
}
