package seal

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
)

// blockSize is how much plaintext Seal reads at a time; blocks is how many
// such buffers are in flight between the reader, the encrypter and the
// plaintext hasher (memory: blocks × blockSize).
const (
	blockSize = 1 << 20
	blocks    = 3
)

// copyHashing copies exactly up to limit bytes from src to enc and returns
// the count and the lowercase hex SHA-256 of what it copied. The plaintext
// is hashed on another goroutine while enc encrypts (and hashes the
// ciphertext), so that sealing uses two cores where it has them: SHA-256
// twice costs more than AES-GCM.
func copyHashing(enc io.Writer, src io.Reader, limit int64) (n int64, sum string, err error) {
	free := make(chan []byte, blocks)
	for range blocks {
		free <- make([]byte, blockSize)
	}
	toHash := make(chan []byte, blocks)
	hashed := make(chan string, 1)
	go func() {
		h := sha256.New()
		for b := range toHash {
			h.Write(b)
			free <- b[:cap(b)]
		}
		hashed <- hex.EncodeToString(h.Sum(nil))
	}()
	defer func() {
		close(toHash)
		sum = <-hashed
	}()
	for n < limit {
		buf := <-free
		if left := limit - n; left < int64(len(buf)) {
			buf = buf[:left]
		}
		m, rerr := io.ReadFull(src, buf)
		if m > 0 {
			// enc copies what it keeps, so buf may go to the hasher now and
			// come back through free when hashed.
			toHash <- buf[:m]
			if _, err := enc.Write(buf[:m]); err != nil {
				return n, "", err
			}
			n += int64(m)
		} else {
			free <- buf
		}
		switch rerr {
		case nil:
		case io.EOF, io.ErrUnexpectedEOF:
			return n, "", nil // short: the caller reports it
		default:
			return n, "", rerr
		}
	}
	return n, "", nil
}
