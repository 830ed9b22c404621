// Package ws is the WebSocket API's route handler (API Gateway WebSocket
// API, Lambda proxy integration, route selection on $request.body.action):
//
//   - $connect: the caller proves who they are with a bearer token, in the
//     query string (?token=…, what a browser can send) or an Authorization
//     header; without a valid one the connection is refused (401). The
//     connection is recorded with its organization, and expires by TTL.
//   - $disconnect: the connection and its subscriptions are removed.
//   - subscribe / unsubscribe: {"action":"subscribe","backupId":"<id>"|"*"}.
//     A backup of another organization (or none) is refused exactly like a
//     missing one; "*" is every backup of the caller's organization plus
//     provider health and alerts.
//   - $default: anything else gets a JSON error.
//
// Replies ({"type":"subscribed"…} or {"type":"error","error":{code,
// message}}) are posted to the caller through the management API, since a
// route without a route response sends nothing back; they are also the
// integration's response body. functions/ws wires it to Lambda;
// infra/local/wsgateway plays API Gateway around the very same code.
package ws

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"

	"github.com/wedsync/backup-replication/shared/api"
	"github.com/wedsync/backup-replication/shared/catalog"
)

// Defaults of Config.
const (
	// DefaultTTL outlives API Gateway's two-hour connection limit a little.
	DefaultTTL              = 2*time.Hour + 10*time.Minute
	DefaultMaxSubscriptions = 100
	DefaultReplyTimeout     = 3 * time.Second
)

// Route keys the handler serves.
const (
	RouteConnect     = "$connect"
	RouteDisconnect  = "$disconnect"
	RouteDefault     = "$default"
	RouteSubscribe   = "subscribe"
	RouteUnsubscribe = "unsubscribe"
)

// Error codes of {"type":"error"} replies. Clients match on them.
const (
	CodeUnauthenticated      = "unauthenticated"
	CodeInvalidMessage       = "invalid_message"
	CodeUnknownAction        = "unknown_action"
	CodeNotConnected         = "not_connected"
	CodeSubscriptionDenied   = "subscription_denied"
	CodeTooManySubscriptions = "too_many_subscriptions"
	CodeUnavailable          = "unavailable"
)

// Config is the handler's behaviour; zero fields take the defaults.
type Config struct {
	// Endpoint is the management API URL replies are posted to
	// (https://{api-id}.execute-api.{region}.amazonaws.com/{stage}, or the
	// local gateway's). Empty: https://{domainName}/{stage} of each event.
	Endpoint string
	// TTL is how long a connection record lives without $disconnect.
	TTL time.Duration
	// MaxSubscriptions bounds the subscriptions of one connection.
	MaxSubscriptions int
	// ReplyTimeout bounds posting a reply.
	ReplyTimeout time.Duration
}

// Poster posts to a connection; *apigatewaymanagementapi.Client is one.
type Poster interface {
	PostToConnection(ctx context.Context, in *apigatewaymanagementapi.PostToConnectionInput,
		optFns ...func(*apigatewaymanagementapi.Options)) (*apigatewaymanagementapi.PostToConnectionOutput, error)
}

// BackupFinder reads a backup's record; catalog.Store is one.
type BackupFinder interface {
	GetBackup(ctx context.Context, id string) (catalog.Backup, error)
}

// Deps are the handler's ports.
type Deps struct {
	// Store keeps connections. Required.
	Store Store
	// Backups tells which organization a backup belongs to. Required.
	Backups BackupFinder
	// Auth checks the token (the API's authenticator: the same tokens
	// open the API and the socket). Required.
	Auth api.Authenticator
	// Replies posts replies; nil: replies only go in the response body.
	Replies Poster
	Logger  *slog.Logger // JSON; nil: discard
	Now     func() time.Time
}

// Handler serves the WebSocket routes.
type Handler struct {
	cfg Config
	d   Deps
	log *slog.Logger
}

