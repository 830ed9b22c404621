package storage_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/wedsync/backup-replication/shared/storage"
)

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func TestVerifyingReader(t *testing.T) {
	data := []byte("the guest list of Ana & Bruno")
	cases := []struct {
		name    string
		src     io.Reader
		size    int64
		want    string
		wantErr bool
	}{
		{"exact", bytes.NewReader(data), int64(len(data)), sum(data), false},
		{"one byte at a time", iotest.OneByteReader(bytes.NewReader(data)), int64(len(data)), sum(data), false},
		{"empty", bytes.NewReader(nil), 0, sum(nil), false},
		{"wrong hash", bytes.NewReader(data), int64(len(data)), sum([]byte("x")), true},
		{"short", bytes.NewReader(data[:5]), int64(len(data)), sum(data), true},
		{"long", bytes.NewReader(append(data, '!')), int64(len(data)), sum(data), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var progress int64
			v := storage.NewVerifyingReader(c.src, c.size, c.want, func(n int64) { progress = n })
			_, err := io.Copy(io.Discard, v)
			if c.wantErr {
				if !errors.Is(err, storage.ErrIntegrity) || storage.KindOf(err) != storage.Integrity {
					t.Fatalf("copy error = %v, want an integrity error", err)
				}
				if v.Verify() == nil {
					t.Fatal("Verify() = nil after a mismatch")
				}
				return
			}
			if err != nil || v.Verify() != nil || !v.Done() {
				t.Fatalf("copy = %v, verify = %v, done = %v", err, v.Verify(), v.Done())
			}
			if progress != c.size || v.N() != c.size {
				t.Fatalf("progress %d, N %d, want %d", progress, v.N(), c.size)
			}
		})
	}
}

func TestVerifyingReaderHashesAll(t *testing.T) {
	data := []byte("123456789")
	v := storage.NewVerifyingReader(bytes.NewReader(data), 9, sum(data), nil)
	if err := v.Verify(); err != nil { // Verify drains an unread source
		t.Fatal(err)
	}
	if v.CRC32C() != 0xe3069283 { // the CRC-32C check value of "123456789"
		t.Fatalf("crc32c = %x", v.CRC32C())
	}
	if v.MD5() != "25f9e794323b453885f5181f1b624d0b" {
		t.Fatalf("md5 = %s", v.MD5())
	}
}

func TestVerifyingReaderPassesSourceErrors(t *testing.T) {
	boom := errors.New("connection reset")
	v := storage.NewVerifyingReader(iotest.ErrReader(boom), 10, sum(nil), nil)
	if _, err := io.Copy(io.Discard, v); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the source's error", err)
	}
	if err := v.Verify(); !errors.Is(err, boom) {
		t.Fatalf("verify = %v", err)
	}
}

func TestErrorKinds(t *testing.T) {
	base := errors.New("boom")
	for k := storage.Permanent; k <= storage.Integrity; k++ {
		err := fmt.Errorf("wrapped: %w", &storage.Error{Op: "put", Provider: "s3", Key: "a b", Kind: k, Err: base, RetryAfter: time.Second})
		if storage.KindOf(err) != k {
			t.Errorf("KindOf = %v, want %v", storage.KindOf(err), k)
		}
		if !errors.Is(err, base) {
			t.Errorf("%v: lost the cause", k)
		}
		if got := errors.Is(err, fs.ErrNotExist); got != (k == storage.NotFound) {
			t.Errorf("%v: errors.Is(fs.ErrNotExist) = %v", k, got)
		}
		if got := storage.Retryable(err); got != (k == storage.Transient || k == storage.Throttled) {
			t.Errorf("%v: Retryable = %v", k, got)
		}
		if got := storage.CountsForBreaker(err); got != (k == storage.Transient || k == storage.Throttled || k == storage.Unauthorized) {
			t.Errorf("%v: CountsForBreaker = %v", k, got)
		}
		if storage.RetryAfterOf(err) != time.Second {
			t.Errorf("RetryAfterOf lost the hint")
		}
		if !strings.Contains(err.Error(), k.String()) || !strings.Contains(err.Error(), `"a b"`) {
			t.Errorf("message %q lacks kind or key", err)
		}
	}
	if !errors.Is(&storage.Error{Kind: storage.Throttled}, storage.ErrThrottled) || errors.Is(&storage.Error{Kind: storage.Throttled}, storage.ErrTransient) {
		t.Error("sentinel matching is wrong")
	}
	if storage.KindOf(base) != storage.Permanent || storage.KindOf(fmt.Errorf("x: %w", storage.ErrIntegrity)) != storage.Integrity {
		t.Error("KindOf of plain errors is wrong")
	}
	first := storage.NewError("get", "gcs", "k", storage.NotFound, base)
	if again := storage.NewError("put", "gcs", "k", storage.Transient, first); again != first {
		t.Error("NewError re-classified an already classified error")
	}
	if storage.Kind(42).String() != "kind(42)" {
		t.Error("unknown kind string")
	}
}

type layer struct {
	storage.Provider
	inner storage.Provider
}

func (l layer) Unwrap() storage.Provider { return l.inner }

type copier struct{ storage.Provider }

func (copier) Copy(context.Context, storage.Locator, string, storage.PutOptions) (storage.ObjectInfo, error) {
	return storage.ObjectInfo{}, storage.ErrCannotCopy
}

func TestAsWalksDecorators(t *testing.T) {
	base := copier{}
	wrapped := layer{inner: layer{inner: base}}
	c, ok := storage.As[storage.Copier](wrapped)
	if !ok {
		t.Fatal("Copier not found through two decorators")
	}
	if _, err := c.Copy(context.Background(), storage.Locator{}, "k", storage.PutOptions{}); !errors.Is(err, storage.ErrCannotCopy) {
		t.Fatal("found the wrong layer")
	}
	if _, ok := storage.As[storage.Resumer](wrapped); ok {
		t.Fatal("found a Resumer that no layer implements")
	}
}

func TestValidSHA256(t *testing.T) {
	if !storage.ValidSHA256(sum(nil)) || storage.ValidSHA256(strings.ToUpper(sum(nil))) || storage.ValidSHA256("abc") {
		t.Fatal("ValidSHA256 is wrong")
	}
}
