package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/wedsync/backup-replication/infra/supaemu"
	s3p "github.com/wedsync/backup-replication/shared/storage/s3"
)

// Names every run uses. The landing key has the production shape.
const (
	region        = "us-east-1"
	landingBucket = "landing"
	replicaBucket = "replica"
	gcsBucket     = "offsite"
	supaBucket    = "primary"
	landingKey    = "backups/org-bench/backup-bench"
)

// benchEnv is the running benchmark: its temporary directory, the tools, the
// long-lived servers (versitygw, the Supabase emulator) and the object.
type benchEnv struct {
	dir     string
	root    string // the module's root
	self    string // this binary, re-executed for measured children
	t       tools
	logf    func(string, ...any)
	ak, sk  string // throwaway versitygw root credentials for this run
	vgw     *server
	supa    *server
	supaKey string
	s3      *s3.Client // the bench's own, for buckets and clean-up
	seal    sealSetup  // moto, started by the first seal row (seal.go)

	file   string // the object on disk
	size   int64
	sha256 string
}

// setup installs what is missing, writes the object, starts versitygw and
// the Supabase emulator and creates their buckets.
func setup(ctx context.Context, root string, size int64, logf func(string, ...any)) (*benchEnv, error) {
	dir, err := os.MkdirTemp("", "ws191-bench-")
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	e := &benchEnv{dir: dir, root: root, self: self, logf: logf, size: size,
		ak: "bench" + randHex(6), sk: randHex(20)}
	if err := e.start(ctx); err != nil {
		e.close()
		return nil, err
	}
	return e, nil
}

func (e *benchEnv) start(ctx context.Context) error {
	var err error
	if e.t, err = ensureTools(ctx, e.root, e.dir, e.logf); err != nil {
		return err
	}
	e.logf("writing the %s object", sizeName(e.size))
	e.file = filepath.Join(e.dir, "object.bin")
	if e.sha256, err = writeObject(e.file, e.size); err != nil {
		return err
	}
	if err := e.startVersity(ctx); err != nil {
		return err
	}
	return e.startSupabase(ctx)
}

func (e *benchEnv) startVersity(ctx context.Context) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	root := filepath.Join(e.dir, "versitygw")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	e.vgw, err = startServer(ctx, "versitygw",
		[]string{e.t.versitygw, "--port", fmt.Sprintf("127.0.0.1:%d", port), "--quiet", "posix", root},
		childEnv("ROOT_ACCESS_KEY_ID="+e.ak, "ROOT_SECRET_ACCESS_KEY="+e.sk), url, "/")
	if err != nil {
		return err
	}
	e.s3 = s3.NewFromConfig(aws.Config{Region: region,
		Credentials: credentials.NewStaticCredentialsProvider(e.ak, e.sk, "")},
		s3p.ClientOptions(s3p.Config{Region: region, Endpoint: url, UsePathStyle: true}))
	for _, b := range []string{landingBucket, replicaBucket} {
		if _, err := e.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(b)}); err != nil {
			return fmt.Errorf("versitygw: create bucket %s: %w", b, err)
		}
	}
	return nil
}

func (e *benchEnv) startSupabase(ctx context.Context) error {
	secret := randHex(32)
	var err error
	e.supa, err = startServer(ctx, "supaemu",
		[]string{e.t.supaemu, "-dir", filepath.Join(e.dir, "supaemu-data")},
		childEnv("SUPAEMU_JWT_SECRET="+secret), "", "")
	if err != nil {
		return err
	}
	e.supaKey = supaemu.SignKey(secret, supaemu.ServiceRole, 24*time.Hour)
	body, _ := json.Marshal(map[string]any{"id": supaBucket, "name": supaBucket, "public": false})
	return e.supaCall(ctx, http.MethodPost, "/storage/v1/bucket", body)
}

// supaCall makes one JSON call to the Supabase emulator as the service role.
func (e *benchEnv) supaCall(ctx context.Context, method, path string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, method, e.supa.url+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+e.supaKey)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("supaemu %s %s: HTTP %d", method, path, res.StatusCode)
	}
	return nil
}

// startFakeGCS starts a fresh fake-gcs-server (in-memory backend) with the
// offsite bucket. Each GCS measurement gets its own, so that the memory one
// upload leaves behind never weighs on the next.
func (e *benchEnv) startFakeGCS(ctx context.Context) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	s, err := startServer(ctx, "fake-gcs-server", []string{e.t.fakeGCS, "-scheme", "http", "-backend", "memory",
		"-host", "127.0.0.1", "-port", strconv.Itoa(port), "-log-level", "error",
		"-external-url", url, "-public-host", fmt.Sprintf("127.0.0.1:%d", port)}, childEnv(), url, "/storage/v1/b")
	if err != nil {
		return nil, err
	}
	body, _ := json.Marshal(map[string]string{"name": gcsBucket})
	res, err := http.Post(url+"/storage/v1/b", "application/json", bytes.NewReader(body))
	if err == nil {
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			err = fmt.Errorf("HTTP %d", res.StatusCode)
		}
	}
	if err != nil {
		s.stop()
		return nil, fmt.Errorf("fake-gcs-server: create bucket: %w", err)
	}
	return s, nil
}

// startGCSSink starts the discarding GCS sink (this binary, -serve gcs-sink).
func (e *benchEnv) startGCSSink(ctx context.Context) (*server, error) {
	return startServer(ctx, "gcs-sink", []string{e.self, "-serve", "gcs-sink"}, childEnv(), "", "")
}

// deleteS3 removes a replica object; failures only cost disk space.
func (e *benchEnv) deleteS3(ctx context.Context, key string) {
	e.s3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(replicaBucket), Key: aws.String(key)})
}

// deleteSupabase removes an object from the emulator's bucket.
func (e *benchEnv) deleteSupabase(ctx context.Context, key string) {
	body, _ := json.Marshal(map[string][]string{"prefixes": {key}})
	e.supaCall(ctx, http.MethodDelete, "/storage/v1/object/"+supaBucket, body)
}

// close stops the servers and removes the temporary directory.
func (e *benchEnv) close() {
	for _, s := range []*server{e.vgw, e.supa} {
		if s != nil {
			s.stop()
		}
	}
	if e.seal.moto != nil {
		e.seal.moto.Close()
	}
	os.RemoveAll(e.dir)
}

// landing is the landing bucket as a child sees it.
func (e *benchEnv) landing() *s3Conf {
	return &s3Conf{Endpoint: e.vgw.url, Bucket: landingBucket, AccessKey: e.ak, SecretKey: e.sk}
}

// replica is the second versitygw bucket, the S3 destination.
func (e *benchEnv) replica(partSize int64, conc int) *s3Conf {
	return &s3Conf{Endpoint: e.vgw.url, Bucket: replicaBucket, AccessKey: e.ak, SecretKey: e.sk,
		PartSize: partSize, Concurrency: conc}
}

// findRoot walks up from the working directory to the module's go.mod.
func findRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run the bench from inside the module (go run ./tests/bench)")
		}
		dir = parent
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
