package seal_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/wedsync/backup-replication/shared/seal"
)

// Layout of Format, restated from the format description so the tests
// check the description, not the code's constants.
const (
	segment      = 1 << 20
	tag          = 16
	tinkHeader   = 40
	plainSeg     = segment - tag
	firstPlain   = plainSeg - tinkHeader
	sealedPrefix = 9 + 1 + 4
)

func key(seed uint64) []byte {
	k := make([]byte, 32)
	rand.NewChaCha8([32]byte{byte(seed), 1}).Read(k)
	return k
}

func header(n int64) seal.Header {
	return seal.Header{KMSKeyID: "arn:aws:kms:us-east-1:123456789012:key/abc", OrganizationID: "org-ü 1",
		BackupID: "b\"ck/up?1", PlaintextSize: n}
}

func data(n int64, seed uint64) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(seed), 2}).Read(b)
	return b
}

func sealBytes(t testing.TB, plain, k []byte, h seal.Header) ([]byte, seal.Result) {
	t.Helper()
	var out bytes.Buffer
	res, err := seal.Seal(&out, bytes.NewReader(plain), k, h)
	if err != nil {
		t.Fatalf("Seal(%d bytes): %v", len(plain), err)
	}
	return out.Bytes(), res
}

// open reads the whole plaintext; the error is Open's or Read's.
func open(sealed, k []byte) ([]byte, error) {
	_, r, err := seal.Open(bytes.NewReader(sealed), k)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func TestRoundTripAndSealedSize(t *testing.T) {
	sizes := []int64{0, 1, 2, 4095, firstPlain - 1, firstPlain, firstPlain + 1,
		firstPlain + plainSeg - 1, firstPlain + plainSeg, firstPlain + plainSeg + 1,
		firstPlain + 3*plainSeg, 5<<20 + 7}
	k := key(1)
	for _, n := range sizes {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			plain := data(n, uint64(n))
			h := header(n)
			sealed, res := sealBytes(t, plain, k, h)
			if got, want := int64(len(sealed)), seal.SealedSize(h); got != want {
				t.Fatalf("sealed %d bytes, SealedSize says %d", got, want)
			}
			if res.CipherSize != int64(len(sealed)) || res.PlaintextSize != n {
				t.Errorf("Result sizes %d/%d, want %d/%d", res.PlaintextSize, res.CipherSize, n, len(sealed))
			}
			if res.PlaintextSHA256 != sha(plain) || res.CipherSHA256 != sha(sealed) {
				t.Errorf("Result hashes do not match the bytes")
			}
			gotH, r, err := seal.Open(bytes.NewReader(sealed), k)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			h.Format = seal.Format
			if gotH != h {
				t.Errorf("header %+v, want %+v", gotH, h)
			}
			got, err := io.ReadAll(r)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if !bytes.Equal(got, plain) {
				t.Fatalf("plaintext differs (%d bytes back, %d sealed)", len(got), n)
			}
			// Reading past the end keeps answering io.EOF.
			if n, err := r.Read(make([]byte, 8)); n != 0 || err != io.EOF {
				t.Errorf("read after end = %d, %v", n, err)
			}
		})
	}
}

func TestSealedLayout(t *testing.T) {
	h := header(3)
	sealed, _ := sealBytes(t, []byte("xyz"), key(1), h)
	if !bytes.HasPrefix(sealed, []byte("WS191SEAL\x01")) {
		t.Fatalf("prefix %q", sealed[:10])
	}
	n := binary.BigEndian.Uint32(sealed[10:14])
	hdr := string(sealed[14 : 14+n])
	want := `{"format":"tink-aes256-gcm-hkdf-1mb","kmsKeyId":"arn:aws:kms:us-east-1:123456789012:key/abc",` +
		`"organizationId":"org-ü 1","backupId":"b\"ck/up?1","plaintextSize":3}`
	if hdr != want {
		t.Fatalf("header %s\nwant   %s", hdr, want)
	}
	if rest := len(sealed) - 14 - int(n); rest != tinkHeader+3+tag {
		t.Errorf("ciphertext is %d bytes, want %d", rest, tinkHeader+3+tag)
	}
	if bytes.Contains(sealed, []byte("xyz")) {
		t.Errorf("plaintext visible in the sealed bytes")
	}
}

