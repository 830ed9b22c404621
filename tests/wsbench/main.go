// Command wsbench measures live progress fan-out through the local
// WebSocket gateway: N connections (default 1,000) subscribe to one
// backup; the publisher (shared/publish, posting with the AWS SDK's
// management API client) sends replica events to all of them, looked up
// in the connections table on moto. It reports deliveries per second and
// the latency from a replica event (the message's timestamp, taken when
// the publisher is called) to each client's receipt.
//
//	go run ./tests/wsbench [-connections 1000] [-events 20] [-burst 50] [-progress 5s]
//
// Everything runs on loopback in this process except moto_server
// (MOTO_URL names a running one). The run is bounded by -timeout.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/golang-jwt/jwt/v5"

	"github.com/wedsync/backup-replication/infra/emulator"
	"github.com/wedsync/backup-replication/infra/local/wsgateway"
	"github.com/wedsync/backup-replication/shared/api"
	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/publish"
	"github.com/wedsync/backup-replication/shared/replicate"
	"github.com/wedsync/backup-replication/shared/ws"
)

func main() {
	n := flag.Int("connections", 1000, "subscribed WebSocket connections")
	single := flag.Int("events", 20, "replica events sent one at a time (latency)")
	burst := flag.Int("burst", 20, "replica events sent back to back (throughput)")
	progressFor := flag.Duration("progress", 5*time.Second, "length of the simulated three-provider copy")
	workers := flag.Int("workers", publish.DefaultWorkers, "publisher's PostToConnection workers")
	timeout := flag.Duration("timeout", 10*time.Minute, "bound on the whole run")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the run to this file")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "wsbench:", err)
			os.Exit(1)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if err := run(ctx, *n, *single, *burst, *progressFor, *workers); err != nil {
		fmt.Fprintln(os.Stderr, "wsbench:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

func run(ctx context.Context, n, single, burst int, progressFor time.Duration, workers int) error {
	moto, err := emulator.StartMoto(ctx)
	if err != nil {
		return err
	}
	defer moto.Close()
	awsCfg, _ := moto.AWSConfig(ctx)
	db := dynamodb.NewFromConfig(awsCfg)
	suffix := randomHex(4)
	table := "wsbench-connections-" + suffix
	names := catalog.Config{BackupsTable: "wsbench-backups-" + suffix, ReplicasTable: "wsbench-replicas-" + suffix}
	if err := ws.EnsureTables(ctx, db, table); err != nil {
		return err
	}
	if err := catalog.EnsureTables(ctx, db, names); err != nil {
		return err
	}
	store, _ := ws.NewDynamo(db, table, nil)
	cat, _ := catalog.NewDynamo(db, names)
	org := api.NewID(time.Now())
	b, _, err := cat.CreateBackup(ctx, catalog.Backup{ID: api.NewID(time.Now()), OrganizationID: org, Name: "bench.tar",
		Size: 100 << 20, SHA256: "00", Status: catalog.StatusReplicating, LandingKey: "backups/" + org + "/x", CreatedAt: time.Now()})
	if err != nil {
		return err
	}

	secret := randomHex(32)
	auth, err := api.NewJWTAuthenticator(api.JWTConfig{Secret: []byte(secret), Issuer: "wsbench", Audience: "authenticated"})
	if err != nil {
		return err
	}
	token, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": "wsbench", "aud": "authenticated",
		"exp": time.Now().Add(time.Hour).Unix(), "app_metadata": map[string]any{"org_id": org}}).SignedString([]byte(secret))

	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	var h *ws.Handler
	g := wsgateway.New(wsgateway.Config{Logger: quiet, Function: wsgateway.FunctionFunc(
		func(ctx context.Context, ev events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
			return h.Handle(ctx, ev)
		})})
	if err := g.Listen(); err != nil {
		return err
	}
	defer g.Close()
	poster := publish.NewPoster(awsCfg, g.Endpoint())
	if h, err = ws.New(ws.Config{Endpoint: g.Endpoint(), MaxSubscriptions: 10}, ws.Deps{Store: store, Backups: cat, Auth: auth,
		Replies: poster, Logger: quiet}); err != nil {
		return err
	}
	pub, err := publish.New(publish.Config{Workers: workers}, publish.Deps{Poster: poster, Audience: store, Logger: quiet})
	if err != nil {
		return err
	}

	rec := newReceived()
	start := time.Now()
	conns, err := connectAll(ctx, g.URL(), token, b.ID, n, 32, rec)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.CloseNow()
			}
		}
	}()
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	fmt.Printf("%d connections opened and subscribed in %s (through the ws handler, on moto)\n", n, time.Since(start).Round(time.Millisecond))
	fmt.Printf("machine: %d CPUs, %s; publisher workers: %d\n\n", runtime.NumCPU(), runtime.Version(), workers)

	// Subscriber lookup: one Query of the by_backup index (plus "*").
	var lookups []time.Duration
	for range 5 {
		t := time.Now()
		ids, err := store.Subscribers(ctx, b.ID, org)
		if err != nil || len(ids) != n {
			return fmt.Errorf("subscribers: %d, %v", len(ids), err)
		}
		lookups = append(lookups, time.Since(t))
	}
	fmt.Printf("subscriber lookup (%d items from DynamoDB on moto): %s\n", n, summarise(lookups))

	// A and B, twice: with a subscriber lookup per event (a Query on moto),
	// then with the subscriber list read once (the fan-out alone, as when
	// DynamoDB answers in a few milliseconds).
	ids, _ := store.Subscribers(ctx, b.ID, org)
	fanOnly, err := publish.New(publish.Config{Workers: workers}, publish.Deps{Poster: poster,
		Audience: snapshot{Audience: store, ids: ids}, Logger: quiet})
	if err != nil {
		return err
	}
	for _, m := range []struct {
		label string
		pub   *publish.Publisher
	}{{"with a subscriber lookup per event (moto)", pub}, {"fan-out only (subscribers read once)", fanOnly}} {
		fmt.Printf("\n%s\n", m.label)
		if err := eventsRun(ctx, m.pub, rec, b, org, n, single, burst); err != nil {
			return err
		}
	}
	fmt.Println()

	// C: a copy to three providers reporting progress every 5 ms.
	positions := progressRun(ctx, pub, b, org, progressFor)
	if err := rec.waitCount(ctx, publish.TypeBackupStatus, n); err != nil {
		return err
	}
	prog := summarise(rec.take(publish.TypeBackupProgress))
	final := summarise(rec.take(publish.TypeReplicaState))
	fmt.Printf("C. %s copy to 3 providers, %d positions published: %.1f backup_progress per client (%.1f/s)\n",
		progressFor, positions, float64(prog.n)/float64(n), float64(prog.n)/float64(n)/progressFor.Seconds())
	fmt.Printf("   position → client (throttle wait included): %s\n", prog)
	fmt.Printf("   replica_state → client: %s\n", final)
	s := pub.Stats()
	fmt.Printf("\npublisher: %d posts, %d failed, %d gone, %d positions coalesced\n", s.Posts, s.Failed, s.Gone, s.Throttled)
	return nil
}

