package stack

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/uuid"

	"github.com/wedsync/backup-replication/infra/local/rie"
	"github.com/wedsync/backup-replication/infra/local/samtemplate"
)

// HTTP API limits that API Gateway enforces and the local gateway copies.
const (
	httpAPIMaxBody = 10 << 20 // 10 MB request payload
	httpAPITimeout = 30 * time.Second
)

// httpRoute is one HttpApi event: a method and path template served by a function.
type httpRoute struct {
	method string
	path   string // "/backups/{id}/download"
	parts  []string
	fn     *rie.Function
}

// httpAPI plays API Gateway's HTTP API (payload format 2.0) on a loopback
// port: each request becomes an events.APIGatewayV2HTTPRequest for the
// function whose route matches, and its APIGatewayV2HTTPResponse is written
// back, base64 bodies included.
type httpAPI struct {
	routes    []httpRoute
	accountID string
	apiID     string
	log       *slog.Logger
	srv       *http.Server
	ln        net.Listener
}

func newHTTPAPI(fns map[string]*samtemplate.Function, running map[string]*rie.Function, accountID string, log *slog.Logger) *httpAPI {
	h := &httpAPI{accountID: accountID, apiID: "local", log: log}
	for id, f := range fns {
		r := running[id]
		if r == nil {
			continue
		}
		for _, e := range f.HTTP {
			h.routes = append(h.routes, httpRoute{method: strings.ToUpper(e.Method), path: e.Path, parts: splitPath(e.Path), fn: r})
		}
	}
	return h
}

// listen binds addr ("127.0.0.1:0" picks a port) and serves in the background.
func (h *httpAPI) listen(addr string) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("http api: %w", err)
	}
	h.ln = ln
	h.srv = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go h.srv.Serve(ln)
	return "http://" + ln.Addr().String(), nil
}

func (h *httpAPI) close() {
	if h.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		h.srv.Shutdown(ctx)
	}
}

// match finds the route for a request: exact segments beat {param}
// segments, and a path that matches no route for this method is 404, as on
// API Gateway.
func (h *httpAPI) match(method, path string) (*httpRoute, map[string]string) {
	segs := splitPath(path)
	var best *httpRoute
	var bestParams map[string]string
	bestScore := -1
	for i := range h.routes {
		rt := &h.routes[i]
		if rt.method != method && rt.method != "ANY" {
			continue
		}
		if len(rt.parts) != len(segs) {
			continue
		}
		params, score := map[string]string{}, 0
		ok := true
		for j, p := range rt.parts {
			if strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}") {
				params[p[1:len(p)-1]] = segs[j]
				continue
			}
			if p != segs[j] {
				ok = false
				break
			}
			score++
		}
		if ok && score > bestScore {
			best, bestParams, bestScore = rt, params, score
		}
	}
	return best, bestParams
}

func (h *httpAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt, params := h.match(r.Method, r.URL.EscapedPath())
	if rt == nil {
		gatewayError(w, http.StatusNotFound, "Not Found")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, httpAPIMaxBody+1))
	if err != nil {
		gatewayError(w, http.StatusBadRequest, "Bad Request")
		return
	}
	if len(body) > httpAPIMaxBody {
		gatewayError(w, http.StatusRequestEntityTooLarge, "Request Entity Too Large")
		return
	}
	ev := h.event(r, rt, params, body)
	payload, _ := json.Marshal(ev)
	ctx, cancel := context.WithTimeout(r.Context(), httpAPITimeout)
	defer cancel()
	resp, err := rt.fn.Invoke(ctx, payload)
	switch {
	case ctx.Err() == context.DeadlineExceeded:
		gatewayError(w, http.StatusServiceUnavailable, "Service Unavailable")
		return
	case err != nil:
		h.log.Warn("http api: invoke failed", "op", "invoke", "route", ev.RouteKey, "error", err.Error())
		gatewayError(w, http.StatusInternalServerError, "Internal Server Error")
		return
	case resp.FunctionError != "":
		gatewayError(w, http.StatusInternalServerError, "Internal Server Error")
		return
	}
	writeResponse(w, resp.Payload)
}

