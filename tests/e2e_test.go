package tests

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/wedsync/backup-replication/infra/local/apiclient"
	"github.com/wedsync/backup-replication/infra/local/stack"
	"github.com/wedsync/backup-replication/shared/api"
	"github.com/wedsync/backup-replication/shared/catalog"
)

// e2eRun is one end-to-end scenario on the shared stack: backups of the
// given sizes uploaded through the HTTP API, Concurrency at a time, each
// awaited until PROTECTED within Timeout of its start, then every copy
// read back from every provider.
type e2eRun struct {
	Sizes       []int64
	Concurrency int
	Timeout     time.Duration
}

// mixedSizes are 50 backups from 0 B to 200 MiB, about 620 MiB in all:
// mostly small, a few across the API's 16 MiB multipart threshold (the
// shared stack's) and the replicate functions' 32 MiB resumable-upload
// threshold, and three large ones. The CI machine has 2 cores and the
// GCS emulator is slow, so the total stays moderate.
func mixedSizes() []int64 {
	sizes := []int64{0, 1}
	for i := range int64(23) { // 1 KiB … ~0.7 MiB
		sizes = append(sizes, 1<<10+i*i*1499)
	}
	for i := range int64(15) { // 1 MiB … 8 MiB, odd lengths
		sizes = append(sizes, 1<<20+i*(1<<19)+7*i)
	}
	sizes = append(sizes, 12<<20, 16<<20, 16<<20+1, 20<<20+12345, 28<<20, 40<<20, 64<<20-3) // single PUT up to 16 MiB, parts above
	return append(sizes, 50<<20, 100<<20+7, 200<<20)
}

// TestEndToEndMixedSizes: 50 backups from 0 B to 200 MiB reach PROTECTED;
// every copy on every provider, and the sealed object in the landing
// bucket, is the ciphertext the seal recorded (its SHA-256 and size), not
// the upload and without the plaintext marker; one copy of each, decrypted
// with the backup's data key, gives back the declared size and SHA-256;
// and no plaintext upload is left in the landing bucket.
func TestEndToEndMixedSizes(t *testing.T) {
	t.Parallel()
	runE2E(t, e2eRun{Sizes: mixedSizes(), Concurrency: 4, Timeout: 20 * time.Minute})
}

