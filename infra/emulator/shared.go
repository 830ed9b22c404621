package emulator

import (
	"context"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
)

// sharedMoto is the moto_server one test binary shares (SharedMoto).
var sharedMoto struct {
	once sync.Once
	m    *Moto
	err  error
}

// SharedMoto returns the test binary's moto_server, started on first use,
// or ends the test as Require does when it cannot start. Tests keep apart
// by naming their own tables, buckets and keys. A package that uses it
// stops the server in its TestMain with RunSharingMoto.
func SharedMoto(tb testing.TB) *Moto {
	tb.Helper()
	sharedMoto.once.Do(func() { sharedMoto.m, sharedMoto.err = StartMoto(context.Background()) })
	Require(tb, sharedMoto.err)
	return sharedMoto.m
}

// RunSharingMoto runs the package's tests and then stops the shared
// moto_server, if one was started; it returns m.Run's code:
//
//	func TestMain(m *testing.M) { os.Exit(emulator.RunSharingMoto(m)) }
func RunSharingMoto(m *testing.M) int {
	code := m.Run()
	if sharedMoto.m != nil {
		sharedMoto.m.Close()
	}
	return code
}

// Serialize puts a proxy in front of target (a moto_server) that forwards
// one request at a time and returns its URL. DynamoDB applies each
// conditional write atomically; moto checks the condition and writes
// without a lock, so two concurrent conditional writes can both pass.
// Tests of our own concurrency (one winner among many writers) go through
// it so that they measure our code, not moto's races; the clients still
// run fully concurrently. The proxy lives as long as the test binary.
func Serialize(target string) (string, error) {
	u, err := url.Parse(target)
	if err != nil {
		return "", err
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	var mu sync.Mutex
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		proxy.ServeHTTP(w, r)
	}))
	return "http://" + ln.Addr().String(), nil
}
