package replicate

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/wedsync/backup-replication/infra/emulator"
	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/policy"
	"github.com/wedsync/backup-replication/shared/secret"
	"github.com/wedsync/backup-replication/shared/storage/supabase"
)

// TestSupabaseCopyProvedWithoutReadBack: a Supabase copy, sent in one
// request or by TUS (resumable), is proved by the upload's own evidence
// (its ETag: the MD5 of what was sent, or for TUS the MD5 of its parts), so the
// copy is never downloaded again to verify it; the stored bytes are right.
func TestSupabaseCopyProvedWithoutReadBack(t *testing.T) {
	e := newEnv(t)
	sb, err := emulator.StartSupabase("")
	emulator.Require(t, err)
	t.Cleanup(func() { sb.Close() })
	var downloads atomic.Int64
	target, _ := url.Parse(sb.URL)
	rp := httputil.NewSingleHostReverseProxy(target)
	edge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/storage/v1/object/") &&
			!strings.HasPrefix(r.URL.Path, "/storage/v1/object/info/") {
			downloads.Add(1)
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(edge.Close)
	p, err := supabase.New(supabase.Config{URL: edge.URL, ServiceKey: secret.Secret(sb.ServiceKey), Bucket: "primary"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.EnsureBucket(t.Context()); err != nil {
		t.Fatal(err)
	}
	table := policy.Table{Providers: append([]policy.Provider{{Name: "supabase", Role: policy.RolePrimary,
		Cloud: "supabase", Domain: "project", Order: 0}}, testTable.Providers...)}
	h := e.handlerWith(p, func(c *Config) { c.ResumeAbove = 8 << 20 }, func(d *Deps) { d.Policy = table })

	for _, tc := range []struct {
		name, evidence string
		size           int
	}{
		{"one request", "supabase-md5", 1 << 20},
		{"resumable (TUS)", "supabase-etag-parts-md5", 13 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := randomBytes(tc.size)
			b := e.upload(data, "")
			before := downloads.Load()
			if failed := handle(t, h, e.message(b, 1)); len(failed) != 0 {
				t.Fatalf("batch item failures %v; logs:\n%s", failed, e.logs.buf.String())
			}
			rep := e.replica(b, "supabase")
			if rep.State != catalog.ReplicaVerified || rep.Evidence != tc.evidence {
				t.Fatalf("replica %s, evidence %q; want VERIFIED by %q", rep.State, rep.Evidence, tc.evidence)
			}
			if n := downloads.Load() - before; n != 0 {
				t.Errorf("the copy was downloaded %d time(s) to verify it; the upload had proved it", n)
			}
			if got := readSum(t, p, b.LandingKey); got != b.SHA256 {
				t.Errorf("stored copy has sha256 %s, want %s", got, b.SHA256)
			}
		})
	}
}
