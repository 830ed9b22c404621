package ws

import (
	"context"
	"net/http"
	"strings"

	"github.com/aws/aws-lambda-go/events"
)

// TokenParam is the query parameter that carries the bearer token on
// $connect (browsers cannot set headers on a WebSocket). Tokens in URLs
// may reach access logs: keep them short-lived; the handler never logs it.
const TokenParam = "token"

// token finds the bearer token of a $connect: the token query parameter,
// else an "Authorization: Bearer …" header (any letter case).
func token(ev events.APIGatewayWebsocketProxyRequest) (string, bool) {
	if t := strings.TrimSpace(ev.QueryStringParameters[TokenParam]); t != "" {
		return t, true
	}
	for _, vs := range ev.MultiValueQueryStringParameters[TokenParam] {
		if t := strings.TrimSpace(vs); t != "" {
			return t, true
		}
	}
	var values []string
	for k, v := range ev.Headers {
		if strings.EqualFold(k, "Authorization") {
			values = append(values, v)
		}
	}
	for k, vs := range ev.MultiValueHeaders {
		if strings.EqualFold(k, "Authorization") {
			values = append(values, vs...)
		}
	}
	for _, v := range values {
		scheme, t, ok := strings.Cut(strings.TrimSpace(v), " ")
		if t = strings.TrimSpace(t); ok && strings.EqualFold(scheme, "Bearer") && t != "" {
			return t, true
		}
	}
	return "", false
}

// connectRequest is the $connect as the API's authenticators read it: the
// handshake's headers (so API_AUTH_MODE=dev's X-Dev-Organization and
// X-Dev-Subject reach DevAuthenticator, as they do on the HTTP API), with
// the bearer token, wherever it came from, as the Authorization header.
func connectRequest(ctx context.Context, ev events.APIGatewayWebsocketProxyRequest) *http.Request {
	r, _ := http.NewRequestWithContext(ctx, http.MethodGet, "/", nil)
	for k, vs := range ev.MultiValueHeaders {
		for _, v := range vs {
			r.Header.Add(k, v)
		}
	}
	for k, v := range ev.Headers {
		if r.Header.Get(k) == "" {
			r.Header.Set(k, v)
		}
	}
	r.Header.Del("Authorization")
	if tok, ok := token(ev); ok {
		r.Header.Set("Authorization", "Bearer "+tok)
	}
	return r
}
