package breaker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/wedsync/backup-replication/infra/emulator"
)

// One moto server for the whole test binary, started on first use.
var (
	motoOnce sync.Once
	motoSrv  *emulator.Moto
	motoErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if motoSrv != nil {
		motoSrv.Close()
	}
	os.Exit(code)
}

// dynamoClient returns a client of the shared moto server, skipping (or
// failing under REQUIRE_EMULATORS=1) when it cannot start.
func dynamoClient(t *testing.T) (*dynamodb.Client, string) {
	t.Helper()
	motoOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		motoSrv, motoErr = emulator.StartMoto(ctx)
	})
	emulator.Require(t, motoErr)
	return clientAt(t, motoSrv.URL), motoSrv.URL
}

func clientAt(t testing.TB, url string) *dynamodb.Client {
	cfg, err := (&emulator.Moto{URL: url}).AWSConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return dynamodb.NewFromConfig(cfg)
}

// newTable creates a table of its own for one test.
func newTable(t *testing.T, db *dynamodb.Client) string {
	t.Helper()
	var b [4]byte
	rand.Read(b[:])
	table := "breakers-" + hex.EncodeToString(b[:])
	if err := EnsureTable(t.Context(), db, table); err != nil {
		t.Fatal(err)
	}
	if err := EnsureTable(t.Context(), db, table); err != nil {
		t.Fatalf("EnsureTable on an existing table: %v", err)
	}
	return table
}

func TestLifecycleDynamo(t *testing.T) {
	db, _ := dynamoClient(t)
	store, err := NewDynamoStore(db, newTable(t, db))
	if err != nil {
		t.Fatal(err)
	}
	exerciseLifecycle(t, store)
}

func TestDynamoStoreConditionalWrites(t *testing.T) {
	db, _ := dynamoClient(t)
	store, err := NewDynamoStore(db, newTable(t, db))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	empty, err := store.Load(ctx, "s3")
	if err != nil || empty.Version != 0 || empty.Name != "s3" || empty.State != StateClosed {
		t.Fatalf("Load of a missing breaker = %+v, %v", empty, err)
	}
	now := time.UnixMilli(time.Now().UnixMilli())
	rec := Record{Name: "s3", State: StateHalfOpen, Generation: 7, Counts: Counts{Requests: 2, TotalSuccesses: 1, ConsecutiveSuccesses: 1},
		OpenedAt: now.Add(-time.Minute), ChangedAt: now, Trials: map[string]time.Time{"t1": now.Add(time.Minute)}}
	if err := store.Save(ctx, rec, 0); err != nil {
		t.Fatal(err)
	}
	if err := store.Save(ctx, rec, 0); !errors.Is(err, ErrConflict) {
		t.Fatalf("second create = %v, want ErrConflict", err)
	}
	got, err := store.Load(ctx, "s3")
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 1 || got.State != StateHalfOpen || got.Generation != 7 || got.Counts != rec.Counts ||
		!got.OpenedAt.Equal(rec.OpenedAt) || !got.ChangedAt.Equal(now) || !got.Expiry.IsZero() ||
		len(got.Trials) != 1 || !got.Trials["t1"].Equal(now.Add(time.Minute)) {
		t.Fatalf("round trip: got %+v, saved %+v", got, rec)
	}
	got.Trials = nil
	if err := store.Save(ctx, got, got.Version); err != nil {
		t.Fatal(err)
	}
	if err := store.Save(ctx, got, got.Version); !errors.Is(err, ErrConflict) {
		t.Fatalf("write at a stale version = %v, want ErrConflict", err)
	}
	if got, _ := store.Load(ctx, "s3"); got.Version != 2 || len(got.Trials) != 0 {
		t.Fatalf("after update: %+v", got)
	}
}
