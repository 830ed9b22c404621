package wsgateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wedsync/backup-replication/infra/emulator"
	"github.com/wedsync/backup-replication/infra/local/rie"
	"github.com/wedsync/backup-replication/infra/local/stack"
	"github.com/wedsync/backup-replication/infra/local/wsgateway"
	"github.com/wedsync/backup-replication/shared/api"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestLocalStackHook runs the ws function's bootstrap under aws-lambda-rie
// in the local stack, behind the gateway given as Options.WebSocket: a dev
// token opens a socket, a subscription is answered by the function itself
// through the management endpoint (its WS_ENDPOINT), and a missing token
// is refused at the handshake.
func TestLocalStackHook(t *testing.T) {
	if _, err := rie.FindRIE(); err != nil {
		emulator.Require(t, err)
	}
	if _, err := exec.LookPath("moto_server"); err != nil {
		emulator.Require(t, err)
	}
	if testing.Short() {
		t.Skip("builds and runs the ws function")
	}
	logs := &lockedBuffer{}
	g := wsgateway.New(wsgateway.Config{})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	s, err := stack.Start(ctx, stack.Options{Functions: []string{"WsFunction"}, ScheduleInterval: -1, WebSocket: g,
		StackName: "wsgw" + strings.ToLower(api.NewID(time.Now())[18:]), Output: logs})
	if err != nil {
		t.Fatalf("local stack: %v", err)
	}
	defer s.Close()
	if s.WebSocketURL != g.URL() || !strings.HasSuffix(g.URL(), "/live") {
		t.Errorf("stack's WebSocketURL %q, gateway %q (stage from the template)", s.WebSocketURL, g.URL())
	}

	if _, resp, err := websocket.Dial(ctx, s.WebSocketURL, nil); err == nil || resp == nil || resp.StatusCode != 401 {
		t.Errorf("no token: %v %+v, want the handshake refused with 401", err, resp)
	}
	org := api.NewID(time.Now())
	c, _, err := websocket.Dial(ctx, s.WebSocketURL+"?token="+stack.DevToken(org, time.Hour), nil)
	if err != nil {
		t.Fatalf("dial with a dev token: %v\n%s", err, logs)
	}
	defer c.CloseNow()
	c.Write(ctx, websocket.MessageText, []byte(`{"action":"subscribe","backupId":"*"}`))
	rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
	defer rcancel()
	_, b, err := c.Read(rctx)
	if err != nil {
		t.Fatalf("no reply to subscribe: %v\n%s", err, logs)
	}
	var reply struct{ Type, BackupID string }
	if json.Unmarshal(b, &reply); reply.Type != "subscribed" || reply.BackupID != "*" {
		t.Errorf("reply %s", b)
	}
	c.Write(ctx, websocket.MessageText, []byte(`{"action":"subscribe","backupId":"`+api.NewID(time.Now())+`"}`))
	if _, b, err = c.Read(rctx); err != nil || !strings.Contains(string(b), "subscription_denied") {
		t.Errorf("unknown backup: %s %v", b, err)
	}
}
