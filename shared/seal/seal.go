// Package seal is the sealed-object format of issue 8: a backup's bytes
// under streaming authenticated encryption (Tink's AES256_GCM_HKDF_1MB
// streaming AEAD), with a small JSON header in front that names the backup
// and is bound to the ciphertext as associated data.
//
// A sealed object is, in order:
//
//	"WS191SEAL"                9 bytes, the magic
//	0x01                       1 byte, the format version
//	header length              4 bytes, unsigned big-endian
//	header                     JSON (Header), that many bytes
//	Tink ciphertext            Tink streaming AEAD ciphertext of the plaintext
//
// The Tink ciphertext is subtle.NewAESGCMHKDF(dataKey, "SHA256", 32, 1<<20, 0)
// over the plaintext with the header bytes as associated data: its own
// 40-byte header (length byte, 32-byte HKDF salt, 7-byte nonce prefix),
// then segments of at most 1 MiB of ciphertext (1 MiB − 16 bytes of
// plaintext; the first segment 40 bytes less), each with a 16-byte GCM tag,
// the last segment marked as last in its nonce. Every segment is
// authenticated, so flipped bytes, reordered or dropped segments, a
// truncated stream and an altered header all fail on Read.
//
// The data key is not in the object: it is wrapped by KMS and kept in the
// keys table (package keys), so that destroying it makes every copy,
// immutable ones included, unreadable (crypto-shredding).
//
// Memory is flat in object size: Seal holds one segment of plaintext, one
// of ciphertext and three 1 MiB read buffers (the plaintext is hashed on a
// second goroutine while it is encrypted); Open one segment of each.
package seal

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/tink-crypto/tink-go/v2/streamingaead/subtle"
)

// Format names the streaming AEAD of the sealed bytes (Header.Format).
const Format = "tink-aes256-gcm-hkdf-1mb"

// Magic starts every sealed object; Version follows it.
const (
	Magic   = "WS191SEAL"
	Version = 0x01
)

// KeySize is the size of a data key in bytes (AES-256).
const KeySize = 32

// Tink parameters of Format.
const (
	segmentSize   = 1 << 20                                               // ciphertext segment size
	tagSize       = subtle.AESGCMHKDFTagSizeInBytes                       // 16
	tinkHeaderLen = 1 + KeySize + subtle.AESGCMHKDFNoncePrefixSizeInBytes // 40
	// plainSegment is the plaintext in every segment but the first, which
	// holds tinkHeaderLen bytes less.
	plainSegment = segmentSize - tagSize
	// prefixLen is the magic, the version and the header length.
	prefixLen = len(Magic) + 1 + 4
	// maxHeaderLen bounds the header a reader accepts.
	maxHeaderLen = 64 << 10
)

// ErrFormat reports bytes that are not a sealed object this package can
// read (wrong magic, unknown version or format, malformed header).
var ErrFormat = errors.New("seal: not a sealed object of a known format")

// ErrAuth reports ciphertext that fails authentication: a wrong key, a
// changed byte, an altered header, or a truncated or extended stream.
var ErrAuth = errors.New("seal: sealed bytes fail authentication (wrong key, or altered or truncated)")

// Header describes a sealed object. It is stored in clear in front of the
// ciphertext and authenticated with it.
type Header struct {
	// Format is the streaming AEAD; Seal fills in Format when empty.
	Format string `json:"format"`
	// KMSKeyID is the KMS key that wraps the data key (informational: the
	// wrapped key lives in the keys table).
	KMSKeyID string `json:"kmsKeyId"`
	// OrganizationID and BackupID name the backup sealed.
	OrganizationID string `json:"organizationId"`
	BackupID       string `json:"backupId"`
	// PlaintextSize is the exact size of the plaintext.
	PlaintextSize int64 `json:"plaintextSize"`
}

// Result is what Seal wrote: hashes are lowercase hex SHA-256.
type Result struct {
	PlaintextSHA256, CipherSHA256 string
	PlaintextSize, CipherSize     int64
}

// normalize fills in the default format.
func (h Header) normalize() Header {
	if h.Format == "" {
		h.Format = Format
	}
	return h
}

