package main

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/wedsync/backup-replication/infra/local/apiclient"
	"github.com/wedsync/backup-replication/infra/local/stack"
	"github.com/wedsync/backup-replication/shared/api"
	"github.com/wedsync/backup-replication/shared/catalog"
)

// providers are the replica providers, in the policy's order.
var providers = []string{"supabase", "s3", "gcs"}

// functionOf is each provider's replicate function.
var functionOf = map[string]string{"supabase": "ReplicateSupabaseFunction", "s3": "ReplicateS3Function", "gcs": "ReplicateGcsFunction"}

// config is one stack: the API, the seal function and the replicate
// functions of providers (which copy only sealed objects).
type config struct {
	name      string
	providers []string
	// onePut raises the API's multipart threshold so that every upload is
	// one PUT.
	onePut bool
	// noSeal is the pipeline without its seal step, the baseline of what
	// sealing costs: no seal function, the replicate functions copy the
	// plaintext upload (REPLICATE_REQUIRE_SEAL=false), and since the
	// template's rules send them sealed/ objects only, the benchmark puts
	// the upload's Object Created event on their queues itself as soon as
	// the upload completes (what a backups/ rule would do, minus
	// EventBridge's hop).
	noSeal bool
	// landed, when set, is called once an upload completes (noSeal).
	landed func(ctx context.Context, key string, size int64) error
}

// measure is one backup's figures, each from upload complete.
type measure struct {
	// BackupID is the backup measured.
	BackupID string
	// Sealed is when the seal step recorded the sealed object (the
	// backup's seal.sealedAt): the replicate functions start from there.
	Sealed time.Duration
	// Protected is when the backup became PROTECTED (fan-out only).
	Protected time.Duration
	// Verified is when each provider's copy was verified; Started when its
	// replicate run began (the event's trip through EventBridge and SQS).
	Verified, Started map[string]time.Duration
	// Upload is how long the upload itself took.
	Upload time.Duration
	// Wall is from upload complete until the wait saw the copies done
	// (within 100 ms), and CPU the CPU time every process of the stack
	// used meanwhile, by role.
	Wall time.Duration
	CPU  map[string]time.Duration
	// ReplWall and ReplCPU are the same from when the wait first saw the
	// seal recorded (within 100 ms): the replication alone.
	ReplWall time.Duration
	ReplCPU  map[string]time.Duration
	// Logs is what the seal and replicate functions logged about the
	// backup, by "seal" or provider.
	Logs map[string]*runLog
}

// afterSeal is from the seal's record to provider p's copy verified: the
// replication of the sealed object alone.
func (m measure) afterSeal(p string) time.Duration {
	return m.Verified[p] - m.Sealed
}

// startedAfterSeal is from the seal's record to provider p's replicate
// run claiming the copy.
func (m measure) startedAfterSeal(p string) time.Duration {
	return m.Started[p] - m.Sealed
}

// lastAfterSeal is from the seal's record to the last copy verified.
func (m measure) lastAfterSeal() time.Duration {
	return m.last() - m.Sealed
}

// last is when the last copy was verified.
func (m measure) last() time.Duration {
	var d time.Duration
	for _, v := range m.Verified {
		d = max(d, v)
	}
	return d
}

// runConfig starts a stack running cfg's functions and measures runs(size)
// backups of each size on it, one at a time. fresh starts its log file
// anew; otherwise the log is appended to (a later round).
func runConfig(ctx context.Context, root string, cfg config, sizes []int64, fresh bool, runs func(size int64) int) (map[int64][]measure, error) {
	fns := []string{"ApiFunction", "SealFunction"}
	if cfg.noSeal {
		fns = fns[:1]
	}
	for _, p := range cfg.providers {
		fns = append(fns, functionOf[p])
	}
	logPath := filepath.Join(root, "tests", "artifacts", "pipelinebench-"+strings.ReplaceAll(cfg.name, " ", "-")+".log")
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return nil, err
	}
	mode := os.O_CREATE | os.O_WRONLY | os.O_APPEND
	if fresh {
		mode |= os.O_TRUNC
	}
	logFile, err := os.OpenFile(logPath, mode, 0o644)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	logf("%s: starting a local stack (%s); function logs in %s", cfg.name, strings.Join(fns, ", "), logPath)
	opts := stack.Options{Root: root, StackName: "bench" + strings.ToLower(api.NewID(time.Now())[16:]),
		Functions: fns, ScheduleInterval: -1, Output: logFile}
	opts.FunctionEnv = map[string]map[string]string{}
	if cfg.onePut {
		opts.FunctionEnv["ApiFunction"] = map[string]string{"API_MULTIPART_THRESHOLD": "5GiB"}
	}
	if cfg.noSeal {
		for _, p := range cfg.providers {
			opts.FunctionEnv[functionOf[p]] = map[string]string{"REPLICATE_REQUIRE_SEAL": "false"}
		}
	}
	s, err := stack.Start(ctx, opts)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	if cfg.noSeal {
		cfg.landed = landedEvents(s, cfg.providers)
	}
	org := api.NewID(time.Now())
	c := apiclient.New(s.APIURL, stack.DevToken(org, 6*time.Hour))
	out := map[int64][]measure{}
	for _, size := range sizes {
		for i := range runs(size) {
			m, err := one(ctx, c, org, cfg, size, uint64(size)+uint64(i))
			if err != nil {
				return nil, fmt.Errorf("%s backup %d: %w", sizeText(size), i+1, err)
			}
			logf("%s: %s: sealed %s after upload, last copy verified %s after the seal (upload took %s)", cfg.name, sizeText(size),
				m.Sealed.Round(time.Millisecond), m.lastAfterSeal().Round(time.Millisecond), m.Upload.Round(time.Millisecond))
			out[size] = append(out[size], m)
		}
	}
	// Let the last outcome lines reach the log, then read what the
	// functions said about each backup.
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(2 * time.Second):
	}
	var ids []string
	for _, ms := range out {
		for _, m := range ms {
			ids = append(ids, m.BackupID)
		}
	}
	logs, err := readRunLogs(logPath, ids)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", logPath, err)
	}
	for _, ms := range out {
		for i := range ms {
			ms[i].Logs = logs[ms[i].BackupID]
		}
	}
	return out, nil
}