// runE2E plays the scenario on the shared stack.
func runE2E(t *testing.T, run e2eRun) {
	s := sharedStack(t)
	org := api.NewID(time.Now())
	c := apiclient.New(s.APIURL, stack.DevToken(org, time.Hour))

	type result struct {
		size      int64
		sha       string
		detail    api.BackupDetail
		err       error
		protected time.Duration // from upload complete to PROTECTED
	}
	results := make([]result, len(run.Sizes))
	var multipart atomic.Int32
	sem := make(chan struct{}, max(1, run.Concurrency))
	var wg sync.WaitGroup
	begin := time.Now()
	var total int64
	for i, size := range run.Sizes {
		total += size
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), run.Timeout)
			defer cancel()
			data := patternData{seed: uint64(i + 1), size: size}
			sha := data.sha256()
			var landed time.Time
			d, parts, err := uploadAndWait(ctx, c, org, fmt.Sprintf("backup-%d-of-%d-bytes.bin", i, size), data, sha, &landed,
				s.redeliverLost(t.Logf, apiclient.Protected))
			if parts > 0 {
				multipart.Add(1)
			}
			results[i] = result{size: size, sha: sha, detail: d, err: err, protected: time.Since(landed)}
		}()
	}
	wg.Wait()
	wall := time.Since(begin)
	var worst time.Duration
	for _, r := range results {
		if r.err == nil {
			worst = max(worst, r.protected)
		}
	}
	t.Logf("SUMMARY %d backups, %d MiB, %d uploaded in parts: all settled in %s (slowest upload-complete→PROTECTED %s)",
		len(run.Sizes), total>>20, multipart.Load(), wall.Round(time.Second), worst.Round(time.Second))

	ctx, cancel := context.WithTimeout(context.Background(), run.Timeout)
	defer cancel()
	readStart := time.Now()
	var mu sync.Mutex
	for i, r := range results {
		name := fmt.Sprintf("backup %d (%d bytes)", i, r.size)
		if r.err != nil {
			t.Errorf("%s: %v (last status %s, replicas %s)", name, r.err, r.detail.Backup.Status, replicaSummary(r.detail))
			continue
		}
		b := r.detail.Backup
		if b.SHA256 != r.sha || b.Size != r.size {
			t.Errorf("%s: record says %d bytes sha256 %s, uploaded %d bytes %s", name, b.Size, b.SHA256, r.size, r.sha)
		}
		seen := map[string]bool{}
		for _, rep := range r.detail.Replicas {
			if rep.State == catalog.ReplicaVerified {
				seen[rep.Provider] = true
			}
		}
		for _, p := range []string{"supabase", "s3", "gcs"} {
			if !seen[p] {
				t.Errorf("%s is PROTECTED without a verified copy on %s: %s", name, p, replicaSummary(r.detail))
			}
		}
		if err := s.plaintextGone(ctx, b); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if b.Seal == nil {
			t.Errorf("%s is PROTECTED without a seal", name)
			continue
		}
		// Every verified copy, and the sealed object every copy came from,
		// read straight from its emulator (four at a time); one provider's
		// copy of each backup, in turn, is decrypted too.
		copies := map[string]string{"landing": b.Seal.Key}
		for _, rep := range r.detail.Replicas {
			if rep.State == catalog.ReplicaVerified {
				copies[rep.Provider] = rep.Key
				if rep.VerifiedSHA256 != b.Seal.CipherSHA256 {
					t.Errorf("%s: the %s copy was verified as %s, the seal records %s", name, rep.Provider, rep.VerifiedSHA256, b.Seal.CipherSHA256)
				}
			}
		}
		decrypt := []string{"supabase", "s3", "gcs"}[i%3]
		for where, key := range copies {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				err := s.checkSealedCopy(ctx, where, key, b, r.sha, where == decrypt)
				if err != nil {
					mu.Lock()
					t.Errorf("%s: %v", name, err)
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	t.Logf("every copy read back and hashed in %s", time.Since(readStart).Round(time.Second))
	s.requireNoCrash(t)
}

// uploadAndWait registers a backup, uploads its bytes and waits until
// protected accepts it (apiclient.Protected, perhaps wrapped).
// It returns the number of parts of a multipart upload (0: one PUT), and
// sets *landed, when not nil, to when the upload completed.
func uploadAndWait(ctx context.Context, c *apiclient.Client, org, name string, data patternData, sha string, landed *time.Time,
	protected func(api.BackupDetail) bool) (api.BackupDetail, int32, error) {
	size := data.size
	created, err := c.CreateBackup(ctx, api.CreateBackupRequest{
		OrganizationID: org, Name: name, Size: &size, SHA256: sha, ContentType: "application/octet-stream",
		IdempotencyKey: "e2e-" + sha[:32],
	})
	if err != nil {
		return api.BackupDetail{}, 0, fmt.Errorf("POST /backups: %w", err)
	}
	var parts int32
	if mp := created.Upload.Multipart; mp != nil {
		parts = mp.PartCount
	}
	if err := c.Upload(ctx, created.Upload, data, size); err != nil {
		return api.BackupDetail{}, parts, fmt.Errorf("upload: %w", err)
	}
	if landed != nil {
		*landed = time.Now()
	}
	d, err := c.Wait(ctx, created.Backup.ID, 250*time.Millisecond, protected, nil)
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("not PROTECTED in time: %w", err)
	}
	return d, parts, err
}

func replicaSummary(d api.BackupDetail) string {
	var parts []string
	for _, r := range d.Replicas {
		s := r.Provider + "=" + string(r.State)
		if r.LastError != "" {
			s += " (" + r.LastError + ")"
		}
		parts = append(parts, s)
	}
	if d.Policy.Reason != "" {
		parts = append(parts, "policy: "+d.Policy.Reason)
	}
	return strings.Join(parts, ", ")
}

// copyReader streams an object of one provider and returns its SHA-256
// and length. The readers talk to the emulators directly, not through the
// code under test.
type copyReader func(ctx context.Context, key string) (sha string, n int64, err error)

// copyReaders hashes what copyOpeners stream.
func copyReaders(open map[string]copyOpener) map[string]copyReader {
	out := map[string]copyReader{}
	for where, o := range open {
		out[where] = func(ctx context.Context, key string) (string, int64, error) {
			rc, err := o(ctx, key)
			if err != nil {
				return "", 0, err
			}
			defer rc.Close()
			return hashStream(rc)
		}
	}
	return out
}

// copyOpeners stream an object straight from each place's emulator, by
// provider name, "s3-standby" and "landing".
func copyOpeners(s *stack.Stack) map[string]copyOpener {
	s3c := s3.NewFromConfig(s.AWS, func(o *s3.Options) { o.UsePathStyle = true })
	fromS3 := func(bucket string) copyOpener {
		return func(ctx context.Context, key string) (io.ReadCloser, error) {
			out, err := s3c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
			if err != nil {
				return nil, err
			}
			return out.Body, nil
		}
	}
	get := func(ctx context.Context, u string, header http.Header) (io.ReadCloser, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, err
		}
		req.Header = header
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			resp.Body.Close()
			return nil, fmt.Errorf("GET %s: HTTP %d %s", u, resp.StatusCode, b)
		}
		return resp.Body, nil
	}
	return map[string]copyOpener{
		"landing":    fromS3(s.Buckets.Landing),
		"s3":         fromS3(s.Buckets.S3),
		"s3-standby": fromS3(s.Buckets.Standby),
		"gcs": func(ctx context.Context, key string) (io.ReadCloser, error) {
			return get(ctx, s.GCS.URL+"/download/storage/v1/b/"+s.Buckets.GCS+"/o/"+url.PathEscape(key)+"?alt=media", http.Header{})
		},
		"supabase": func(ctx context.Context, key string) (io.ReadCloser, error) {
			h := http.Header{"Authorization": {"Bearer " + s.Supabase.ServiceKey}, "Apikey": {s.Supabase.ServiceKey}}
			return get(ctx, s.Supabase.URL+"/storage/v1/object/authenticated/"+s.Buckets.Supabase+"/"+key, h)
		},
	}
}