func (h Header) check() error {
	var errs []error
	if h.Format != Format {
		errs = append(errs, fmt.Errorf("format %q is not %q", h.Format, Format))
	}
	if h.OrganizationID == "" {
		errs = append(errs, errors.New("organizationId is empty"))
	}
	if h.BackupID == "" {
		errs = append(errs, errors.New("backupId is empty"))
	}
	if h.PlaintextSize < 0 {
		errs = append(errs, fmt.Errorf("plaintextSize %d is negative", h.PlaintextSize))
	}
	return errors.Join(errs...)
}

// encode returns the header JSON (deterministic for a given Header).
func (h Header) encode() []byte {
	b, err := json.Marshal(h)
	if err != nil { // strings and an int64 always marshal
		panic(err)
	}
	return b
}

// newAEAD builds the Tink primitive of Format; its errors never carry key
// bytes.
func newAEAD(dataKey []byte) (*subtle.AESGCMHKDF, error) {
	if len(dataKey) != KeySize {
		return nil, fmt.Errorf("seal: data key is %d bytes, want %d", len(dataKey), KeySize)
	}
	a, err := subtle.NewAESGCMHKDF(dataKey, "SHA256", KeySize, segmentSize, 0)
	if err != nil {
		return nil, errors.New("seal: cannot set up AES-GCM-HKDF with this key")
	}
	return a, nil
}

// SealedSize is the exact size Seal will write for h (so uploads can be
// sized up front).
func SealedSize(h Header) int64 {
	h = h.normalize()
	return int64(prefixLen+len(h.encode())) + cipherSize(h.PlaintextSize)
}

// cipherSize is the size of the Tink ciphertext of n plaintext bytes.
func cipherSize(n int64) int64 {
	if n < 0 {
		n = 0
	}
	first := int64(plainSegment - tinkHeaderLen)
	segments := int64(1)
	if n > first {
		segments += (n - first + plainSegment - 1) / plainSegment
	}
	return tinkHeaderLen + n + segments*tagSize
}

// Seal streams src (exactly h.PlaintextSize bytes, else error) into dst
// under dataKey (32 bytes). It writes exactly SealedSize(h) bytes on
// success; on error dst holds a partial object that the caller must
// discard (abort the upload).
func Seal(dst io.Writer, src io.Reader, dataKey []byte, h Header) (Result, error) {
	h = h.normalize()
	if err := h.check(); err != nil {
		return Result{}, fmt.Errorf("seal: header: %w", err)
	}
	a, err := newAEAD(dataKey)
	if err != nil {
		return Result{}, err
	}
	hdr := h.encode()
	cw := &countingWriter{w: dst, h: sha256.New()}
	prefix := make([]byte, prefixLen, prefixLen+len(hdr))
	copy(prefix, Magic)
	prefix[len(Magic)] = Version
	binary.BigEndian.PutUint32(prefix[len(Magic)+1:], uint32(len(hdr)))
	if _, err := cw.Write(append(prefix, hdr...)); err != nil {
		return Result{}, fmt.Errorf("seal: write header: %w", err)
	}
	enc, err := a.NewEncryptingWriter(cw, hdr)
	if err != nil {
		return Result{}, fmt.Errorf("seal: start ciphertext: %w", err)
	}
	n, plainSum, err := copyHashing(enc, src, h.PlaintextSize)
	if err != nil {
		return Result{}, fmt.Errorf("seal: after %d plaintext bytes: %w", n, err)
	}
	if n < h.PlaintextSize {
		return Result{}, fmt.Errorf("seal: source ended after %d bytes, header declares %d", n, h.PlaintextSize)
	}
	var one [1]byte
	if m, err := io.ReadFull(src, one[:]); m > 0 {
		return Result{}, fmt.Errorf("seal: source is longer than the %d bytes the header declares", h.PlaintextSize)
	} else if err != io.EOF && err != io.ErrUnexpectedEOF {
		return Result{}, fmt.Errorf("seal: after %d plaintext bytes: %w", n, err)
	}
	if err := enc.Close(); err != nil {
		return Result{}, fmt.Errorf("seal: finish ciphertext: %w", err)
	}
	return Result{
		PlaintextSHA256: plainSum, CipherSHA256: hex.EncodeToString(cw.h.Sum(nil)),
		PlaintextSize: n, CipherSize: cw.n,
	}, nil
}

