package storagetest

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"runtime/metrics"
	"sync"
	"testing"
	"time"

	"github.com/wedsync/backup-replication/shared/storage"
)

// content is a deterministic pseudo-random byte stream of a given size,
// generated on demand so that no case ever holds a large object in memory.
type content struct {
	seed [32]byte
	size int64
}

// newContent derives the stream from name, so a case's bytes are the same
// on every run and different between cases.
func newContent(name string, size int64) content {
	return content{seed: sha256.Sum256([]byte(name)), size: size}
}

// reader streams the whole content.
func (c content) reader() io.Reader {
	return io.LimitReader(rand.NewChaCha8(c.seed), c.size)
}

// bytesAt returns n bytes of the content from off (for small ranges only).
func (c content) bytesAt(off, n int64) []byte {
	r := c.reader()
	if _, err := io.CopyN(io.Discard, r, off); err != nil {
		return nil
	}
	b, _ := io.ReadAll(io.LimitReader(r, n))
	return b
}

// sums are the digests a provider may report for some bytes.
type sums struct {
	size   int64
	sha256 string
	md5    string
	crc32c uint32
}

// sums streams the content through the three hashes.
func (c content) sums() sums { return sumsOf(c.reader()) }

func sumsOf(r io.Reader) sums {
	sh, m5, crc := sha256.New(), md5.New(), crc32.New(storage.CastagnoliTable)
	n, _ := io.Copy(io.MultiWriter(sh, m5, crc), r)
	return sums{size: n, sha256: hex.EncodeToString(sh.Sum(nil)),
		md5: hex.EncodeToString(m5.Sum(nil)), crc32c: crc.Sum32()}
}

// readAllSums reads a Get stream to its end, hashing it, and closes it.
func readAllSums(rc io.ReadCloser) (sums, error) {
	defer rc.Close()
	sh, m5, crc := sha256.New(), md5.New(), crc32.New(storage.CastagnoliTable)
	n, err := io.Copy(io.MultiWriter(sh, m5, crc), rc)
	return sums{size: n, sha256: hex.EncodeToString(sh.Sum(nil)),
		md5: hex.EncodeToString(m5.Sum(nil)), crc32c: crc.Sum32()}, err
}

// cancelReader yields its source and cancels ctx once after bytes have been
// read. With fail set, every later Read returns the context's error, as a
// source bound to the same context would (a landing-bucket stream when the
// Lambda runs out of time); otherwise it keeps yielding bytes and only the
// provider's own attention to ctx can stop the upload.
type cancelReader struct {
	r      io.Reader
	after  int64
	cancel context.CancelFunc
	ctx    context.Context
	fail   bool
	n      int64
}

func (c *cancelReader) Read(p []byte) (int, error) {
	if c.n >= c.after {
		c.cancel()
		if c.fail {
			<-c.ctx.Done()
			return 0, c.ctx.Err()
		}
	}
	if rem := c.after - c.n; rem > 0 && int64(len(p)) > rem {
		p = p[:rem]
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// heapWatch samples the live heap while a large case runs and reports the
// peak growth over the baseline taken when it started.
type heapWatch struct {
	base int64
	peak int64
	stop chan struct{}
	done sync.WaitGroup
}

const heapMetric = "/memory/classes/heap/objects:bytes"

func heapNow() int64 {
	s := []metrics.Sample{{Name: heapMetric}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return int64(s[0].Value.Uint64())
}

func watchHeap() *heapWatch {
	h := &heapWatch{base: heapNow(), stop: make(chan struct{})}
	h.peak = h.base
	h.done.Add(1)
	go func() {
		defer h.done.Done()
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-h.stop:
				return
			case <-t.C:
				if v := heapNow(); v > h.peak {
					h.peak = v
				}
			}
		}
	}()
	return h
}

// end stops sampling and returns the peak growth in bytes.
func (h *heapWatch) end() int64 {
	close(h.stop)
	h.done.Wait()
	return h.peak - h.base
}

// checkHeap logs the heap growth of a large transfer and fails the test when
// it exceeds opts.MaxHeapGrowth (when that is set).
func checkHeap(t *testing.T, opts Options, what string, growth int64) {
	t.Helper()
	t.Logf("%s: peak heap growth %.1f MiB", what, float64(growth)/(1<<20))
	if opts.MaxHeapGrowth > 0 && growth > opts.MaxHeapGrowth {
		t.Errorf("%s: heap grew by %.1f MiB, more than the allowed %.1f MiB: the provider does not stream",
			what, float64(growth)/(1<<20), float64(opts.MaxHeapGrowth)/(1<<20))
	}
}

// small returns an in-memory reader for tiny fixtures.
func small(s string) (io.Reader, int64, string) {
	sum := sha256.Sum256([]byte(s))
	return bytes.NewReader([]byte(s)), int64(len(s)), hex.EncodeToString(sum[:])
}