// eventsRun sends backup_status events one at a time (A: latency) and
// back to back (B: throughput) and waits for every client to have them.
func eventsRun(ctx context.Context, pub *publish.Publisher, rec *received, b catalog.Backup, org string, n, single, burst int) error {
	var rounds []time.Duration
	for i := range single {
		t := time.Now()
		pub.BackupStatus(ctx, publish.BackupStatus{OrganizationID: org, BackupID: b.ID, Status: catalog.StatusReplicating, At: t})
		if err := rec.waitCount(ctx, publish.TypeBackupStatus, (i+1)*n); err != nil {
			return err
		}
		rounds = append(rounds, time.Since(t))
	}
	fmt.Printf("A. one event at a time, %d events: event → client %s\n", single, summarise(rec.take(publish.TypeBackupStatus)))
	fmt.Printf("   event → last of %d clients: %s\n", n, summarise(rounds))
	t, cpu0 := time.Now(), cpuTime()
	for range burst {
		pub.BackupStatus(ctx, publish.BackupStatus{OrganizationID: org, BackupID: b.ID, Status: catalog.StatusReplicating, At: time.Now()})
	}
	if err := rec.waitCount(ctx, publish.TypeBackupStatus, burst*n); err != nil {
		return err
	}
	elapsed, cpu := time.Since(t), cpuTime()-cpu0
	fmt.Printf("B. burst of %d events: %d deliveries in %s = %.0f deliveries/s, %.1f events/s fully fanned out\n",
		burst, burst*n, elapsed.Round(time.Millisecond), float64(burst*n)/elapsed.Seconds(), float64(burst)/elapsed.Seconds())
	fmt.Printf("   CPU of this process (publisher, gateway and %d clients): %s = %.0f µs per delivery (%.0f%% of one core)\n",
		n, cpu.Round(time.Millisecond), float64(cpu.Microseconds())/float64(burst*n), 100*cpu.Seconds()/elapsed.Seconds())
	fmt.Printf("   event → client (queueing behind earlier events included): %s\n", summarise(rec.take(publish.TypeBackupStatus)))
	return nil
}

// snapshot answers every lookup with the same subscribers.
type snapshot struct {
	publish.Audience
	ids []string
}

func (s snapshot) Subscribers(context.Context, string, string) ([]string, error) { return s.ids, nil }

// progressRun plays three replicate handlers copying b: a COPYING
// position every 5 ms each for d, then VERIFIED (the last one PROTECTED).
func progressRun(ctx context.Context, pub *publish.Publisher, b catalog.Backup, org string, d time.Duration) int {
	providers := []string{"supabase", "s3", "gcs"}
	ev := func(p string, st catalog.ReplicaState, bytes int64) replicate.ProgressEvent {
		return replicate.ProgressEvent{BackupID: b.ID, OrganizationID: org, Provider: p, State: st, Bytes: bytes, Total: b.Size, At: time.Now()}
	}
	start := time.Now()
	positions := 0
	for tick := time.NewTicker(5 * time.Millisecond); time.Since(start) < d && ctx.Err() == nil; <-tick.C {
		done := int64(float64(b.Size) * float64(time.Since(start)) / float64(d))
		for _, p := range providers {
			pub.Progress(ctx, ev(p, catalog.ReplicaCopying, done))
			positions++
		}
	}
	for i, p := range providers {
		e := ev(p, catalog.ReplicaVerified, b.Size)
		if i == len(providers)-1 {
			e.BackupStatus = catalog.StatusProtected
		}
		pub.Progress(ctx, e)
	}
	return positions
}

// cpuTime is the user and system CPU time this process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