// ReadHeader reads the magic, version and header from r and leaves r at
// the ciphertext. It returns the header and its raw JSON bytes (the
// associated data of the ciphertext).
func ReadHeader(r io.Reader) (Header, []byte, error) {
	var prefix [prefixLen]byte
	if _, err := io.ReadFull(r, prefix[:]); err != nil {
		return Header{}, nil, fmt.Errorf("%w: reading the prefix: %v", ErrFormat, err)
	}
	if string(prefix[:len(Magic)]) != Magic {
		return Header{}, nil, fmt.Errorf("%w: no %s magic", ErrFormat, Magic)
	}
	if v := prefix[len(Magic)]; v != Version {
		return Header{}, nil, fmt.Errorf("%w: version %d (this reader knows %d)", ErrFormat, v, Version)
	}
	n := binary.BigEndian.Uint32(prefix[len(Magic)+1:])
	if n == 0 || n > maxHeaderLen {
		return Header{}, nil, fmt.Errorf("%w: header length %d", ErrFormat, n)
	}
	raw := make([]byte, n)
	if _, err := io.ReadFull(r, raw); err != nil {
		return Header{}, nil, fmt.Errorf("%w: reading the header: %v", ErrFormat, err)
	}
	var h Header
	dec := json.NewDecoder(bytes.NewReader(raw))
	// Strict: a header with new fields is a new Version.
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		return Header{}, nil, fmt.Errorf("%w: header JSON: %v", ErrFormat, err)
	}
	if h.Format != Format {
		return Header{}, nil, fmt.Errorf("%w: format %q", ErrFormat, h.Format)
	}
	if h.PlaintextSize < 0 {
		return Header{}, nil, fmt.Errorf("%w: plaintextSize %d", ErrFormat, h.PlaintextSize)
	}
	return h, raw, nil
}

// Open returns the plaintext of a whole sealed stream (it reads the header
// itself); every segment is authenticated; truncation or tampering is an
// error from Read (wrapping ErrAuth), never silent: the reader returns
// io.EOF only after exactly Header.PlaintextSize authenticated bytes and an
// authenticated last segment.
func Open(r io.Reader, dataKey []byte) (Header, io.Reader, error) {
	h, raw, err := ReadHeader(r)
	if err != nil {
		return Header{}, nil, err
	}
	a, err := newAEAD(dataKey)
	if err != nil {
		return Header{}, nil, err
	}
	// Tink reads its own header here; ReadFull-sized reads of one segment
	// follow, so a buffer would only add a copy.
	dr, err := a.NewDecryptingReader(r, raw)
	if err != nil {
		return Header{}, nil, fmt.Errorf("%w: ciphertext header: %v", ErrAuth, err)
	}
	return h, &plainReader{r: dr, left: h.PlaintextSize}, nil
}

// plainReader passes Tink's plaintext through and holds it to the header's
// size: Tink alone returns a silent io.EOF for some truncations (a stream
// cut one byte after a segment boundary, or right after its own header).
type plainReader struct {
	r    io.Reader
	left int64
	err  error
}

func (p *plainReader) Read(b []byte) (int, error) {
	if p.err != nil {
		return 0, p.err
	}
	if p.left == 0 {
		// Every byte is in: the stream must end here, with the segment that
		// carried them authenticated as the last.
		var probe [1]byte
		n, err := p.r.Read(probe[:])
		for i := 0; n == 0 && err == nil && i < 3; i++ {
			// An empty last segment (a 0-byte plaintext) reads as 0, nil.
			n, err = p.r.Read(probe[:])
		}
		switch {
		case n > 0:
			p.err = fmt.Errorf("%w: more plaintext than the header declares", ErrAuth)
		case err == io.EOF:
			p.err = io.EOF
		case err == nil:
			return 0, nil
		default:
			p.err = fmt.Errorf("%w: %v", ErrAuth, err)
		}
		return 0, p.err
	}
	if int64(len(b)) > p.left {
		b = b[:p.left]
	}
	n, err := p.r.Read(b)
	p.left -= int64(n)
	switch {
	case err == io.EOF && p.left > 0:
		p.err = fmt.Errorf("%w: stream ends %d bytes short of the declared plaintext", ErrAuth, p.left)
		return n, p.err
	case err == io.EOF:
		// The last segment ended exactly at the declared size.
		p.err = io.EOF
		return n, nil
	case err != nil:
		p.err = fmt.Errorf("%w: %v", ErrAuth, err)
		return n, p.err
	}
	return n, nil
}

// countingWriter counts and hashes what passes to w.
type countingWriter struct {
	w io.Writer
	h hash.Hash
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.h.Write(b[:n])
	c.n += int64(n)
	return n, err
}