// event builds the payload format 2.0 request.
func (h *httpAPI) event(r *http.Request, rt *httpRoute, params map[string]string, body []byte) events.APIGatewayV2HTTPRequest {
	now := time.Now()
	headers := map[string]string{}
	var cookies []string
	for k, vs := range r.Header {
		lk := strings.ToLower(k)
		if lk == "cookie" {
			for _, v := range vs {
				for _, c := range strings.Split(v, ";") {
					if c = strings.TrimSpace(c); c != "" {
						cookies = append(cookies, c)
					}
				}
			}
			continue
		}
		headers[lk] = strings.Join(vs, ",")
	}
	headers["host"] = r.Host
	if len(body) > 0 || r.ContentLength >= 0 {
		headers["content-length"] = strconv.Itoa(len(body))
	}
	headers["x-forwarded-proto"] = "http"
	host, port, _ := net.SplitHostPort(r.RemoteAddr)
	headers["x-forwarded-for"] = host
	headers["x-forwarded-port"] = port
	var query map[string]string
	if q := r.URL.Query(); len(q) > 0 {
		query = map[string]string{}
		for k, vs := range q {
			query[k] = strings.Join(vs, ",")
		}
	}
	if len(params) == 0 {
		params = nil
	}
	routeKey := rt.method + " " + rt.path
	ev := events.APIGatewayV2HTTPRequest{
		Version:               "2.0",
		RouteKey:              routeKey,
		RawPath:               r.URL.EscapedPath(),
		RawQueryString:        r.URL.RawQuery,
		Cookies:               cookies,
		Headers:               headers,
		QueryStringParameters: query,
		PathParameters:        params,
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RouteKey:     routeKey,
			AccountID:    h.accountID,
			Stage:        "$default",
			RequestID:    uuid.NewString(),
			APIID:        h.apiID,
			DomainName:   r.Host,
			DomainPrefix: strings.Split(r.Host, ".")[0],
			Time:         now.UTC().Format("02/Jan/2006:15:04:05 -0700"),
			TimeEpoch:    now.UnixMilli(),
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{
				Method: r.Method, Path: r.URL.Path, Protocol: r.Proto,
				SourceIP: host, UserAgent: r.UserAgent(),
			},
		},
	}
	if len(body) > 0 {
		if isText(r.Header.Get("Content-Type")) && utf8.Valid(body) {
			ev.Body = string(body)
		} else {
			ev.Body, ev.IsBase64Encoded = base64.StdEncoding.EncodeToString(body), true
		}
	}
	return ev
}

// writeResponse writes a function's payload format 2.0 answer. A payload
// without statusCode is, as on API Gateway, a 200 JSON body.
func writeResponse(w http.ResponseWriter, payload []byte) {
	var probe map[string]json.RawMessage
	if json.Unmarshal(payload, &probe) != nil || probe["statusCode"] == nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		w.Write(payload)
		return
	}
	var resp events.APIGatewayV2HTTPResponse
	if err := json.Unmarshal(payload, &resp); err != nil || resp.StatusCode < 100 || resp.StatusCode > 599 {
		gatewayError(w, http.StatusInternalServerError, "Internal Server Error")
		return
	}
	body := []byte(resp.Body)
	if resp.IsBase64Encoded {
		b, err := base64.StdEncoding.DecodeString(resp.Body)
		if err != nil {
			gatewayError(w, http.StatusInternalServerError, "Internal Server Error")
			return
		}
		body = b
	}
	for k, v := range resp.Headers {
		w.Header().Set(k, v)
	}
	for k, vs := range resp.MultiValueHeaders {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	for _, c := range resp.Cookies {
		w.Header().Add("Set-Cookie", c)
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(resp.StatusCode)
	w.Write(body)
}

// gatewayError answers as API Gateway does for its own errors.
func gatewayError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"message":%q}`, msg)
}

func isText(ct string) bool {
	ct = strings.ToLower(ct)
	for _, t := range []string{"text/", "application/json", "application/xml", "application/x-www-form-urlencoded", "+json", "+xml", "application/javascript"} {
		if strings.Contains(ct, t) {
			return true
		}
	}
	return false
}

func splitPath(p string) []string {
	p = strings.Trim(p, "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}