// one uploads a backup and waits until cfg's copies are verified.
func one(ctx context.Context, c *apiclient.Client, org string, cfg config, size int64, seed uint64) (measure, error) {
	data := pattern{seed: seed, size: size}
	sha, err := data.sha256()
	if err != nil {
		return measure{}, err
	}
	created, err := c.CreateBackup(ctx, api.CreateBackupRequest{OrganizationID: org, Name: fmt.Sprintf("bench-%d.bin", seed),
		Size: &size, SHA256: sha, ContentType: "application/octet-stream", IdempotencyKey: fmt.Sprintf("bench-%s-%d", org, seed)})
	if err != nil {
		return measure{}, fmt.Errorf("register: %w", err)
	}
	began := time.Now()
	if err := c.Upload(ctx, created.Upload, data, size); err != nil {
		return measure{}, fmt.Errorf("upload: %w", err)
	}
	landed := time.Now()
	if cfg.landed != nil {
		if err := cfg.landed(ctx, created.Backup.LandingKey, size); err != nil {
			return measure{}, fmt.Errorf("send the upload's event: %w", err)
		}
	}
	cpuBefore := sampleCPU()
	var cpuSealed cpuSample
	var sealSeen time.Time
	done := func(d api.BackupDetail) bool {
		if (d.Backup.Seal != nil || cfg.noSeal) && cpuSealed == nil {
			cpuSealed, sealSeen = sampleCPU(), time.Now()
		}
		if len(cfg.providers) == len(providers) {
			return d.Backup.Status == catalog.StatusProtected
		}
		for _, r := range d.Replicas {
			if r.Provider == cfg.providers[0] && r.State == catalog.ReplicaVerified {
				return true
			}
		}
		return false
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	d, err := c.Wait(wctx, created.Backup.ID, 100*time.Millisecond, done, nil)
	if err != nil {
		return measure{}, fmt.Errorf("wait: %w", err)
	}
	m := measure{BackupID: created.Backup.ID, Upload: landed.Sub(began), Verified: map[string]time.Duration{}, Started: map[string]time.Duration{},
		Wall: time.Since(landed), CPU: sampleCPU().since(cpuBefore)}
	if cpuSealed != nil {
		m.ReplWall, m.ReplCPU = time.Since(sealSeen), sampleCPU().since(cpuSealed)
	}
	switch {
	case cfg.noSeal && d.Backup.Seal != nil:
		return m, fmt.Errorf("sealed by a stack without a seal function")
	case cfg.noSeal:
		// The copies start from the upload itself: Sealed stays 0.
	case d.Backup.Seal == nil:
		return m, fmt.Errorf("copies verified but no seal recorded")
	default:
		m.Sealed = d.Backup.Seal.SealedAt.Sub(landed)
	}
	if p := d.Backup.ProtectedAt; p != nil {
		m.Protected = p.Sub(landed)
	}
	for _, r := range d.Replicas {
		if r.State != catalog.ReplicaVerified || r.VerifiedAt == nil {
			continue
		}
		m.Verified[r.Provider] = r.VerifiedAt.Sub(landed)
		if r.StartedAt != nil {
			m.Started[r.Provider] = r.StartedAt.Sub(landed)
		}
	}
	for _, p := range cfg.providers {
		if _, ok := m.Verified[p]; !ok {
			return m, fmt.Errorf("no verified %s copy", p)
		}
	}
	return m, nil
}

// pattern is size bytes of deterministic noise generated on demand (never
// held in memory); ReadAt serves any range.
type pattern struct {
	seed uint64
	size int64
}

const block = 64 << 10

// ReadAt implements io.ReaderAt.
func (p pattern) ReadAt(b []byte, off int64) (int, error) {
	buf := make([]byte, block)
	n := 0
	for n < len(b) && off < p.size {
		bi, bo := off/block, off%block
		var key [32]byte
		binary.LittleEndian.PutUint64(key[:], p.seed)
		binary.LittleEndian.PutUint64(key[8:], uint64(bi))
		rand.NewChaCha8(key).Read(buf)
		c := copy(b[n:], buf[bo:min(int64(block), p.size-bi*block)])
		n += c
		off += int64(c)
	}
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

func (p pattern) sha256() (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(p, 0, p.size)); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func sizeText(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d B", n)
}
