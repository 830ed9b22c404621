package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
)

// seed makes every object of the benchmark the same pseudo-random bytes on
// every machine: an object of n bytes is the first n bytes of one stream.
var seed = [32]byte{'W', 'S', '-', '1', '9', '1', ' ', 'b', 'e', 'n', 'c', 'h'}

// generated returns the first size bytes of the benchmark's stream. It
// holds no buffer of its own.
func generated(size int64) io.Reader {
	return io.LimitReader(rand.NewChaCha8(seed), size)
}

// sha256Of hashes the first size bytes of the stream.
func sha256Of(size int64) (string, error) {
	h := sha256.New()
	if _, err := io.CopyBuffer(h, generated(size), make([]byte, 1<<20)); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// writeObject writes the first size bytes of the stream to path and
// returns their SHA-256.
func writeObject(path string, size int64) (string, error) {
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	_, err = io.CopyBuffer(io.MultiWriter(f, h), generated(size), make([]byte, 1<<20))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// sizeName prints a size the way the tables do: 100 MiB, 1 GiB, 4 GiB.
func sizeName(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d B", n)
}

// parseSize reads "100MiB", "1GiB", "4GiB" or a byte count.
func parseSize(s string) (int64, error) {
	var n int64
	var unit string
	if _, err := fmt.Sscanf(s, "%d%s", &n, &unit); err != nil && unit == "" {
		if _, err := fmt.Sscanf(s, "%d", &n); err != nil {
			return 0, fmt.Errorf("size %q: want e.g. 100MiB, 1GiB", s)
		}
	}
	switch unit {
	case "", "B":
	case "KiB":
		n <<= 10
	case "MiB":
		n <<= 20
	case "GiB":
		n <<= 30
	default:
		return 0, fmt.Errorf("size %q: unit %q is not B, KiB, MiB or GiB", s, unit)
	}
	if n <= 0 {
		return 0, fmt.Errorf("size %q is not positive", s)
	}
	return n, nil
}
