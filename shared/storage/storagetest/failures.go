package storagetest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"

	"github.com/wedsync/backup-replication/shared/storage"
)

// failureSizes are the sizes at which failed uploads are tried: one
// request, just over one 6 MiB chunk, and (large) several multipart parts.
var failureSizes = []struct {
	name  string
	size  int64
	large bool
}{
	{"1KiB", 1024, false},
	{"6MiB+1", 6*MiB + 1, false},
	{"32MiB+1", 32*MiB + 1, true},
}

// eachFailureSize runs fn once per failure size on a fresh prefix.
func (s *suite) eachFailureSize(t *testing.T, fn func(t *testing.T, p storage.Provider, prefix string, size int64)) {
	for _, fs := range failureSizes {
		t.Run(fs.name, func(t *testing.T) {
			if fs.large && !s.large() {
				t.Skip("large case skipped (Options.SkipLarge or -short)")
			}
			p, prefix := s.setup(t)
			fn(t, p, prefix, fs.size)
		})
	}
}

// wantIntegrity checks that a failed Put reported kind Integrity.
func wantIntegrity(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: Put succeeded, want an integrity error", what)
		return
	}
	if storage.KindOf(err) != storage.Integrity || !errors.Is(err, storage.ErrIntegrity) {
		t.Errorf("%s: Put = %v (kind %s), want kind integrity", what, err, storage.KindOf(err))
	}
}

func (s *suite) testWrongSHA256(t *testing.T) {
	s.eachFailureSize(t, func(t *testing.T, p storage.Provider, prefix string, size int64) {
		key := prefix + "wrong-sha"
		c := newContent(key, size)
		wrong := newContent(key+"other", size).sums().sha256
		_, err := p.Put(t.Context(), key, c.reader(), size, storage.PutOptions{SHA256: wrong})
		wantIntegrity(t, "declared SHA-256 of other bytes", err)
		checkAbsent(t, p, key, prefix)
	})
}

func (s *suite) testShortSource(t *testing.T) {
	s.eachFailureSize(t, func(t *testing.T, p storage.Provider, prefix string, size int64) {
		key := prefix + "short"
		c := newContent(key, size)
		_, err := p.Put(t.Context(), key, io.LimitReader(c.reader(), size-1), size, storage.PutOptions{SHA256: c.sums().sha256})
		wantIntegrity(t, "source one byte shorter than declared", err)
		checkAbsent(t, p, key, prefix)
	})
}

func (s *suite) testLongSource(t *testing.T) {
	s.eachFailureSize(t, func(t *testing.T, p storage.Provider, prefix string, size int64) {
		key := prefix + "long"
		c := newContent(key, size+1)
		// The declared hash is that of the first size bytes: only the
		// extra byte is wrong.
		sum := sumsOf(io.LimitReader(c.reader(), size)).sha256
		_, err := p.Put(t.Context(), key, c.reader(), size, storage.PutOptions{SHA256: sum})
		wantIntegrity(t, "source one byte longer than declared", err)
		checkAbsent(t, p, key, prefix)
	})
}

func (s *suite) testCancel(t *testing.T) {
	for _, fail := range []bool{true, false} {
		name := "source-fails"
		if !fail {
			name = "source-continues"
		}
		t.Run(name, func(t *testing.T) {
			s.eachFailureSize(t, func(t *testing.T, p storage.Provider, prefix string, size int64) {
				key := prefix + "cancelled"
				c := newContent(key, size)
				want := c.sums()
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				r := &cancelReader{r: c.reader(), after: size / 2, cancel: cancel, ctx: ctx, fail: fail}
				_, err := p.Put(ctx, key, r, size, storage.PutOptions{SHA256: want.sha256})
				if fail {
					if err == nil {
						t.Errorf("Put whose context was cancelled and whose source failed after %d of %d bytes succeeded", r.after, size)
					}
					checkAbsent(t, p, key, prefix)
					return
				}
				// The source went on yielding: the provider may have sent
				// every byte before it saw the cancellation. An object may
				// then exist (even Put may succeed), but never a partial one.
				sctx, scancel := context.WithCancel(context.Background())
				defer scancel()
				info, serr := p.Stat(sctx, key)
				if serr == nil {
					t.Logf("Put returned %v, yet the whole object was stored", err)
					if info.Size != size || info.SHA256 != want.sha256 {
						t.Errorf("a cancelled Put left a partial object: %d bytes sha256 %q, want absent or %d bytes %q",
							info.Size, info.SHA256, size, want.sha256)
					}
				} else if !isNotFound(serr) {
					t.Errorf("Stat after a cancelled Put = %v, want not_found or the whole object", serr)
				}
			})
		})
	}
}

