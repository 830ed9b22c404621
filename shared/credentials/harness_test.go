package credentials_test

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wedsync/backup-replication/shared/credentials"
	"github.com/wedsync/backup-replication/shared/credentials/credtest"
)

// side is this package's own moto with IAM enforced (credtest.IAMMoto).
var side credtest.IAMMoto

func TestMain(m *testing.M) {
	code := m.Run()
	side.Close()
	os.Exit(code)
}

// world is one test's AWS side (credtest.World) and a loader over it.
type world struct{ *credtest.World }

func newWorld(t *testing.T) *world {
	t.Helper()
	return &world{side.World(t)}
}

// loader reads with a TTL long enough that only a refusal or the test's
// clock makes it read again.
func (w *world) loader(clock *clock) *credentials.Loader {
	cfg := credentials.LoaderConfig{TTL: time.Hour, MinRefresh: time.Nanosecond}
	if clock != nil {
		cfg.Now = clock.Now
	}
	return credentials.NewLoader(w.SM, cfg)
}

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// since returns the gate requests after the first n.
func since(reqs []credtest.Request, n int) []credtest.Request {
	if n > len(reqs) {
		return nil
	}
	return reqs[n:]
}

// describe renders requests for failure messages.
func describe(reqs []credtest.Request) string {
	var b strings.Builder
	for _, r := range reqs {
		fmt.Fprintf(&b, "\n  %s %s cred=%s status=%d refused=%v", r.Method, r.Path, r.Credential, r.Status, r.Refused)
	}
	return b.String()
}
