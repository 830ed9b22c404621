package decorate

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"slices"
	"testing"

	"github.com/wedsync/backup-replication/shared/storage"
)

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

var contract = []byte("Contract for the Smith–Jones wedding, 14 June: venue, caterer, photographer.")

func TestRetryPutReplaysASeekableSource(t *testing.T) {
	f := newFake()
	p := WithRetry(f, quickPolicy())
	f.failNext("put", transientErr("put", "k"), transientErr("put", "k"))
	r := bytes.NewReader(append([]byte("header"), contract...))
	r.Seek(6, io.SeekStart) // the source starts mid-stream: retries go back here, not to 0
	info, err := p.Put(t.Context(), "backups/org/b1", r, int64(len(contract)), storage.PutOptions{SHA256: sum(contract)})
	if err != nil || f.called("put") != 3 {
		t.Fatalf("Put = %v after %d calls, want success on the 3rd", err, f.called("put"))
	}
	if got := f.objects["backups/org/b1"]; !bytes.Equal(got, contract) || info.Size != int64(len(contract)) {
		t.Fatalf("stored %q (size %d), want the whole contract", got, info.Size)
	}
}

func TestRetryDoesNotReplayAConsumedReader(t *testing.T) {
	f := newFake()
	p := WithRetry(f, quickPolicy())
	f.failNext("put", transientErr("put", "k"))
	r := io.MultiReader(bytes.NewReader(contract)) // a stream: no Seek
	_, err := p.Put(t.Context(), "backups/org/b1", r, int64(len(contract)), storage.PutOptions{SHA256: sum(contract)})
	if !errors.Is(err, storage.ErrTransient) || f.called("put") != 1 {
		t.Fatalf("Put of a stream = %v after %d calls, want the transient error after 1 (the queue retries)", err, f.called("put"))
	}
	if _, ok := f.objects["backups/org/b1"]; ok {
		t.Fatal("a partial object was stored")
	}
}

func TestRetryGetStatDelete(t *testing.T) {
	f := newFake()
	f.objects["backups/org/b1"] = contract
	p := WithRetry(f, quickPolicy())

	f.failNext("get", transientErr("get", "k"), storage.NewError("get", "fake", "k", storage.Throttled, errors.New("429")))
	rc, err := p.Get(t.Context(), "backups/org/b1", 9, 3)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if string(got) != "for" || f.called("get") != 3 {
		t.Fatalf("Get = %q after %d calls, want \"for\" after 3", got, f.called("get"))
	}

	f.failNext("stat", transientErr("stat", "k"))
	if _, err := p.Stat(t.Context(), "backups/org/none"); !errors.Is(err, storage.ErrNotFound) || f.called("stat") != 2 {
		t.Fatalf("Stat = %v after %d calls, want not found after 2 (not found itself is not retried)", err, f.called("stat"))
	}

	f.failNext("delete", transientErr("delete", "k"))
	if err := p.Delete(t.Context(), "backups/org/b1"); err != nil || f.called("delete") != 2 {
		t.Fatalf("Delete = %v after %d calls", err, f.called("delete"))
	}
	f.failNext("delete", storage.NewError("delete", "fake", "k", storage.Unauthorized, errors.New("403")))
	if err := p.Delete(t.Context(), "backups/org/b1"); !errors.Is(err, storage.ErrUnauthorized) || f.called("delete") != 3 {
		t.Fatalf("unauthorized Delete = %v after %d calls, want one call", err, f.called("delete"))
	}
}

func TestRetryListSkipsKeysAlreadySeen(t *testing.T) {
	f := newFake()
	keys := []string{"backups/org/a", "backups/org/b b", "backups/org/ü?\"c"}
	for _, k := range keys {
		f.objects[k] = contract
	}
	p := WithRetry(f, quickPolicy())
	f.failNext("list", transientErr("list", "backups/")) // fails after the first object
	var seen []string
	err := p.List(t.Context(), "backups/", func(o storage.ObjectInfo) error { seen = append(seen, o.Key); return nil })
	if err != nil || !slices.Equal(seen, keys) || f.called("list") != 2 {
		t.Fatalf("List = %v, saw %q in %d calls; want each key once over 2 calls", err, seen, f.called("list"))
	}

	// An error from fn is the caller's: returned as is, never retried.
	stop := storage.NewError("stat", "other", "x", storage.Transient, errors.New("other provider down"))
	err = p.List(t.Context(), "backups/", func(storage.ObjectInfo) error { return stop })
	if err != stop || f.called("list") != 3 {
		t.Fatalf("List with a failing fn = %v after %d calls, want fn's error after 1 more call", err, f.called("list")-2)
	}
}

func TestRetryResumesWithTheLatestState(t *testing.T) {
	f := newFake()
	r, _ := storage.As[storage.Resumer](WithRetry(fakeResumer{f}, quickPolicy()))
	f.failNext("put_resumable", transientErr("put", "k"))
	var saved []string
	_, err := r.PutResumable(t.Context(), "backups/org/big", bytesSource(contract), storage.PutOptions{}, "",
		func(s string) error { saved = append(saved, s); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(f.states, []string{"", "session-1"}) || !slices.Equal(saved, []string{"session-1"}) {
		t.Fatalf("PutResumable called with states %q (saved %q), want the retry to resume session-1", f.states, saved)
	}
}

func TestRetryNeverRetriesCannotCopy(t *testing.T) {
	f := newFake()
	c, _ := storage.As[storage.Copier](WithRetry(fakeCopier{f}, quickPolicy()))
	_, err := c.Copy(t.Context(), storage.Locator{Key: "missing"}, "k", storage.PutOptions{})
	if !errors.Is(err, storage.ErrCannotCopy) || f.called("copy") != 1 {
		t.Fatalf("Copy = %v after %d calls, want ErrCannotCopy after 1", err, f.called("copy"))
	}
}
