package breaker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
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
	serialOnce.Do(func() { serialURL, serialErr = emulator.Serialize(motoSrv.URL) })
	if serialErr != nil {
		t.Fatal(serialErr)
	}
	return clientAt(t, serialURL), serialURL
}

var (
	serialOnce sync.Once
	serialURL  string
	serialErr  error
)

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

func TestDynamoStore(t *testing.T) {
	db, _ := dynamoClient(t)
	store, err := NewDynamoStore(db, newTable(t, db))
	if err != nil {
		t.Fatal(err)
	}
	exerciseStore(t, store)
}

func TestConcurrentOutcomesAreAllCounted(t *testing.T) {
	db, _ := dynamoClient(t)
	store, err := NewDynamoStore(db, newTable(t, db))
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(store, Settings{Name: "s3", ReadyToTrip: func(Counts) bool { return false }, Logger: failOnWarn(t)})
	if err != nil {
		t.Fatal(err)
	}
	const callers, each = 16, 4
	var wg sync.WaitGroup
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				done, err := b.Allow(t.Context())
				if err != nil {
					t.Error(err)
					return
				}
				done(transient("put"))
			}
		}()
	}
	wg.Wait()
	s := mustState(t, b, StateClosed)
	if s.Counts.TotalFailures != callers*each || s.Counts.ConsecutiveFailures != callers*each {
		t.Fatalf("counts = %+v, want all %d concurrent failures counted", s.Counts, callers*each)
	}
}
