package storagetest_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wedsync/backup-replication/shared/storage"
	"github.com/wedsync/backup-replication/shared/storage/storagetest"
)

// memProvider is a reference provider kept in memory, to check the suite
// itself: it must pass every case, and breaking it must fail some.
type memProvider struct {
	mu      sync.Mutex
	objects map[string]memObject
	denied  bool
}

type memObject struct {
	data []byte
	info storage.ObjectInfo
}

func (m *memProvider) Name() string { return "mem" }

func (m *memProvider) fail(op, key string, kind storage.Kind, err error) error {
	return &storage.Error{Op: op, Provider: "mem", Key: key, Kind: kind, Err: err}
}

func (m *memProvider) Put(ctx context.Context, key string, r io.Reader, size int64, opts storage.PutOptions) (storage.ObjectInfo, error) {
	if m.denied {
		return storage.ObjectInfo{}, m.fail("put", key, storage.Unauthorized, fmt.Errorf("denied"))
	}
	v := storage.NewVerifyingReader(r, size, opts.SHA256, opts.Progress)
	var buf bytes.Buffer
	for {
		if err := ctx.Err(); err != nil {
			return storage.ObjectInfo{}, m.fail("put", key, storage.Transient, err)
		}
		_, err := io.CopyN(&buf, v, 1<<20)
		if err == io.EOF {
			break
		}
		if err != nil {
			return storage.ObjectInfo{}, m.fail("put", key, storage.KindOf(err), err)
		}
	}
	if err := v.Verify(); err != nil {
		return storage.ObjectInfo{}, m.fail("put", key, storage.Integrity, err)
	}
	ct := opts.ContentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	md := maps.Clone(opts.Metadata)
	if md == nil {
		md = map[string]string{}
	}
	md[storage.MetaSHA256] = opts.SHA256
	info := storage.ObjectInfo{Key: key, Size: size, ContentType: ct, ModTime: time.Now(), SHA256: opts.SHA256,
		Metadata: md, Checksums: storage.Checksums{MD5: v.MD5(), CRC32C: v.CRC32C(), HasCRC32C: true}}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.objects[key] = memObject{data: buf.Bytes(), info: info}
	return info, nil
}

func (m *memProvider) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	o, err := m.get("get", key)
	if err != nil {
		return nil, err
	}
	if offset > int64(len(o.data)) || (offset == int64(len(o.data)) && len(o.data) > 0) {
		return nil, m.fail("get", key, storage.Permanent, fmt.Errorf("range not satisfiable"))
	}
	b := o.data[offset:]
	if length >= 0 && length < int64(len(b)) {
		b = b[:length]
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func (m *memProvider) get(op, key string) (memObject, error) {
	if m.denied {
		return memObject{}, m.fail(op, key, storage.Unauthorized, fmt.Errorf("denied"))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.objects[key]
	if !ok {
		return o, m.fail(op, key, storage.NotFound, fmt.Errorf("no such key"))
	}
	return o, nil
}

func (m *memProvider) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	o, err := m.get("stat", key)
	return o.info, err
}

func (m *memProvider) Delete(ctx context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.objects, key)
	return nil
}

func (m *memProvider) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	if m.denied {
		return m.fail("list", prefix, storage.Unauthorized, fmt.Errorf("denied"))
	}
	m.mu.Lock()
	var infos []storage.ObjectInfo
	for k, o := range m.objects {
		if strings.HasPrefix(k, prefix) {
			infos = append(infos, o.info)
		}
	}
	m.mu.Unlock()
	for _, i := range infos {
		if err := fn(i); err != nil {
			return err
		}
	}
	return nil
}

func TestSuiteOnMemory(t *testing.T) {
	store := &memProvider{objects: map[string]memObject{}}
	storagetest.Run(t, func(t *testing.T) storage.Provider { return store }, storagetest.Options{
		BadCredentials: func(t *testing.T) storage.Provider {
			return &memProvider{objects: store.objects, denied: true}
		},
	})
	if n := len(store.objects); n != 0 {
		t.Errorf("the suite left %d objects behind", n)
	}
}
