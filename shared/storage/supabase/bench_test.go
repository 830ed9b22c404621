package supabase

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"testing"

	"github.com/wedsync/backup-replication/infra/supaemu"
	"github.com/wedsync/backup-replication/shared/secret"
	"github.com/wedsync/backup-replication/shared/storage"
)

// BenchmarkPut uploads a 64 MiB object to the emulator in one request, by
// TUS, and (as the emulator's ceiling) with a bare one-request POST.
func BenchmarkPut(b *testing.B) {
	const size = 64 << 20
	data := bytes.Repeat([]byte("wedsync-backup-"), size/15+1)[:size]
	s := sha256.Sum256(data)
	sum := hex.EncodeToString(s[:])
	u, key := newEmulator(b, supaemu.Config{})
	for _, mode := range []struct {
		name      string
		threshold int64
	}{{"one-request", size}, {"tus", ChunkSize}} {
		b.Run(mode.name, func(b *testing.B) {
			p, err := New(Config{URL: u, ServiceKey: secret.Secret(key), Bucket: testBucket, TUSThreshold: mode.threshold}, nil)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(size)
			for b.Loop() {
				if _, err := p.Put(b.Context(), "bench", bytes.NewReader(data), size, storage.PutOptions{SHA256: sum}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("bare-post", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			req, _ := http.NewRequest("POST", u+"/storage/v1/object/"+testBucket+"/bare", bytes.NewReader(data))
			req.Header.Set("Authorization", "Bearer "+key)
			req.Header.Set("X-Upsert", "true")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}
