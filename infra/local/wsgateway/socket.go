package wsgateway

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
	"github.com/coder/websocket"
)

// client is one open connection.
type client struct {
	id          string
	ready       chan struct{}   // closed once conn is set (or the upgrade failed)
	conn        *websocket.Conn // nil until ready; stays nil if the upgrade failed
	sourceIP    string
	userAgent   string
	headers     map[string]string
	connectedAt time.Time
	lastActive  atomic.Int64 // unix nanoseconds
	closeOnce   sync.Once
	mu          sync.Mutex
	closeCode   websocket.StatusCode // set when this side closed
	closeReason string
}

func (c *client) touch() { c.lastActive.Store(time.Now().UnixNano()) }

// close closes the socket with code; the read loop then disconnects.
func (c *client) close(code websocket.StatusCode, reason string) {
	if c.conn == nil {
		return
	}
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closeCode, c.closeReason = code, reason
		c.mu.Unlock()
		go c.conn.Close(code, reason)
	})
}

// closedBy returns the code and reason this side closed with (0 if it did not).
func (c *client) closedBy() (websocket.StatusCode, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeCode, c.closeReason
}

// serveSocket plays the handshake: $connect first, the upgrade only if the
// function accepts.
func (g *Gateway) serveSocket(w http.ResponseWriter, r *http.Request) {
	id := newConnectionID()
	now := time.Now()
	ip, _, _ := net.SplitHostPort(r.RemoteAddr)
	c := &client{id: id, sourceIP: ip, userAgent: r.UserAgent(), connectedAt: now, headers: singleHeaders(r)}
	ev := g.event(c, "$connect", "CONNECT", now)
	ev.Headers, ev.MultiValueHeaders = c.headers, multiHeaders(r)
	if q := r.URL.Query(); len(q) > 0 {
		ev.QueryStringParameters, ev.MultiValueQueryStringParameters = map[string]string{}, map[string][]string(q)
		for k, vs := range q {
			ev.QueryStringParameters[k] = vs[len(vs)-1]
		}
	}
	resp, err := g.invoke(r.Context(), ev)
	status := resp.StatusCode
	if err != nil {
		g.log.Warn("$connect invocation failed", "connection_id", id, "error", err.Error())
		status = http.StatusInternalServerError
	}
	if status < 200 || status > 299 {
		if status == 0 {
			status = http.StatusInternalServerError
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		w.Write([]byte(resp.Body))
		return
	}
	// Registered before the upgrade answers, so that a post right after
	// the client's handshake finds it (lookup waits for ready).
	c.ready = make(chan struct{})
	g.mu.Lock()
	g.conns[id] = c
	g.wg.Add(1)
	g.mu.Unlock()
	defer g.wg.Done()
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true}) // API Gateway checks no Origin
	if err != nil {
		g.log.Warn("websocket upgrade failed after $connect", "connection_id", id, "error", err.Error())
		close(c.ready)
		g.disconnect(c, 1006, "upgrade failed")
		return
	}
	conn.SetReadLimit(MaxMessage)
	c.conn = conn
	c.touch()
	close(c.ready)
	g.readLoop(c)
}

// readLoop routes each message until the socket closes, then disconnects.
func (g *Gateway) readLoop(c *client) {
	stop := make(chan struct{})
	go g.watchdog(c, stop)
	defer close(stop)
	for {
		typ, data, err := c.conn.Read(g.ctx)
		if err != nil {
			code, reason := websocket.CloseStatus(err), ""
			var ce websocket.CloseError
			if errors.As(err, &ce) {
				reason = ce.Reason
			}
			if own, why := c.closedBy(); own != 0 {
				code, reason = own, why
			}
			if code == -1 {
				code = websocket.StatusAbnormalClosure
			}
			g.disconnect(c, int64(code), reason)
			return
		}
		c.touch()
		g.route(c, typ, data)
	}
}

// watchdog closes a connection idle for IdleTimeout or older than
// MaxLifetime, as API Gateway does.
func (g *Gateway) watchdog(c *client, stop <-chan struct{}) {
	tick := time.NewTicker(min(g.cfg.IdleTimeout/4, time.Second))
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-tick.C:
			if now.Sub(time.Unix(0, c.lastActive.Load())) > g.cfg.IdleTimeout {
				c.close(websocket.StatusGoingAway, "Going away")
			} else if now.Sub(c.connectedAt) > g.cfg.MaxLifetime {
				c.close(websocket.StatusGoingAway, "Going away")
			}
		}
	}
}

