package decorate

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sort"
	"strings"
	"sync"

	"github.com/wedsync/backup-replication/shared/storage"
)

// fake is an in-memory provider for testing our decorators only (STYLE.md
// 16): providers themselves are tested on their emulators. failNext makes
// the next calls of an op fail.
type fake struct {
	mu       sync.Mutex
	objects  map[string][]byte
	calls    map[string]int
	failures map[string][]error
	states   []string // states PutResumable was called with
	bodyErr  error    // when set, Get bodies fail with it after their first byte
}

func newFake() *fake {
	return &fake{objects: map[string][]byte{}, calls: map[string]int{}, failures: map[string][]error{}}
}

// failNext queues errs for the next calls of op, one per call.
func (f *fake) failNext(op string, errs ...error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failures[op] = append(f.failures[op], errs...)
}

func (f *fake) called(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

// enter counts a call and returns the error queued for it, if any.
func (f *fake) enter(op string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[op]++
	if q := f.failures[op]; len(q) > 0 {
		f.failures[op] = q[1:]
		return q[0]
	}
	return nil
}

func transientErr(op, key string) error {
	return storage.NewError(op, "fake", key, storage.Transient, errors.New("503 Service Unavailable"))
}

func (f *fake) Name() string { return "fake" }

// Put reads half of r before failing when a failure is queued, as a real
// upload that breaks mid-stream would.
func (f *fake) Put(ctx context.Context, key string, r io.Reader, size int64, opts storage.PutOptions) (storage.ObjectInfo, error) {
	if err := f.enter("put"); err != nil {
		io.CopyN(io.Discard, r, size/2)
		return storage.ObjectInfo{}, err
	}
	vr := storage.NewVerifyingReader(r, size, opts.SHA256, opts.Progress)
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, vr); err != nil {
		return storage.ObjectInfo{}, storage.NewError("put", "fake", key, storage.KindOf(err), err)
	}
	f.mu.Lock()
	f.objects[key] = buf.Bytes()
	f.mu.Unlock()
	return storage.ObjectInfo{Key: key, Size: size, SHA256: opts.SHA256}, nil
}

func (f *fake) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if err := f.enter("get"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	b, ok := f.objects[key]
	f.mu.Unlock()
	if !ok {
		return nil, storage.NewError("get", "fake", key, storage.NotFound, errors.New("no such object"))
	}
	b = b[offset:]
	if length >= 0 {
		b = b[:length]
	}
	if f.bodyErr != nil {
		return io.NopCloser(io.MultiReader(bytes.NewReader(b[:1]), failing{f.bodyErr})), nil
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func (f *fake) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	if err := f.enter("stat"); err != nil {
		return storage.ObjectInfo{}, err
	}
	f.mu.Lock()
	b, ok := f.objects[key]
	f.mu.Unlock()
	if !ok {
		return storage.ObjectInfo{}, storage.NewError("stat", "fake", key, storage.NotFound, errors.New("no such object"))
	}
	return storage.ObjectInfo{Key: key, Size: int64(len(b))}, nil
}

func (f *fake) Delete(ctx context.Context, key string) error {
	if err := f.enter("delete"); err != nil {
		return err
	}
	f.mu.Lock()
	delete(f.objects, key)
	f.mu.Unlock()
	return nil
}

// List fails after its first object when a failure is queued.
func (f *fake) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	failErr := f.enter("list")
	f.mu.Lock()
	var keys []string
	for k := range f.objects {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	f.mu.Unlock()
	sort.Strings(keys)
	for i, k := range keys {
		if failErr != nil && i == 1 {
			return failErr
		}
		if err := fn(storage.ObjectInfo{Key: k}); err != nil {
			return err
		}
	}
	return failErr
}

// fakeCopier, fakeResumer and fakeBoth add the optional abilities.
type fakeCopier struct{ *fake }
type fakeResumer struct{ *fake }
type fakeBoth struct{ *fake }

func (f *fake) copy(ctx context.Context, src storage.Locator, key string, opts storage.PutOptions) (storage.ObjectInfo, error) {
	if err := f.enter("copy"); err != nil {
		return storage.ObjectInfo{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.objects[src.Key]
	if !ok {
		return storage.ObjectInfo{}, storage.ErrCannotCopy
	}
	f.objects[key] = b
	return storage.ObjectInfo{Key: key, Size: int64(len(b))}, nil
}

// putResumable saves a session state, fails when told to, and otherwise
// reads src from where the last state left off.
func (f *fake) putResumable(ctx context.Context, key string, src storage.Source, opts storage.PutOptions, state string, save func(string) error) (storage.ObjectInfo, error) {
	f.mu.Lock()
	f.states = append(f.states, state)
	f.mu.Unlock()
	if state == "" {
		if err := save("session-1"); err != nil {
			return storage.ObjectInfo{}, err
		}
	}
	if err := f.enter("put_resumable"); err != nil {
		return storage.ObjectInfo{}, err
	}
	rc, err := src.Open(ctx, 0)
	if err != nil {
		return storage.ObjectInfo{}, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return storage.ObjectInfo{}, err
	}
	f.mu.Lock()
	f.objects[key] = b
	f.mu.Unlock()
	return storage.ObjectInfo{Key: key, Size: int64(len(b))}, nil
}

func (f fakeCopier) Copy(ctx context.Context, src storage.Locator, key string, opts storage.PutOptions) (storage.ObjectInfo, error) {
	return f.copy(ctx, src, key, opts)
}

func (f fakeResumer) PutResumable(ctx context.Context, key string, src storage.Source, opts storage.PutOptions, state string, save func(string) error) (storage.ObjectInfo, error) {
	return f.putResumable(ctx, key, src, opts, state, save)
}

func (f fakeBoth) Copy(ctx context.Context, src storage.Locator, key string, opts storage.PutOptions) (storage.ObjectInfo, error) {
	return f.copy(ctx, src, key, opts)
}

func (f fakeBoth) PutResumable(ctx context.Context, key string, src storage.Source, opts storage.PutOptions, state string, save func(string) error) (storage.ObjectInfo, error) {
	return f.putResumable(ctx, key, src, opts, state, save)
}

// bytesSource is a storage.Source over a byte slice.
type bytesSource []byte

func (b bytesSource) Size() int64 { return int64(len(b)) }
func (b bytesSource) Open(ctx context.Context, offset int64) (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(b[offset:])), nil
}

// failing is a reader that always fails with err.
type failing struct{ err error }

func (f failing) Read([]byte) (int, error) { return 0, f.err }
