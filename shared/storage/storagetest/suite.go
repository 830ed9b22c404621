// Package storagetest is the conformance suite every storage.Provider runs,
// in the manner of restic's shared backend tests: a provider's test builds
// a provider and calls Run. The subtests are named, independent, each on its
// own random prefix, and clean up after themselves. They test failure as
// well as success: a wrong declared SHA-256, a short source and a cancelled
// upload must each give an error and leave no object visible.
package storagetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/wedsync/backup-replication/shared/storage"
)

// MiB is 1<<20 bytes.
const MiB = 1 << 20

// Options adjust the suite to what a provider's test environment offers.
type Options struct {
	// SkipLarge skips the 100 MiB object and the 32 MiB failure cases.
	// testing.Short() skips them as well.
	SkipLarge bool

	// BadCredentials, when set, builds a provider for the same store with
	// credentials the store rejects; Put, Stat, Get and List must then fail
	// with kind Unauthorized. When nil the subtest skips and says why.
	BadCredentials func(t *testing.T) storage.Provider

	// MaxHeapGrowth, when positive, fails a large case whose live heap grows
	// by more than this many bytes while it streams. The growth is always
	// logged. Leave it zero when an in-process emulator shares the heap.
	MaxHeapGrowth int64

	// Prefix is put before every key the suite writes (for example
	// "conformance/" on a real bucket). The suite adds its own random part.
	Prefix string
}

// Run runs the conformance suite against the providers newProvider builds.
// newProvider is called once per subtest and may call t.Skip or t.Fatal.
func Run(t *testing.T, newProvider func(t *testing.T) storage.Provider, opts Options) {
	s := &suite{newProvider: newProvider, opts: opts, run: opts.Prefix + "storagetest-" + randomHex(6) + "/"}
	t.Run("Name", s.testName)
	t.Run("Sizes", s.testSizes)
	t.Run("Ranges", s.testRanges)
	t.Run("Metadata", s.testMetadata)
	t.Run("Overwrite", s.testOverwrite)
	t.Run("NotFound", s.testNotFound)
	t.Run("Delete", s.testDelete)
	t.Run("List", s.testList)
	t.Run("HostileKeys", s.testHostileKeys)
	t.Run("WrongSHA256", s.testWrongSHA256)
	t.Run("ShortSource", s.testShortSource)
	t.Run("LongSource", s.testLongSource)
	t.Run("Cancel", s.testCancel)
	t.Run("Concurrent", s.testConcurrent)
	t.Run("Probe", s.testProbe)
	t.Run("BadCredentials", s.testBadCredentials)
}

type suite struct {
	newProvider func(t *testing.T) storage.Provider
	opts        Options
	run         string
}

// large reports whether the large cases run.
func (s *suite) large() bool { return !s.opts.SkipLarge && !testing.Short() }

// setup returns a provider and a fresh prefix for t, and registers the
// removal of everything under the prefix when t ends.
func (s *suite) setup(t *testing.T) (storage.Provider, string) {
	t.Helper()
	p := s.newProvider(t)
	prefix := s.run + strings.ReplaceAll(t.Name(), "/", "_") + "-" + randomHex(3) + "/"
	t.Cleanup(func() { cleanup(t, p, prefix) })
	return p, prefix
}

// cleanup deletes every object under prefix, with its own deadline so that
// it runs after the test's context has ended.
func cleanup(t *testing.T, p storage.Provider, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var keys []string
	if err := p.List(ctx, prefix, func(o storage.ObjectInfo) error {
		keys = append(keys, o.Key)
		return nil
	}); err != nil {
		t.Logf("cleanup: list %q: %v", prefix, err)
		return
	}
	for _, k := range keys {
		if err := p.Delete(ctx, k); err != nil {
			t.Logf("cleanup: delete %q: %v", k, err)
		}
	}
}

// put stores c under key and checks what Put reports.
func put(t *testing.T, p storage.Provider, key string, c content, want sums, opts storage.PutOptions) storage.ObjectInfo {
	t.Helper()
	opts.SHA256 = want.sha256
	info, err := p.Put(t.Context(), key, c.reader(), c.size, opts)
	if err != nil {
		t.Fatalf("Put(%q, %d bytes): %v", key, c.size, err)
	}
	if info.Size != c.size || info.SHA256 != want.sha256 {
		t.Errorf("Put(%q) returned size %d sha256 %q, want %d %q", key, info.Size, info.SHA256, c.size, want.sha256)
	}
	return info
}