// New checks deps and returns the handler.
func New(cfg Config, d Deps) (*Handler, error) {
	var errs []error
	if d.Store == nil {
		errs = append(errs, errors.New("ws: Deps.Store is required"))
	}
	if d.Backups == nil {
		errs = append(errs, errors.New("ws: Deps.Backups is required"))
	}
	if d.Auth == nil {
		errs = append(errs, errors.New("ws: Deps.Auth is required"))
	}
	if cfg.TTL < 0 || cfg.MaxSubscriptions < 0 || cfg.ReplyTimeout < 0 {
		errs = append(errs, errors.New("ws: negative TTL, subscription limit or reply timeout"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.MaxSubscriptions == 0 {
		cfg.MaxSubscriptions = DefaultMaxSubscriptions
	}
	if cfg.ReplyTimeout == 0 {
		cfg.ReplyTimeout = DefaultReplyTimeout
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	return &Handler{cfg: cfg, d: d, log: d.Logger}, nil
}

// Reply is what the handler sends back to the caller.
type Reply struct {
	Type     string      `json:"type"` // "subscribed", "unsubscribed" or "error"
	BackupID string      `json:"backupId,omitempty"`
	Status   string      `json:"status,omitempty"` // the backup's status when subscribed to one
	Error    *ReplyError `json:"error,omitempty"`
}

// ReplyError is a reply's error: a stable code and a message for people.
type ReplyError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// request is a message a client sends.
type request struct {
	Action   string `json:"action"`
	BackupID string `json:"backupId"`
}

// Handle serves one WebSocket event. It never returns an error and never
// panics: failures are answered with a status code and a JSON reply.
func (h *Handler) Handle(ctx context.Context, ev events.APIGatewayWebsocketProxyRequest) (resp events.APIGatewayProxyResponse, _ error) {
	start := h.d.Now()
	rc := ev.RequestContext
	route := rc.RouteKey
	log := h.log.With("op", "ws "+route, "connection_id", rc.ConnectionID)
	defer func() {
		if r := recover(); r != nil {
			log.ErrorContext(ctx, "ws handler panicked", "panic", fmt.Sprint(r))
			resp = answer(http.StatusInternalServerError, errorReply(CodeUnavailable, "the server failed; try again"))
		}
		log.InfoContext(ctx, "ws request", "status", resp.StatusCode, "duration_ms", h.d.Now().Sub(start).Milliseconds())
	}()
	switch route {
	case RouteConnect:
		return h.connect(ctx, ev, log), nil
	case RouteDisconnect:
		if err := h.d.Store.Disconnect(ctx, rc.ConnectionID); err != nil {
			log.WarnContext(ctx, "could not remove the connection; its records expire by TTL", "error", err.Error())
		}
		return answer(http.StatusOK, nil), nil
	case RouteSubscribe, RouteUnsubscribe:
		status, reply := h.subscription(ctx, ev, log)
		return h.reply(ctx, ev, status, reply, log), nil
	default:
		r := errorReply(CodeUnknownAction, `unknown action; send {"action":"subscribe","backupId":"<id>" or "*"} or "unsubscribe"`)
		return h.reply(ctx, ev, http.StatusBadRequest, r, log), nil
	}
}

func (h *Handler) connect(ctx context.Context, ev events.APIGatewayWebsocketProxyRequest, log *slog.Logger) events.APIGatewayProxyResponse {
	p, err := h.d.Auth.Authenticate(connectRequest(ctx, ev))
	if err != nil {
		if _, ok := token(ev); !ok {
			log.InfoContext(ctx, "ws connect refused: no token", "error", err.Error())
			return answer(http.StatusUnauthorized, errorReply(CodeUnauthenticated, "a bearer token is required (?token= or Authorization)"))
		}
		log.InfoContext(ctx, "ws connect refused", "error", err.Error())
		return answer(http.StatusUnauthorized, errorReply(CodeUnauthenticated, "the token is not valid"))
	}
	now := h.d.Now().UTC()
	c := Connection{ID: ev.RequestContext.ConnectionID, OrganizationID: p.OrganizationID, Subject: p.Subject,
		ConnectedAt: now, ExpiresAt: now.Add(h.cfg.TTL)}
	if c.ID == "" {
		return answer(http.StatusBadRequest, errorReply(CodeInvalidMessage, "no connection id"))
	}
	if err := h.d.Store.Connect(ctx, c); err != nil {
		log.ErrorContext(ctx, "ws connect: store failed", "error", err.Error())
		return answer(http.StatusInternalServerError, errorReply(CodeUnavailable, "cannot accept connections now; retry"))
	}
	log.InfoContext(ctx, "ws connected", "organization_id", c.OrganizationID)
	return answer(http.StatusOK, nil)
}

// subscription serves subscribe and unsubscribe.
func (h *Handler) subscription(ctx context.Context, ev events.APIGatewayWebsocketProxyRequest, log *slog.Logger) (int, *Reply) {
	var req request
	if err := json.Unmarshal([]byte(ev.Body), &req); err != nil || req.BackupID == "" {
		return http.StatusBadRequest, errorReply(CodeInvalidMessage, `send {"action":"`+ev.RequestContext.RouteKey+`","backupId":"<id>" or "*"}`)
	}
	if req.BackupID != AllBackups && !api.ValidID(req.BackupID) {
		return http.StatusBadRequest, errorReply(CodeInvalidMessage, "backupId is not a backup id or \"*\"")
	}
	c, err := h.d.Store.Connection(ctx, ev.RequestContext.ConnectionID)
	if errors.Is(err, ErrNotConnected) {
		return http.StatusGone, errorReply(CodeNotConnected, "this connection is not open; reconnect")
	}
	if err != nil {
		log.ErrorContext(ctx, "ws: store failed", "error", err.Error())
		return http.StatusInternalServerError, errorReply(CodeUnavailable, "try again")
	}
	log = log.With("backup_id", req.BackupID, "organization_id", c.OrganizationID)
	if ev.RequestContext.RouteKey == RouteUnsubscribe {
		if err := h.d.Store.Unsubscribe(ctx, c.ID, req.BackupID); err != nil {
			log.ErrorContext(ctx, "ws: store failed", "error", err.Error())
			return http.StatusInternalServerError, errorReply(CodeUnavailable, "try again")
		}
		return http.StatusOK, &Reply{Type: "unsubscribed", BackupID: req.BackupID}
	}
	out := &Reply{Type: "subscribed", BackupID: req.BackupID}
	if req.BackupID != AllBackups {
		b, err := h.d.Backups.GetBackup(ctx, req.BackupID)
		switch {
		case errors.Is(err, catalog.ErrNotFound) || (err == nil && b.OrganizationID != c.OrganizationID):
			// Another organization's backup is refused exactly like a
			// missing one: no answer tells that it exists.
			log.InfoContext(ctx, "ws subscription denied")
			return http.StatusForbidden, errorReply(CodeSubscriptionDenied, "no such backup in your organization")
		case err != nil:
			log.ErrorContext(ctx, "ws: catalog failed", "error", err.Error())
			return http.StatusInternalServerError, errorReply(CodeUnavailable, "try again")
		}
		out.Status = string(b.Status)
	}
	switch err := h.d.Store.Subscribe(ctx, c, req.BackupID, h.cfg.MaxSubscriptions); {
	case errors.Is(err, ErrTooManySubscriptions):
		return http.StatusTooManyRequests, errorReply(CodeTooManySubscriptions,
			fmt.Sprintf("at most %d subscriptions per connection; unsubscribe or use \"*\"", h.cfg.MaxSubscriptions))
	case err != nil:
		log.ErrorContext(ctx, "ws: store failed", "error", err.Error())
		return http.StatusInternalServerError, errorReply(CodeUnavailable, "try again")
	}
	log.InfoContext(ctx, "ws subscribed")
	return http.StatusOK, out
}

// reply posts r to the caller (best effort, bounded) and returns it as the
// response too. A connection that is not open gets no post.
func (h *Handler) reply(ctx context.Context, ev events.APIGatewayWebsocketProxyRequest, status int, r *Reply, log *slog.Logger) events.APIGatewayProxyResponse {
	resp := answer(status, r)
	if h.d.Replies == nil || status == http.StatusGone {
		return resp
	}
	endpoint := h.cfg.Endpoint
	if endpoint == "" && ev.RequestContext.DomainName != "" {
		endpoint = "https://" + ev.RequestContext.DomainName + "/" + ev.RequestContext.Stage
	}
	if endpoint == "" {
		return resp
	}
	pctx, cancel := context.WithTimeout(ctx, h.cfg.ReplyTimeout)
	defer cancel()
	_, err := h.d.Replies.PostToConnection(pctx, &apigatewaymanagementapi.PostToConnectionInput{
		ConnectionId: aws.String(ev.RequestContext.ConnectionID), Data: []byte(resp.Body)},
		func(o *apigatewaymanagementapi.Options) { o.BaseEndpoint = aws.String(endpoint) })
	if err != nil {
		log.WarnContext(ctx, "ws reply not delivered", "error", err.Error())
	}
	return resp
}

func errorReply(code, msg string) *Reply {
	return &Reply{Type: "error", Error: &ReplyError{Code: code, Message: msg}}
}

func answer(status int, r *Reply) events.APIGatewayProxyResponse {
	resp := events.APIGatewayProxyResponse{StatusCode: status, Headers: map[string]string{"Content-Type": "application/json"}}
	if r != nil {
		b, _ := json.Marshal(r)
		resp.Body = string(b)
	}
	return resp
}
