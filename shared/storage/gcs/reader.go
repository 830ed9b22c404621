package gcs

import (
	"fmt"
	"hash/crc32"
	"io"

	gcs "cloud.google.com/go/storage"

	"github.com/wedsync/backup-replication/shared/storage"
)

// reader classifies the errors of a GCS download stream. For a read of the
// whole object it also keeps its own CRC32C, so that when the client fails
// the stream at its very end (which the client does when the CRC32C GCS sent
// does not match the bytes) the failure is reported as Integrity, decided
// from the checksums and not from the client's message.
type reader struct {
	p     *Provider
	key   string
	r     *gcs.Reader
	whole bool
	n     int64
	crc   uint32
}

func newReader(p *Provider, key string, r *gcs.Reader, whole bool) *reader {
	return &reader{p: p, key: key, r: r, whole: whole}
}

// Read implements io.Reader.
func (r *reader) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	if r.whole && n > 0 {
		r.crc = crc32.Update(r.crc, storage.CastagnoliTable, b[:n])
	}
	r.n += int64(n)
	if err == nil || err == io.EOF {
		return n, err
	}
	if r.whole && r.n == r.r.Attrs.Size && r.crc != r.r.Attrs.CRC32C {
		return n, r.p.integrity("get", r.key, fmt.Errorf("%w: read crc32c %08x, GCS keeps %08x: %w",
			storage.ErrIntegrity, r.crc, r.r.Attrs.CRC32C, err))
	}
	return n, r.p.fail("get", r.key, err)
}

// Close implements io.Closer.
func (r *reader) Close() error { return r.r.Close() }