// putSmall stores the string s under key.
func putSmall(t *testing.T, p storage.Provider, key, s string) {
	t.Helper()
	r, n, sum := small(s)
	if _, err := p.Put(t.Context(), key, r, n, storage.PutOptions{SHA256: sum}); err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
}

// checkStat checks Stat against the sums of the bytes stored under key:
// size, our SHA-256 from metadata, and every provider checksum present.
func checkStat(t *testing.T, p storage.Provider, key string, want sums) storage.ObjectInfo {
	t.Helper()
	info, err := p.Stat(t.Context(), key)
	if err != nil {
		t.Fatalf("Stat(%q): %v", key, err)
	}
	if info.Key != key {
		t.Errorf("Stat(%q).Key = %q", key, info.Key)
	}
	if info.Size != want.size {
		t.Errorf("Stat(%q).Size = %d, want %d", key, info.Size, want.size)
	}
	if info.SHA256 != want.sha256 {
		t.Errorf("Stat(%q).SHA256 = %q, want %q (our metadata)", key, info.SHA256, want.sha256)
	}
	if info.ModTime.IsZero() {
		t.Errorf("Stat(%q).ModTime is zero", key)
	}
	c := info.Checksums
	if c.SHA256 != "" && c.SHA256 != want.sha256 {
		t.Errorf("Stat(%q).Checksums.SHA256 = %q, want %q", key, c.SHA256, want.sha256)
	}
	if c.MD5 != "" && c.MD5 != want.md5 {
		t.Errorf("Stat(%q).Checksums.MD5 = %q, want %q", key, c.MD5, want.md5)
	}
	if c.HasCRC32C && c.CRC32C != want.crc32c {
		t.Errorf("Stat(%q).Checksums.CRC32C = %08x, want %08x", key, c.CRC32C, want.crc32c)
	}
	return info
}

// checkGet reads the whole object under key and compares it with want.
func checkGet(t *testing.T, p storage.Provider, key string, want sums) {
	t.Helper()
	rc, err := p.Get(t.Context(), key, 0, -1)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	got, err := readAllSums(rc)
	if err != nil {
		t.Fatalf("Get(%q): reading: %v", key, err)
	}
	if got.size != want.size || got.sha256 != want.sha256 {
		t.Errorf("Get(%q) gave %d bytes sha256 %s, want %d bytes %s", key, got.size, got.sha256, want.size, want.sha256)
	}
}

// checkAbsent asserts that key is not visible: Stat gives NotFound and a
// listing of prefix does not show it.
func checkAbsent(t *testing.T, p storage.Provider, key, prefix string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if info, err := p.Stat(ctx, key); err == nil {
		t.Errorf("Stat(%q) found an object of %d bytes that must not be visible", key, info.Size)
	} else if !isNotFound(err) {
		t.Errorf("Stat(%q) = %v (kind %s), want kind not_found", key, err, storage.KindOf(err))
	}
	err := p.List(ctx, prefix, func(o storage.ObjectInfo) error {
		if o.Key == key {
			t.Errorf("List(%q) shows %q (%d bytes), which must not be visible", prefix, key, o.Size)
		}
		return nil
	})
	if err != nil {
		t.Errorf("List(%q): %v", prefix, err)
	}
}

// isNotFound reports whether err says not-found in every spelling callers use.
func isNotFound(err error) bool {
	return storage.KindOf(err) == storage.NotFound && errors.Is(err, storage.ErrNotFound) && errors.Is(err, fs.ErrNotExist)
}

// listKeys returns the keys List reports under prefix, failing on error.
func listKeys(t *testing.T, p storage.Provider, prefix string) map[string]storage.ObjectInfo {
	t.Helper()
	got := map[string]storage.ObjectInfo{}
	err := p.List(t.Context(), prefix, func(o storage.ObjectInfo) error {
		if _, dup := got[o.Key]; dup {
			t.Errorf("List(%q) reported %q twice", prefix, o.Key)
		}
		got[o.Key] = o
		return nil
	})
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return got
}

// drain reads rc to its end and closes it.
func drain(rc io.ReadCloser) ([]byte, error) {
	defer rc.Close()
	return io.ReadAll(rc)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