func (s *suite) testConcurrent(t *testing.T) {
	p, prefix := s.setup(t)
	const workers = 8
	var wg sync.WaitGroup
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Sprintf("%sworker-%d", prefix, i)
			c := newContent(key, int64(64<<10+i))
			opts := storage.PutOptions{
				SHA256:      c.sums().sha256,
				ContentType: fmt.Sprintf("application/x-worker-%d", i),
				Metadata:    map[string]string{"worker": fmt.Sprint(i)},
			}
			if _, err := p.Put(t.Context(), key, c.reader(), c.size, opts); err != nil {
				t.Errorf("concurrent Put(%q): %v", key, err)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	// Each object keeps its own content type and metadata: options of one
	// upload must not leak into another.
	for i := range workers {
		key := fmt.Sprintf("%sworker-%d", prefix, i)
		c := newContent(key, int64(64<<10+i))
		want := c.sums()
		info := checkStat(t, p, key, want)
		if ct := fmt.Sprintf("application/x-worker-%d", i); info.ContentType != ct {
			t.Errorf("Stat(%q).ContentType = %q, want %q", key, info.ContentType, ct)
		}
		if info.Metadata["worker"] != fmt.Sprint(i) {
			t.Errorf("Stat(%q).Metadata[worker] = %q, want %d", key, info.Metadata["worker"], i)
		}
		checkGet(t, p, key, want)
	}
}

func (s *suite) testProbe(t *testing.T) {
	p := s.newProvider(t)
	res, err := storage.Probe(t.Context(), p)
	if err != nil || !res.OK {
		t.Fatalf("Probe = %+v, %v; want OK", res, err)
	}
	if res.Provider != p.Name() || res.Latency <= 0 {
		t.Errorf("Probe = %+v: want provider %q and a positive latency", res, p.Name())
	}
}

func (s *suite) testBadCredentials(t *testing.T) {
	if s.opts.BadCredentials == nil {
		t.Skip("Options.BadCredentials not set: this provider's test cannot build a provider with rejected credentials")
	}
	p, prefix := s.setup(t)
	key := prefix + "exists"
	putSmall(t, p, key, "guarded")
	bad := s.opts.BadCredentials(t)

	want := func(op string, err error) {
		t.Helper()
		if storage.KindOf(err) != storage.Unauthorized || !errors.Is(err, storage.ErrUnauthorized) {
			t.Errorf("%s with bad credentials = %v (kind %s), want kind unauthorized", op, err, storage.KindOf(err))
		}
	}
	r, n, sum := small("intruder")
	_, err := bad.Put(t.Context(), prefix+"intruder", r, n, storage.PutOptions{SHA256: sum})
	want("Put", err)
	_, err = bad.Stat(t.Context(), key)
	want("Stat", err)
	_, err = bad.Stat(t.Context(), prefix+"missing")
	want("Stat(missing)", err)
	rc, err := bad.Get(t.Context(), key, 0, -1)
	if err == nil {
		rc.Close()
	}
	want("Get", err)
	want("List", bad.List(t.Context(), prefix, func(storage.ObjectInfo) error { return nil }))
	res, err := storage.Probe(t.Context(), bad)
	if res.OK || res.Kind != storage.Unauthorized.String() {
		t.Errorf("Probe with bad credentials = %+v, %v; want a failure of kind unauthorized", res, err)
	}
	checkAbsent(t, p, prefix+"intruder", prefix)
}
