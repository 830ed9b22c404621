package storagetest

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/wedsync/backup-replication/shared/storage"
)

func (s *suite) testName(t *testing.T) {
	p := s.newProvider(t)
	if p.Name() == "" {
		t.Errorf("Name() is empty; breakers, logs and the catalog key on it")
	}
}

// sizeCases are the object sizes every provider must store exactly. 6 MiB
// is Supabase's TUS chunk; the neighbours catch off-by-one chunking.
var sizeCases = []struct {
	name  string
	size  int64
	large bool
}{
	{"empty", 0, false},
	{"1B", 1, false},
	{"6MiB-1", 6*MiB - 1, false},
	{"6MiB", 6 * MiB, false},
	{"6MiB+1", 6*MiB + 1, false},
	{"100MiB", 100 * MiB, true},
}

func (s *suite) testSizes(t *testing.T) {
	for _, tc := range sizeCases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.large && !s.large() {
				t.Skip("large case skipped (Options.SkipLarge or -short)")
			}
			p, prefix := s.setup(t)
			key := prefix + "object-" + tc.name
			c := newContent(key, tc.size)
			want := c.sums()

			var h *heapWatch
			if tc.large {
				h = watchHeap()
			}
			put(t, p, key, c, want, storage.PutOptions{})
			if h != nil {
				checkHeap(t, s.opts, "Put 100 MiB", h.end())
				h = watchHeap()
			}
			checkGet(t, p, key, want)
			if h != nil {
				checkHeap(t, s.opts, "Get 100 MiB", h.end())
			}
			checkStat(t, p, key, want)

			if tc.size > 2 {
				// A range across the middle, where chunk and part borders lie.
				off, n := tc.size/2-min(tc.size/4, 4096), min(tc.size/2, 8192)
				checkRange(t, p, key, c, off, n)
			}
			got := listKeys(t, p, prefix)
			if o, ok := got[key]; !ok || o.Size != tc.size || len(got) != 1 {
				t.Errorf("List(%q) = %v, want only %q of %d bytes", prefix, keysOf(got), key, tc.size)
			}
		})
	}
}

// checkRange reads n bytes from off (n < 0: to the end) and compares them
// with the content.
func checkRange(t *testing.T, p storage.Provider, key string, c content, off, n int64) {
	t.Helper()
	wantN := n
	if n < 0 {
		wantN = c.size - off
	}
	want := c.bytesAt(off, wantN)
	rc, err := p.Get(t.Context(), key, off, n)
	if err != nil {
		t.Fatalf("Get(%q, %d, %d): %v", key, off, n, err)
	}
	got, err := drain(rc)
	if err != nil {
		t.Fatalf("Get(%q, %d, %d): reading: %v", key, off, n, err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("Get(%q, %d, %d) gave %d bytes that differ from the %d expected", key, off, n, len(got), len(want))
	}
}

func (s *suite) testRanges(t *testing.T) {
	p, prefix := s.setup(t)
	key := prefix + "ranged"
	c := newContent(key, 1*MiB+17)
	put(t, p, key, c, c.sums(), storage.PutOptions{})
	cases := []struct {
		name   string
		off, n int64
	}{
		{"start", 0, 100},
		{"first-byte", 0, 1},
		{"middle", 300_001, 65_536},
		{"end", c.size - 100, 100},
		{"last-byte", c.size - 1, 1},
		{"to-end", 500_000, -1},
		{"whole", 0, -1},
		{"whole-exact", 0, c.size},
		{"last-byte-to-end", c.size - 1, -1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { checkRange(t, p, key, c, tc.off, tc.n) })
	}
	for _, tc := range []struct {
		name   string
		off, n int64
	}{
		{"beyond-end", c.size + 10, 5},
		{"beyond-end-to-end", c.size + 10, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc, err := p.Get(t.Context(), key, tc.off, tc.n)
			if err == nil {
				got, rerr := drain(rc)
				if rerr == nil {
					t.Errorf("Get(%q, %d, %d) on a %d-byte object gave %d bytes and no error", key, tc.off, tc.n, c.size, len(got))
				}
			}
		})
	}
}

