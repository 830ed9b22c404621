package storage

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"testing"
)

// countingSource counts the bytes taken from it.
type countingSource struct {
	r io.Reader
	n int
}

func (c *countingSource) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// passThrough is a caller's reader over a VerifyingReader, as replicate
// hands one to a provider.
type passThrough struct{ v *VerifyingReader }

func (p passThrough) Read(b []byte) (int, error)  { return p.v.Read(b) }
func (p passThrough) Verifying() *VerifyingReader { return p.v }

// TestLayeredVerifyingReaderHashesOnce: a provider that verifies a
// caller's verifying reader reads through that same reader (one hash per
// byte), reports progress, and both see the same sums and the same failure.
func TestLayeredVerifyingReaderHashesOnce(t *testing.T) {
	data := bytes.Repeat([]byte("wedding "), 10000)
	sum := sha256.Sum256(data)
	want := hex.EncodeToString(sum[:])
	for _, wrap := range []func(*VerifyingReader) io.Reader{
		func(v *VerifyingReader) io.Reader { return v },
		func(v *VerifyingReader) io.Reader { return passThrough{v} },
	} {
		src := &countingSource{r: bytes.NewReader(data)}
		outer := NewVerifyingReader(src, int64(len(data)), want, nil)
		var seen int64
		inner := NewVerifyingReader(wrap(outer), int64(len(data)), want, func(n int64) { seen = n })
		if inner != outer {
			t.Fatal("a fresh verifier of the same declaration was wrapped, not reused")
		}
		if _, err := io.Copy(io.Discard, inner); err != nil {
			t.Fatal(err)
		}
		if src.n != len(data) || !outer.Done() || outer.SHA256() != want || seen != int64(len(data)) {
			t.Errorf("read %d of %d bytes, done %v, sha %s, progress %d", src.n, len(data), outer.Done(), outer.SHA256(), seen)
		}
	}

	// Another declaration, or a reader already started, is wrapped anew.
	outer := NewVerifyingReader(bytes.NewReader(data), int64(len(data)), want, nil)
	if NewVerifyingReader(outer, int64(len(data))-1, want, nil) == outer {
		t.Error("a verifier of another size was reused")
	}
	if NewVerifyingReader(outer, int64(len(data)), "00"+want[2:], nil) == outer {
		t.Error("a verifier of another SHA-256 was reused")
	}
	outer.Read(make([]byte, 10))
	if NewVerifyingReader(outer, int64(len(data)), want, nil) == outer {
		t.Error("a verifier already read from was reused")
	}

	// A failure is the same for both: the caller learns the bytes broke
	// their declaration, not just that the provider stopped.
	bad := NewVerifyingReader(bytes.NewReader(data), int64(len(data)), "00"+want[2:], nil)
	if _, err := io.Copy(io.Discard, NewVerifyingReader(passThrough{bad}, int64(len(data)), "00"+want[2:], nil)); err == nil {
		t.Fatal("a mismatching stream read without error")
	}
	if bad.Failed() == nil {
		t.Error("Failed() is nil after a SHA-256 mismatch")
	}
	if good := NewVerifyingReader(bytes.NewReader(nil), 0, hex.EncodeToString(sha256.New().Sum(nil)), nil); good.Verify() != nil || good.Failed() != nil {
		t.Error("an empty stream of the empty SHA-256 failed")
	}
}
