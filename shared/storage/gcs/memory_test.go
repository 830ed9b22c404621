package gcs

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"io"
	"math/rand/v2"
	"runtime"
	"runtime/metrics"
	"sync"
	"testing"
	"time"

	"github.com/wedsync/backup-replication/shared/storage"
)

// sinkSize is the object size BenchmarkPutSink uploads; the memory
// check runs it at 4 GiB:
//
//	go test -run '^$' -bench PutSink -benchtime 1x ./shared/storage/gcs -args -gcs.sink-size=4294967296
var sinkSize = flag.Int64("gcs.sink-size", 256<<20, "object size for BenchmarkPutSink, in bytes")

// maxHeapGrowth is the memory target: no more than 64 MiB above the
// baseline while an object streams, whatever its size.
const maxHeapGrowth = 64 << 20

// stream is a deterministic pseudo-random object of n bytes, generated on
// demand so that no test holds it in memory.
func stream(n int64) io.Reader {
	return io.LimitReader(rand.NewChaCha8([32]byte{'w', 'e', 'd'}), n)
}

var (
	streamSums   = map[int64]string{}
	streamSumsMu sync.Mutex
)

// streamSHA256 hashes stream(n) once per size.
func streamSHA256(n int64) string {
	streamSumsMu.Lock()
	defer streamSumsMu.Unlock()
	if s, ok := streamSums[n]; ok {
		return s
	}
	h := sha256.New()
	io.Copy(h, stream(n))
	streamSums[n] = hex.EncodeToString(h.Sum(nil))
	return streamSums[n]
}

// peakHeap samples the live heap every 10 ms while fn runs and returns the
// peak growth over the baseline taken just before.
func peakHeap(fn func()) int64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() int64 { metrics.Read(s); return int64(s[0].Value.Uint64()) }
	base := read()
	peak := base
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				peak = max(peak, read())
			}
		}
	}()
	fn()
	close(stop)
	<-done
	return max(peak, read()) - base
}

var sinkModes = []struct {
	name  string
	chunk int
}{
	{"chunks-16MiB", DefaultChunkSize},
	{"one-request", 0},
}

// TestPutSinkMemory streams 256 MiB through Put to the sink in each upload
// mode and checks that the live heap stays within the 64 MiB, and
// that the sink's CRC32C and MD5 agree with ours (Put would fail otherwise).
func TestPutSinkMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("256 MiB memory check skipped in -short")
	}
	const size = 256 << 20
	sum := streamSHA256(size)
	sink := newSink(t)
	for _, m := range sinkModes {
		t.Run(m.name, func(t *testing.T) {
			p := newTestProvider(t, Config{Endpoint: sink.URL, ChunkSize: m.chunk})
			var err error
			growth := peakHeap(func() {
				_, err = p.Put(t.Context(), "sink/"+m.name, stream(size), size, storage.PutOptions{SHA256: sum})
			})
			if err != nil {
				t.Fatalf("Put to the sink: %v", err)
			}
			t.Logf("%s: 256 MiB, peak heap growth %.1f MiB", m.name, float64(growth)/(1<<20))
			if growth > maxHeapGrowth {
				t.Errorf("heap grew by %.1f MiB while streaming, more than %d MiB", float64(growth)/(1<<20), maxHeapGrowth>>20)
			}
		})
	}
}

// BenchmarkPutSink measures Put's throughput and peak heap growth to a sink
// that speaks the resumable protocol and discards the bytes (the emulator is
// not in the measurement; the provider's hashing, buffering and HTTP are).
func BenchmarkPutSink(b *testing.B) {
	size := *sinkSize
	sum := streamSHA256(size)
	sink := newSink(b)
	for _, m := range sinkModes {
		b.Run(m.name, func(b *testing.B) {
			p := newTestProvider(b, Config{Endpoint: sink.URL, ChunkSize: m.chunk})
			b.SetBytes(size)
			var peak int64
			b.ResetTimer()
			for range b.N {
				growth := peakHeap(func() {
					if _, err := p.Put(b.Context(), "sink/bench", stream(size), size, storage.PutOptions{SHA256: sum}); err != nil {
						b.Fatal(err)
					}
				})
				peak = max(peak, growth)
			}
			b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
		})
	}
}
