package storage

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"regexp"
)

var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

// ValidSHA256 reports whether s is a lowercase hex SHA-256.
func ValidSHA256(s string) bool { return sha256Hex.MatchString(s) }

// CastagnoliTable is the CRC32C table GCS uses.
var CastagnoliTable = crc32.MakeTable(crc32.Castagnoli)

// VerifyingReader hashes the bytes that pass through it (SHA-256, MD5 and
// CRC32C at once) and, instead of io.EOF, returns an Integrity error when the
// stream ends with the wrong size or SHA-256, or runs past size. Because the
// error comes from the last Read, an upload that stops on it is never
// committed by providers that commit on a final request.
type VerifyingReader struct {
	r        io.Reader
	size     int64
	want     string
	n        int64
	sha      hash.Hash
	md5      hash.Hash
	crc      hash.Hash32
	progress func(int64)
	err      error
}

// Verifier is a reader that passes a VerifyingReader's bytes through
// (a caller that hashes what a provider reads, for its own evidence).
type Verifier interface {
	Verifying() *VerifyingReader
}

// NewVerifyingReader wraps r, which must yield exactly size bytes with the
// hex SHA-256 want. When r already verifies that same declaration and has
// not been read yet (a *VerifyingReader, or a Verifier passing one
// through), that reader is returned instead, with progress added when it
// had none: a caller and the provider beneath it then hash each byte once,
// not twice, and both see the same sums.
func NewVerifyingReader(r io.Reader, size int64, want string, progress func(int64)) *VerifyingReader {
	var inner *VerifyingReader
	switch v := r.(type) {
	case *VerifyingReader:
		inner = v
	case Verifier:
		inner = v.Verifying()
	}
	if inner != nil && inner.n == 0 && inner.err == nil && inner.size == size && inner.want == want &&
		(progress == nil || inner.progress == nil) {
		if progress != nil {
			inner.progress = progress
		}
		return inner
	}
	return &VerifyingReader{r: r, size: size, want: want, sha: sha256.New(), md5: md5.New(),
		crc: crc32.New(CastagnoliTable), progress: progress}
}

// Read implements io.Reader.
func (v *VerifyingReader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	// Never read more than one byte past the declared size: that byte is
	// enough to prove the source is too long.
	if rem := v.size - v.n + 1; int64(len(p)) > rem {
		p = p[:rem]
	}
	n, err := v.r.Read(p)
	if n > 0 {
		v.sha.Write(p[:n])
		if v.md5 != nil {
			v.md5.Write(p[:n])
		}
		v.crc.Write(p[:n])
		v.n += int64(n)
		if v.progress != nil {
			v.progress(v.n)
		}
	}
	if v.n > v.size {
		v.err = fmt.Errorf("%w: source is longer than the declared %d bytes", ErrIntegrity, v.size)
		return n, v.err
	}
	if err == io.EOF {
		v.err = v.check()
		if v.err == nil {
			v.err = io.EOF
		}
		return n, v.err
	}
	if err != nil {
		v.err = err
	}
	return n, err
}

func (v *VerifyingReader) check() error {
	if v.n != v.size {
		return fmt.Errorf("%w: read %d bytes, declared %d", ErrIntegrity, v.n, v.size)
	}
	if got := v.SHA256(); got != v.want {
		return fmt.Errorf("%w: sha256 %s, expected %s", ErrIntegrity, got, v.want)
	}
	return nil
}

// Done reports whether the whole stream was read and matched.
func (v *VerifyingReader) Done() bool { return v.err == io.EOF }

// Verify returns nil when the whole stream was read and matched, the
// integrity error when it did not match, and an integrity error when the
// stream was not read to its end.
func (v *VerifyingReader) Verify() error {
	if v.err == io.EOF {
		return nil
	}
	if v.err != nil {
		return v.err
	}
	// Not at EOF yet: a source of exactly size bytes may not have reported
	// EOF. Probe for it.
	var b [1]byte
	for v.err == nil {
		v.Read(b[:])
	}
	if v.err == io.EOF {
		return nil
	}
	return v.err
}

// Failed is the integrity error the stream ended with (wrong size or
// SHA-256), nil while it has not failed that way.
func (v *VerifyingReader) Failed() error {
	if v.err != nil && v.err != io.EOF && errors.Is(v.err, ErrIntegrity) {
		return v.err
	}
	return nil
}

// N is the number of bytes read so far.
func (v *VerifyingReader) N() int64 { return v.n }

// SHA256 is the hex SHA-256 of the bytes read so far.
func (v *VerifyingReader) SHA256() string { return hex.EncodeToString(v.sha.Sum(nil)) }

// MD5 is the hex MD5 of the bytes read so far, "" after SkipMD5.
func (v *VerifyingReader) MD5() string {
	if v.md5 == nil {
		return ""
	}
	return hex.EncodeToString(v.md5.Sum(nil))
}

// SkipMD5 stops v computing the MD5 (the costliest of its three sums) when
// no evidence will be compared with it, such as the ETag of a multipart
// upload; it has effect only before the first byte is read.
func (v *VerifyingReader) SkipMD5() {
	if v.n == 0 {
		v.md5 = nil
	}
}

// CRC32C is the Castagnoli CRC of the bytes read so far.
func (v *VerifyingReader) CRC32C() uint32 { return v.crc.Sum32() }
