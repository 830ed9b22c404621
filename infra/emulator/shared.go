package emulator

import (
	"context"
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