func (s *suite) testMetadata(t *testing.T) {
	p, prefix := s.setup(t)
	key := prefix + "with-metadata.json"
	c := newContent(key, 4096)
	want := c.sums()
	put(t, p, key, c, want, storage.PutOptions{
		ContentType: "application/json",
		Metadata:    map[string]string{"backup-id": "b-0001", "organization-id": "org-42"},
	})
	info := checkStat(t, p, key, want)
	if info.ContentType != "application/json" {
		t.Errorf("Stat(%q).ContentType = %q, want application/json", key, info.ContentType)
	}
	for k, v := range map[string]string{"backup-id": "b-0001", "organization-id": "org-42", storage.MetaSHA256: want.sha256} {
		if info.Metadata[k] != v {
			t.Errorf("Stat(%q).Metadata[%q] = %q, want %q (all: %v)", key, k, info.Metadata[k], v, info.Metadata)
		}
	}

	// Without a content type, the object is application/octet-stream.
	key2 := prefix + "default-type"
	c2 := newContent(key2, 10)
	put(t, p, key2, c2, c2.sums(), storage.PutOptions{})
	if info, err := p.Stat(t.Context(), key2); err != nil {
		t.Fatalf("Stat(%q): %v", key2, err)
	} else if info.ContentType != "application/octet-stream" {
		t.Errorf("Stat(%q).ContentType = %q, want application/octet-stream", key2, info.ContentType)
	}
}

func (s *suite) testOverwrite(t *testing.T) {
	p, prefix := s.setup(t)
	key := prefix + "overwritten"
	first := newContent(key+"#1", 3*MiB)
	second := newContent(key+"#2", 1000)
	put(t, p, key, first, first.sums(), storage.PutOptions{ContentType: "text/plain"})
	want := second.sums()
	put(t, p, key, second, want, storage.PutOptions{ContentType: "application/json"})
	info := checkStat(t, p, key, want)
	if info.ContentType != "application/json" {
		t.Errorf("after overwrite Stat(%q).ContentType = %q, want application/json", key, info.ContentType)
	}
	checkGet(t, p, key, want)
	if got := listKeys(t, p, prefix); len(got) != 1 || got[key].Size != 1000 {
		t.Errorf("after overwrite List(%q) = %v, want one object of 1000 bytes", prefix, got)
	}
}

func (s *suite) testNotFound(t *testing.T) {
	p, prefix := s.setup(t)
	key := prefix + "never-written"
	putSmall(t, p, prefix+"never-written-sibling", "x")
	if _, err := p.Stat(t.Context(), key); !isNotFound(err) {
		t.Errorf("Stat(missing) = %v (kind %s), want kind not_found matching storage.ErrNotFound and fs.ErrNotExist", err, storage.KindOf(err))
	}
	rc, err := p.Get(t.Context(), key, 0, -1)
	if err == nil {
		rc.Close()
	}
	if !isNotFound(err) {
		t.Errorf("Get(missing) = %v (kind %s), want kind not_found matching storage.ErrNotFound and fs.ErrNotExist", err, storage.KindOf(err))
	}
	rc, err = p.Get(t.Context(), key, 10, 10)
	if err == nil {
		rc.Close()
	}
	if !isNotFound(err) {
		t.Errorf("Get(missing, range) = %v (kind %s), want kind not_found", err, storage.KindOf(err))
	}
}

func (s *suite) testDelete(t *testing.T) {
	p, prefix := s.setup(t)
	if err := p.Delete(t.Context(), prefix+"never-written"); err != nil {
		t.Errorf("Delete(missing) = %v, want nil", err)
	}
	key := prefix + "doomed"
	keep := prefix + "doomed-not"
	putSmall(t, p, key, "bye")
	putSmall(t, p, keep, "stay")
	if err := p.Delete(t.Context(), key); err != nil {
		t.Fatalf("Delete(%q): %v", key, err)
	}
	checkAbsent(t, p, key, prefix)
	if err := p.Delete(t.Context(), key); err != nil {
		t.Errorf("second Delete(%q) = %v, want nil", key, err)
	}
	if _, err := p.Stat(t.Context(), keep); err != nil {
		t.Errorf("Delete(%q) affected %q: %v", key, keep, err)
	}
}

func keysOf(m map[string]storage.ObjectInfo) []string {
	out := make([]string, 0, len(m))
	for k, o := range m {
		out = append(out, fmt.Sprintf("%s(%d)", k, o.Size))
	}
	return out
}