func TestReadHeaderLeavesCiphertext(t *testing.T) {
	h := header(10)
	sealed, _ := sealBytes(t, data(10, 3), key(1), h)
	r := bytes.NewReader(sealed)
	got, raw, err := seal.ReadHeader(r)
	if err != nil || got.BackupID != h.BackupID || got.PlaintextSize != 10 {
		t.Fatalf("ReadHeader = %+v, %v", got, err)
	}
	if int64(r.Len()) != seal.SealedSize(h)-int64(sealedPrefix+len(raw)) {
		t.Errorf("%d bytes left after the header", r.Len())
	}
	for name, b := range map[string][]byte{
		"empty": nil, "not sealed": []byte("PK\x03\x04 a zip file, not sealed"),
		"version 2":    append([]byte("WS191SEAL\x02"), sealed[10:]...),
		"huge header":  append([]byte("WS191SEAL\x01\xff\xff\xff\xff"), sealed[14:]...),
		"short header": sealed[:20],
	} {
		if _, _, err := seal.ReadHeader(bytes.NewReader(b)); !errors.Is(err, seal.ErrFormat) {
			t.Errorf("%s: err = %v, want ErrFormat", name, err)
		}
	}
}

func TestWrongKeyFails(t *testing.T) {
	sealed, _ := sealBytes(t, data(3<<20, 4), key(1), header(3<<20))
	got, err := open(sealed, key(2))
	if !errors.Is(err, seal.ErrAuth) || len(got) != 0 {
		t.Fatalf("wrong key: %d bytes, err %v; want no bytes and ErrAuth", len(got), err)
	}
}

func TestTamperingFails(t *testing.T) {
	n := int64(firstPlain + 2*plainSeg + 1000) // three full-ish segments and a short last one
	plain := data(n, 5)
	k := key(1)
	sealed, _ := sealBytes(t, plain, k, header(n))
	start := sealedPrefix + int(binary.BigEndian.Uint32(sealed[10:14])) // first byte of Tink's header
	positions := map[string]int{
		"magic": 0, "version": 9, "header length": 13, "header JSON": sealedPrefix + 2,
		"tink header length": start, "salt": start + 5, "nonce prefix": start + 36,
		"first segment": start + tinkHeader + 10, "first tag": start + segment - 1,
		"middle segment": start + segment + 12345, "last segment": len(sealed) - 500, "last byte": len(sealed) - 1,
	}
	for name, pos := range positions {
		t.Run(name, func(t *testing.T) {
			bad := bytes.Clone(sealed)
			bad[pos] ^= 0x01
			if got, err := open(bad, k); err == nil {
				t.Fatalf("flipped byte at %d: read %d bytes without error", pos, len(got))
			}
		})
	}
	t.Run("segments swapped", func(t *testing.T) {
		bad := bytes.Clone(sealed)
		a, b := start+segment, start+2*segment
		copy(bad[a:b], sealed[b:b+segment])
		copy(bad[b:b+segment], sealed[a:b])
		if _, err := open(bad, k); !errors.Is(err, seal.ErrAuth) {
			t.Fatalf("err = %v, want ErrAuth", err)
		}
	})
	t.Run("bytes appended", func(t *testing.T) {
		if _, err := open(append(bytes.Clone(sealed), 0), k); !errors.Is(err, seal.ErrAuth) {
			t.Fatalf("err = %v, want ErrAuth", err)
		}
	})
}

func TestHeaderAlteredFails(t *testing.T) {
	k := key(1)
	h := header(1000)
	sealed, _ := sealBytes(t, data(1000, 6), k, h)
	for name, edit := range map[string]func(*seal.Header){
		"backup id":      func(h *seal.Header) { h.BackupID = "another-1" },
		"organization":   func(h *seal.Header) { h.OrganizationID = "org-2" },
		"kms key":        func(h *seal.Header) { h.KMSKeyID = "alias/other" },
		"plaintext size": func(h *seal.Header) { h.PlaintextSize = 999 },
	} {
		t.Run(name, func(t *testing.T) {
			h2 := h
			h2.Format = seal.Format
			edit(&h2)
			bad := reheader(t, sealed, h2)
			if got, err := open(bad, k); err == nil {
				t.Fatalf("altered header: read %d bytes without error", len(got))
			}
		})
	}
}

// reheader replaces the header of a sealed object with h, keeping the
// ciphertext, as an attacker who edits the clear header would.
func reheader(t *testing.T, sealed []byte, h seal.Header) []byte {
	t.Helper()
	var hdrOf bytes.Buffer
	// The header JSON of h is what Seal writes for it: seal an empty stream
	// with h (PlaintextSize 0) and patch the size in the JSON text.
	size := h.PlaintextSize
	h.PlaintextSize = 0
	if _, err := seal.Seal(&hdrOf, bytes.NewReader(nil), key(9), h); err != nil {
		t.Fatal(err)
	}
	n := binary.BigEndian.Uint32(hdrOf.Bytes()[10:14])
	js := strings.Replace(string(hdrOf.Bytes()[14:14+n]), `"plaintextSize":0`, fmt.Sprintf(`"plaintextSize":%d`, size), 1)
	old := sealedPrefix + int(binary.BigEndian.Uint32(sealed[10:14]))
	out := append([]byte("WS191SEAL\x01"), binary.BigEndian.AppendUint32(nil, uint32(len(js)))...)
	return append(append(out, js...), sealed[old:]...)
}

