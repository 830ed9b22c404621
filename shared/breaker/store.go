package breaker

import (
	"context"
	"sync"
	"time"
)

// Store keeps breaker records, one per name, shared by every process that
// uses the same breaker. Implementations must be safe for concurrent use.
type Store interface {
	// Load returns the record stored under name, or a zero Record with that
	// Name (closed, Version 0) when there is none.
	Load(ctx context.Context, name string) (Record, error)
	// Save stores rec only if the stored record still has Version prev (0:
	// only if there is none), and then with Version prev+1. When another
	// writer got there first it returns an error matching ErrConflict and
	// changes nothing.
	Save(ctx context.Context, rec Record, prev uint64) error
	// Count adds outcome o to the Counts of the record named name (as
	// Counts.Add does) and raises its Version, in one atomic write without
	// reading first, provided the record is still closed in generation gen
	// and its Expiry is zero or after now. It returns the record as
	// written. When those conditions do not hold it returns an error
	// matching ErrConflict and changes nothing. This is the hot path: every
	// request allowed while closed reports through it, and concurrent
	// reports never conflict with each other.
	Count(ctx context.Context, name string, gen uint64, now time.Time, o Outcome) (Record, error)
}

// MemoryStore is a Store in this process's memory: for a single process
// (tools, tests of code that takes a Breaker), never for Lambda functions,
// whose instances do not share memory.
type MemoryStore struct {
	mu   sync.Mutex
	recs map[string]Record
}

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{recs: map[string]Record{}}
}

// Load implements Store.
func (m *MemoryStore) Load(ctx context.Context, name string) (Record, error) {
	if err := ctx.Err(); err != nil {
		return Record{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.recs[name]
	if !ok {
		return Record{Name: name}, nil
	}
	return r.clone(), nil
}

// Save implements Store.
func (m *MemoryStore) Save(ctx context.Context, rec Record, prev uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.recs[rec.Name].Version != prev {
		return ErrConflict
	}
	rec = rec.clone()
	rec.Version = prev + 1
	m.recs[rec.Name] = rec
	return nil
}

// Count implements Store.
func (m *MemoryStore) Count(ctx context.Context, name string, gen uint64, now time.Time, o Outcome) (Record, error) {
	if err := ctx.Err(); err != nil {
		return Record{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.recs[name]
	if !countable(r, gen, now) {
		return Record{}, ErrConflict
	}
	r.Counts.Add(o)
	r.Version++
	m.recs[name] = r
	return r.clone(), nil
}
