package decorate

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wedsync/backup-replication/shared/storage"
)

// observed records Metrics calls.
type observed struct {
	mu  sync.Mutex
	ops []string
}

func (o *observed) Observe(provider, op string, d time.Duration, bytes int64, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.ops = append(o.ops, provider+"/"+op)
}

// lines parses the JSON log lines.
func lines(t *testing.T, logs *logBuffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not JSON: %q", l)
		}
		out = append(out, m)
	}
	return out
}

func TestLoggingLinesUseTheSharedKeys(t *testing.T) {
	f, logs, m := newFake(), &logBuffer{}, &observed{}
	p := WithLogging(f, logs.logger(), m)
	key := "backups/org-7/bk-42"
	if _, err := p.Put(t.Context(), key, bytes.NewReader(contract), int64(len(contract)), storage.PutOptions{SHA256: sum(contract)}); err != nil {
		t.Fatal(err)
	}
	rc, err := p.Get(t.Context(), key, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(rc)
	if n := len(lines(t, logs)); n != 1 {
		t.Fatalf("Get logged before its body was closed (%d lines)", n)
	}
	rc.Close()
	f.failNext("delete", storage.NewError("delete", "fake", key, storage.Unauthorized,
		errors.New(`Delete "https://bucket.example/backups/org-7/bk-42?X-Amz-Signature=abc123&X-Amz-Credential=AKIA": 403`)))
	p.Delete(t.Context(), key)
	p.Stat(t.Context(), "backups/org-7/missing")

	ls := lines(t, logs)
	if len(ls) != 4 {
		t.Fatalf("got %d lines, want 4: %s", len(ls), logs)
	}
	want := []struct {
		op, level string
		bytes     float64
	}{{"put", "INFO", float64(len(contract))}, {"get", "DEBUG", float64(len(contract))}, {"delete", "WARN", 0}, {"stat", "INFO", 0}}
	for i, w := range want {
		l := ls[i]
		if l["op"] != w.op || l["level"] != w.level || l["provider"] != "fake" || l["bytes"] != w.bytes {
			t.Errorf("line %d = %v, want op %s level %s bytes %v", i, l, w.op, w.level, w.bytes)
		}
		if _, ok := l["duration_ms"]; !ok {
			t.Errorf("line %d has no duration_ms: %v", i, l)
		}
	}
	if ls[0]["backup_id"] != "bk-42" || ls[0]["key"] != key {
		t.Errorf("put line lacks backup_id/key: %v", ls[0])
	}
	if ls[2]["kind"] != "unauthorized" || strings.Contains(logs.String(), "abc123") || strings.Contains(logs.String(), "AKIA") {
		t.Errorf("delete failure line: %v (signature must be redacted)", ls[2])
	}
	if ls[3]["kind"] != "not_found" {
		t.Errorf("stat of a missing object: %v", ls[3])
	}
	if got := strings.Join(m.ops, ","); got != "fake/put,fake/get,fake/delete,fake/stat" {
		t.Errorf("metrics observed %s", got)
	}
}

func TestBackupID(t *testing.T) {
	for key, want := range map[string]string{
		"backups/org/b1": "b1", "backups/org/b1/extra": "", "_health/x": "", "backups//b1": "", "backups/org/": "",
	} {
		got := ""
		if a := backupID(key); len(a) == 2 {
			got = a[1].(string)
		}
		if got != want {
			t.Errorf("backupID(%q) = %q, want %q", key, got, want)
		}
	}
}
