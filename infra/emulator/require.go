// Package emulator starts the local servers that tests and the local stack
// run against (moto_server for AWS, fake-gcs-server, the Supabase Storage
// emulator) and decides what a test does when one cannot be started.
package emulator

import (
	"os"
	"testing"
)

// RequireEnv is the environment switch that turns a missing emulator from a
// skip into a failure (CI sets it, so a silent skip cannot pass for green).
const RequireEnv = "REQUIRE_EMULATORS"

// Require does nothing when err is nil. Otherwise it ends the test: with
// tb.Fatalf when REQUIRE_EMULATORS=1, with tb.Skipf otherwise, giving err as
// the reason in both cases.
func Require(tb testing.TB, err error) {
	tb.Helper()
	if err == nil {
		return
	}
	if os.Getenv(RequireEnv) == "1" {
		tb.Fatalf("emulator required (%s=1) but unavailable: %v", RequireEnv, err)
	}
	tb.Skipf("emulator unavailable, skipping (set %s=1 to fail instead): %v", RequireEnv, err)
}
