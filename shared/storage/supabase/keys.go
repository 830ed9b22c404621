package supabase

import (
	"net/url"
	"strings"
)

// Supabase Storage accepts object names made of A-Z a-z 0-9 and
// _ / ! . * ' ( ) space & $ = @ ; : + , ? - only (src/storage/limits.ts);
// anything else is InvalidKey. Our keys may hold any UTF-8, so every key
// is stored under an encoded name: each byte outside that set, and the
// escape byte itself, becomes '!' and two upper-case hex digits. Keys made
// of allowed characters other than '!' (backups/{org}/{backup} is) are
// stored as they are. The encoding works byte by byte, so the name of a
// prefix is a prefix of the names of the keys under it, which listing
// relies on.
const escapeByte = '!'

func allowed(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("_/.*'() &$=@;:+,?-", c) >= 0
}

const hexDigits = "0123456789ABCDEF"

// encodeKey returns the object name under which key is stored.
func encodeKey(key string) string {
	n := 0
	for i := 0; i < len(key); i++ {
		if !allowed(key[i]) {
			n++
		}
	}
	if n == 0 {
		return key
	}
	var b strings.Builder
	b.Grow(len(key) + 2*n)
	for i := 0; i < len(key); i++ {
		c := key[i]
		if allowed(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte(escapeByte)
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

// decodeKey reverses encodeKey. ok is false for a name encodeKey cannot
// have produced (an object someone else stored).
func decodeKey(name string) (key string, ok bool) {
	if strings.IndexByte(name, escapeByte) < 0 {
		return name, true
	}
	b := make([]byte, 0, len(name))
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c != escapeByte {
			b = append(b, c)
			continue
		}
		if i+2 >= len(name) {
			return name, false
		}
		hi, lo := strings.IndexByte(hexDigits, name[i+1]), strings.IndexByte(hexDigits, name[i+2])
		if hi < 0 || lo < 0 {
			return name, false
		}
		b = append(b, byte(hi<<4|lo))
		i += 2
	}
	return string(b), true
}

// escapePath escapes an object name for a URL path, segment by segment.
func escapePath(name string) string {
	segs := strings.Split(name, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}