func TestTruncationFails(t *testing.T) {
	n := int64(firstPlain + 2*plainSeg + 1000)
	k := key(1)
	sealed, _ := sealBytes(t, data(n, 7), k, header(n))
	start := sealedPrefix + int(binary.BigEndian.Uint32(sealed[10:14]))
	cuts := []int{0, 5, sealedPrefix, start - 1, start, start + 1, start + tinkHeader - 1, start + tinkHeader,
		start + tinkHeader + 1, start + segment - 1, start + segment, start + segment + 1,
		start + 2*segment - 1, start + 2*segment, start + 2*segment + 1, start + 3*segment,
		len(sealed) - tag - 1, len(sealed) - tag, len(sealed) - 1}
	for _, cut := range cuts {
		got, err := open(sealed[:cut], k)
		if err == nil {
			t.Errorf("cut at %d of %d: read %d bytes without error", cut, len(sealed), len(got))
		}
	}
	// Every cut inside the last two segments, byte by byte near the ends.
	for cut := start + 2*segment - 40; cut < start+2*segment+40; cut++ {
		if _, err := open(sealed[:cut], k); err == nil {
			t.Fatalf("cut at %d: no error", cut)
		}
	}
}

func TestSourceSizeMismatchFails(t *testing.T) {
	k := key(1)
	for _, tc := range []struct {
		name     string
		declared int64
		actual   int
	}{{"shorter", 100, 99}, {"empty", 1, 0}, {"longer", 100, 101}, {"longer than zero", 0, 1},
		{"shorter across segments", 3 << 20, 3<<20 - 1}, {"longer across segments", firstPlain, firstPlain + 1}} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := seal.Seal(io.Discard, bytes.NewReader(data(int64(tc.actual), 8)), k, header(tc.declared))
			if err == nil {
				t.Fatalf("declared %d, gave %d: no error", tc.declared, tc.actual)
			}
		})
	}
}

type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("disk on fire")
	}
	n := min(len(p), f.n)
	f.n -= n
	return n, nil
}

func TestSourceErrorFails(t *testing.T) {
	_, err := seal.Seal(io.Discard, &failingReader{n: 2 << 20}, key(1), header(4<<20))
	if err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("err = %v, want the source's error", err)
	}
}

func TestBadInputs(t *testing.T) {
	k := key(1)
	for name, h := range map[string]seal.Header{
		"no organization": {BackupID: "b", PlaintextSize: 0},
		"no backup":       {OrganizationID: "o", PlaintextSize: 0},
		"negative size":   {OrganizationID: "o", BackupID: "b", PlaintextSize: -1},
		"unknown format":  {Format: "age", OrganizationID: "o", BackupID: "b"},
	} {
		if _, err := seal.Seal(io.Discard, bytes.NewReader(nil), k, h); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// No error message carries key bytes, whatever form they take.
func TestErrorsNeverContainKey(t *testing.T) {
	k := key(3)
	short := k[:31]
	sealed, _ := sealBytes(t, data(2<<20, 9), k, header(2<<20))
	var errs []error
	_, err := seal.Seal(io.Discard, bytes.NewReader(nil), short, header(0))
	errs = append(errs, err)
	_, _, err = seal.Open(bytes.NewReader(sealed), short)
	errs = append(errs, err)
	_, err = open(sealed, key(4))
	errs = append(errs, err)
	bad := bytes.Clone(sealed)
	bad[len(bad)-3] ^= 0xff
	_, err = open(bad, k)
	errs = append(errs, err)
	for _, err := range errs {
		if err == nil {
			t.Fatal("expected an error")
		}
		msg := err.Error()
		for _, kk := range [][]byte{k, short, key(4)} {
			for _, form := range []string{string(kk), hex.EncodeToString(kk), strings.ToUpper(hex.EncodeToString(kk)),
				base64.StdEncoding.EncodeToString(kk), base64.RawURLEncoding.EncodeToString(kk), fmt.Sprint(kk), fmt.Sprintf("%x", kk[:8])} {
				if strings.Contains(msg, form) {
					t.Fatalf("error %q contains key material", msg)
				}
			}
		}
	}
}