// route selects the route on $request.body.action and invokes it.
func (g *Gateway) route(c *client, typ websocket.MessageType, data []byte) {
	key := "$default"
	var body struct {
		Action any `json:"action"`
	}
	if json.Unmarshal(data, &body) == nil {
		if a, ok := body.Action.(string); ok && g.routes[a] {
			key = a
		}
	}
	ev := g.event(c, key, "MESSAGE", time.Now())
	ev.RequestContext.MessageID = newConnectionID()
	if typ == websocket.MessageBinary || !utf8.Valid(data) {
		ev.Body, ev.IsBase64Encoded = base64.StdEncoding.EncodeToString(data), true
	} else {
		ev.Body = string(data)
	}
	resp, err := g.invoke(g.ctx, ev)
	switch {
	case err != nil:
		g.log.Warn("route invocation failed", "route", key, "connection_id", c.id, "error", err.Error())
		msg, _ := json.Marshal(map[string]string{"message": "Internal server error", "connectionId": c.id,
			"requestId": ev.RequestContext.RequestID})
		g.send(c, msg)
	case g.answer[key] && resp.Body != "":
		g.send(c, []byte(resp.Body))
	}
}

// send writes one message to a client; a failed write closes it.
func (g *Gateway) send(c *client, data []byte) error {
	ctx, cancel := context.WithTimeout(g.ctx, writeTimeout)
	defer cancel()
	typ := websocket.MessageText
	if !utf8.Valid(data) {
		typ = websocket.MessageBinary
	}
	if err := c.conn.Write(ctx, typ, data); err != nil {
		c.close(websocket.StatusAbnormalClosure, "write failed")
		return err
	}
	c.touch()
	return nil
}

// disconnect forgets c and delivers $disconnect.
func (g *Gateway) disconnect(c *client, code int64, reason string) {
	g.mu.Lock()
	delete(g.conns, c.id)
	g.mu.Unlock()
	ev := g.event(c, "$disconnect", "DISCONNECT", time.Now())
	ev.Headers = c.headers
	ev.RequestContext.DisconnectStatusCode = code
	ev.RequestContext.DisconnectReason = &reason
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.InvokeTimeout)
	defer cancel()
	if _, err := g.invoke(ctx, ev); err != nil {
		g.log.Warn("$disconnect invocation failed", "connection_id", c.id, "error", err.Error())
	}
}

// invoke calls the function, bounded by InvokeTimeout.
func (g *Gateway) invoke(ctx context.Context, ev events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, g.cfg.InvokeTimeout)
	defer cancel()
	resp, err := g.cfg.Function.Invoke(ctx, ev)
	if err != nil {
		return resp, fmt.Errorf("%s: %w", ev.RequestContext.RouteKey, err)
	}
	return resp, nil
}

// event is the skeleton of an event for c, as API Gateway fills it.
func (g *Gateway) event(c *client, route, eventType string, at time.Time) events.APIGatewayWebsocketProxyRequest {
	host := g.ln.Addr().String()
	rid := newConnectionID()
	return events.APIGatewayWebsocketProxyRequest{RequestContext: events.APIGatewayWebsocketProxyRequestContext{
		RouteKey: route, EventType: eventType, ConnectionID: c.id, ConnectedAt: c.connectedAt.UnixMilli(),
		DomainName: host, Stage: g.cfg.Stage, APIID: g.cfg.APIID, RequestID: rid, ExtendedRequestID: rid,
		MessageDirection: "IN", RequestTime: at.UTC().Format("02/Jan/2006:15:04:05 -0700"), RequestTimeEpoch: at.UnixMilli(),
		Identity: events.APIGatewayRequestIdentity{SourceIP: c.sourceIP, UserAgent: c.userAgent},
	}}
}

// newConnectionID returns an id shaped like API Gateway's ("L0SM9cOFvHcCIhw="):
// 15 letters and digits and a trailing "=", which clients must URL-encode.
func newConnectionID() string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 15)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b) + "="
}

func singleHeaders(r *http.Request) map[string]string {
	h := map[string]string{"Host": r.Host}
	for k, vs := range r.Header {
		h[k] = strings.Join(vs, ",")
	}
	return h
}

func multiHeaders(r *http.Request) map[string][]string {
	h := map[string][]string{"Host": {r.Host}}
	for k, vs := range r.Header {
		h[k] = append([]string(nil), vs...)
	}
	return h
}
