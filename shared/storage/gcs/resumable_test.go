package gcs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"testing"

	"github.com/wedsync/backup-replication/shared/storage"
)

// memSource is a landing object that can be reopened at any offset.
type memSource struct {
	data  []byte
	opens int
}

func (m *memSource) Open(_ context.Context, off int64) (io.ReadCloser, error) {
	m.opens++
	return io.NopCloser(bytes.NewReader(m.data[off:])), nil
}

func (m *memSource) Size() int64 { return int64(len(m.data)) }

func newMemSource(n int) (*memSource, string) {
	b, err := io.ReadAll(stream(int64(n)))
	if err != nil {
		panic(err)
	}
	sum := sha256.Sum256(b)
	return &memSource{data: b}, hex.EncodeToString(sum[:])
}

// saved records what PutResumable asks the caller to persist.
type saved struct{ states []string }

func (s *saved) save(st string) error { s.states = append(s.states, st); return nil }

func (s *saved) last() string {
	if len(s.states) == 0 {
		return ""
	}
	return s.states[len(s.states)-1]
}

// TestPutResumableAfterCut drops the connection partway through the upload:
// the first call fails as transient and leaves the session URI saved; the
// next call, given that state, continues from the bytes GCS kept, and the
// object GCS reports has our CRC32C and MD5 (so the resumed prefix was
// hashed in step with what was sent).
func TestPutResumableAfterCut(t *testing.T) {
	sink := newSink(t)
	p := newTestProvider(t, Config{Endpoint: sink.URL, ChunkSize: DefaultChunkSize})
	src, sum := newMemSource(3<<20 + 5)
	st := &saved{}
	sink.cutAfter.Store(1<<20 + 3)
	_, err := p.PutResumable(t.Context(), "resume/cut", src, storage.PutOptions{SHA256: sum}, "", st.save)
	if storage.KindOf(err) != storage.Transient {
		t.Fatalf("first PutResumable with the connection cut = %v (kind %s), want transient", err, storage.KindOf(err))
	}
	session := st.last()
	if session == "" {
		t.Fatal("no session state saved after an interrupted upload")
	}
	info, err := p.PutResumable(t.Context(), "resume/cut", src, storage.PutOptions{SHA256: sum}, session, st.save)
	if err != nil {
		t.Fatalf("resumed PutResumable: %v", err)
	}
	if got := sink.lastStart.Load(); got != 1<<20+3 {
		t.Errorf("the resumed upload sent from byte %d, want %d (where the cut left GCS)", got, 1<<20+3)
	}
	if info.Size != src.Size() || info.SHA256 != sum {
		t.Errorf("resumed upload reports %d bytes sha256 %q, want %d %q", info.Size, info.SHA256, src.Size(), sum)
	}
	if st.last() != "" {
		t.Errorf("state after a finished upload = %q, want cleared", st.last())
	}
}

// TestPutResumableWrongSHA256 declares the SHA-256 of other bytes: an
// integrity error, the session cancelled and the state cleared.
func TestPutResumableWrongSHA256(t *testing.T) {
	sink := newSink(t)
	p := newTestProvider(t, Config{Endpoint: sink.URL})
	src, _ := newMemSource(1 << 20)
	wrong := sha256.Sum256([]byte("other bytes"))
	st := &saved{}
	_, err := p.PutResumable(t.Context(), "resume/wrong", src, storage.PutOptions{SHA256: hex.EncodeToString(wrong[:])}, "", st.save)
	if storage.KindOf(err) != storage.Integrity {
		t.Fatalf("PutResumable with a wrong SHA-256 = %v (kind %s), want integrity", err, storage.KindOf(err))
	}
	if st.last() != "" {
		t.Errorf("state after an integrity failure = %q, want cleared", st.last())
	}
	sink.mu.Lock()
	left := len(sink.sessions)
	sink.mu.Unlock()
	if left != 0 {
		t.Errorf("%d upload sessions left open after an integrity failure, want the session cancelled", left)
	}
}

// TestPutResumableExpiredSession starts afresh when the saved session no
// longer exists.
func TestPutResumableExpiredSession(t *testing.T) {
	sink := newSink(t)
	p := newTestProvider(t, Config{Endpoint: sink.URL})
	src, sum := newMemSource(300 << 10)
	st := &saved{}
	expired := sink.URL + "/upload/storage/v1/b/" + testBucket + "/o?uploadType=resumable&upload_id=gone"
	if _, err := p.PutResumable(t.Context(), "resume/expired", src, storage.PutOptions{SHA256: sum}, expired, st.save); err != nil {
		t.Fatalf("PutResumable with an expired session: %v", err)
	}
	if len(st.states) != 2 || st.states[0] == "" || st.states[0] == expired || st.states[1] != "" {
		t.Errorf("saved states %q, want a new session then cleared", st.states)
	}
}

// TestPutResumableOnEmulator runs a fresh resumable upload against
// fake-gcs-server and reads the object back.
func TestPutResumableOnEmulator(t *testing.T) {
	g := startGCS(t)
	p := newTestProvider(t, Config{Endpoint: g.URL, ChunkSize: DefaultChunkSize})
	src, sum := newMemSource(2<<20 + 1)
	st := &saved{}
	if _, err := p.PutResumable(t.Context(), "resume/emulator", src, storage.PutOptions{SHA256: sum, ContentType: "application/x-tar"}, "", st.save); err != nil {
		t.Fatalf("PutResumable: %v", err)
	}
	info, err := p.Stat(t.Context(), "resume/emulator")
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != src.Size() || info.SHA256 != sum || info.ContentType != "application/x-tar" {
		t.Errorf("Stat = %d bytes sha256 %q type %q, want %d %q application/x-tar", info.Size, info.SHA256, info.ContentType, src.Size(), sum)
	}
	rc, err := p.Get(t.Context(), "resume/emulator", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, src.data) {
		t.Errorf("Get after PutResumable: %d bytes, err %v; want the %d bytes written", len(got), err, len(src.data))
	}
}