func hashStream(r io.Reader) (string, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	return hex.EncodeToString(h.Sum(nil)), n, err
}

// patternData is size bytes of deterministic noise generated on demand,
// so large backups never sit in memory; ReadAt serves any range. Every
// 64 KiB block starts with plaintextMarker.
type patternData struct {
	seed uint64
	size int64
}

const patternBlock = 64 << 10

func (p patternData) block(i int64, buf []byte) {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], p.seed)
	binary.LittleEndian.PutUint64(key[8:], uint64(i))
	rand.NewChaCha8(key).Read(buf)
	copy(buf, plaintextMarker) // what no provider copy may contain
}

// ReadAt implements io.ReaderAt.
func (p patternData) ReadAt(b []byte, off int64) (int, error) {
	if off >= p.size {
		return 0, io.EOF
	}
	buf := make([]byte, patternBlock)
	n := 0
	for n < len(b) && off < p.size {
		bi, bo := off/patternBlock, off%patternBlock
		p.block(bi, buf)
		c := copy(b[n:], buf[bo:min(int64(patternBlock), p.size-bi*patternBlock)])
		n += c
		off += int64(c)
	}
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

func (p patternData) sha256() string {
	sha, _, _ := hashStream(io.NewSectionReader(p, 0, p.size))
	return sha
}
