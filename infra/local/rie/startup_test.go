package rie

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// fakeRIE writes a stand-in for aws-lambda-rie: each run before the
// failures-th fails as aws-lambda-rie does when its port is taken (a
// panic line, exit 1); later runs listen on the address they are given
// and say so. It needs python3 for the listener.
func fakeRIE(t *testing.T, failures int) string {
	t.Helper()
	dir := t.TempDir()
	script := `#!/bin/sh
n=$(cat "` + dir + `/runs" 2>/dev/null || echo 0)
echo $((n+1)) > "` + dir + `/runs"
if [ "$n" -lt ` + itoa(failures) + ` ]; then
  echo "30 Nov 2026 11:03:13,923 [PANIC] (rapid) listen tcp $4: bind: address already in use"
  echo "panic: (*logrus.Entry) 0x17a6320a9810"
  exit 1
fi
exec python3 -c 'import socket,sys,time
h,p=sys.argv[1].rsplit(":",1); s=socket.socket(); s.bind((h,int(p))); s.listen()
print("up on", sys.argv[1], flush=True); time.sleep(60)' "$4"
`
	path := filepath.Join(dir, "aws-lambda-rie")
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

type lockedOutput struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedOutput) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedOutput) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestPortTakenAtStartIsNotACrash: an emulator attempt that cannot bind
// is started again on other ports and leaves no panic in the function's
// log (where it would read as the function crashing); what the emulator
// says once it listens does reach the log. When every attempt fails, the
// error says what the emulator said.
func TestPortTakenAtStartIsNotACrash(t *testing.T) {
	bootstrap := filepath.Join(t.TempDir(), "bootstrap")
	if err := os.WriteFile(bootstrap, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	out := &lockedOutput{}
	f, err := Start(t.Context(), Config{Name: "Fn", Bootstrap: bootstrap, RIE: fakeRIE(t, 1), Output: out})
	if err != nil {
		t.Fatalf("start after one port taken: %v", err)
	}
	f.Close()
	if log := out.String(); strings.Contains(strings.ToLower(log), "panic") || !strings.Contains(log, "[Fn] up on 127.0.0.1:") {
		t.Errorf("the function's log: %q; want the listening attempt's line and no panic", log)
	}

	out = &lockedOutput{}
	_, err = Start(t.Context(), Config{Name: "Fn", Bootstrap: bootstrap, RIE: fakeRIE(t, startAttempts), Output: out})
	if err == nil || !strings.Contains(err.Error(), "bind: address already in use") {
		t.Errorf("every attempt failing: %v; want the emulator's own words", err)
	}
	if log := out.String(); log != "" {
		t.Errorf("failed attempts wrote to the function's log: %q", log)
	}
}
