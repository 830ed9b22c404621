package storagetest

import (
	"errors"
	"sort"
	"strings"
	"testing"

	"github.com/wedsync/backup-replication/shared/storage"
)

func (s *suite) testList(t *testing.T) {
	p, prefix := s.setup(t)
	objects := map[string]string{
		"a/b":       "1",
		"a/bc":      "22",
		"a/b/c":     "333",
		"a/b/d/e":   "4444",
		"a/bcd/x":   "55555",
		"a/b-dash":  "666666",
		"z":         "7777777",
		"zz/deeper": "88888888",
	}
	for k, v := range objects {
		putSmall(t, p, prefix+k, v)
	}
	cases := []struct {
		prefix string
		want   []string
	}{
		{"", []string{"a/b", "a/bc", "a/b/c", "a/b/d/e", "a/bcd/x", "a/b-dash", "z", "zz/deeper"}},
		{"a/", []string{"a/b", "a/bc", "a/b/c", "a/b/d/e", "a/bcd/x", "a/b-dash"}},
		{"a/b", []string{"a/b", "a/bc", "a/b/c", "a/b/d/e", "a/bcd/x", "a/b-dash"}},
		{"a/b/", []string{"a/b/c", "a/b/d/e"}},
		{"a/bc", []string{"a/bc", "a/bcd/x"}},
		{"a/bc/", nil},
		{"a/b/d/", []string{"a/b/d/e"}},
		{"a/b/d/e", []string{"a/b/d/e"}},
		{"z", []string{"z", "zz/deeper"}},
		{"zz/", []string{"zz/deeper"}},
		{"nothing/", nil},
		{"a/b/c/", nil},
	}
	for _, tc := range cases {
		t.Run("prefix="+strings.ReplaceAll(tc.prefix, "/", "|"), func(t *testing.T) {
			got := listKeys(t, p, prefix+tc.prefix)
			var gotKeys []string
			for k, o := range got {
				rel := strings.TrimPrefix(k, prefix)
				gotKeys = append(gotKeys, rel)
				if v, ok := objects[rel]; ok && o.Size != int64(len(v)) {
					t.Errorf("List reports %q with size %d, want %d", rel, o.Size, len(v))
				}
			}
			sort.Strings(gotKeys)
			want := append([]string(nil), tc.want...)
			sort.Strings(want)
			if strings.Join(gotKeys, ",") != strings.Join(want, ",") {
				t.Errorf("List(%q) = %q, want exactly %q", tc.prefix, gotKeys, want)
			}
		})
	}

	t.Run("stops-on-error", func(t *testing.T) {
		stop := errors.New("enough")
		calls := 0
		err := p.List(t.Context(), prefix, func(storage.ObjectInfo) error {
			calls++
			return stop
		})
		if !errors.Is(err, stop) {
			t.Errorf("List returned %v, want the callback's error", err)
		}
		if calls != 1 {
			t.Errorf("List called the callback %d times after it returned an error, want 1", calls)
		}
	})
}

// hostileKeys are names that break naive URL building, signing or listing.
var hostileKeys = []struct{ name, key string }{
	{"space", "with space.bin"},
	{"spaces-around", " leading and trailing "},
	{"double-space", "two  spaces"},
	{"accent", "café-é.txt"},
	{"emoji", "ring-💍.dat"},
	{"cjk", "日本/語のファイル"},
	{"double-quote", `say "hello"`},
	{"single-quote", "it's"},
	{"question", "what?x=1"},
	{"hash", "tag#section"},
	{"percent", "100%"},
	{"percent-encoded-lookalike", "a%20b%2Fc"},
	{"plus", "a+b c"},
	{"ampersand-equals", "x&y=z;w"},
	{"parens-brackets", "(copy) [1] {2}"},
	{"symbols", "at@dollar$comma,colon:tilde~bang!star*"},
	{"backslash", `back\slash`},
	{"dots", "dir.with.dots/file..name..."},
	{"deep", strings.Repeat("level/", 19) + "leaf"},
}

func (s *suite) testHostileKeys(t *testing.T) {
	for _, hk := range hostileKeys {
		t.Run(hk.name, func(t *testing.T) {
			p, prefix := s.setup(t)
			key := prefix + hk.key
			c := newContent(key, 777)
			want := c.sums()
			put(t, p, key, c, want, storage.PutOptions{})
			checkStat(t, p, key, want)
			checkGet(t, p, key, want)
			checkRange(t, p, key, c, 100, 50)
			got := listKeys(t, p, prefix)
			if _, ok := got[key]; !ok || len(got) != 1 {
				t.Errorf("List(%q) = %q, want exactly [%q]", prefix, keysOf(got), key)
			}
			// The key itself, and a prefix cut inside it, list the object.
			runes := []rune(hk.key)
			if cut := prefix + string(runes[:len(runes)/2]); len(listKeys(t, p, cut)) != 1 {
				t.Errorf("List(%q) does not find %q", cut, key)
			}
			if err := p.Delete(t.Context(), key); err != nil {
				t.Fatalf("Delete(%q): %v", key, err)
			}
			checkAbsent(t, p, key, prefix)
		})
	}
}
