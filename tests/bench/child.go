package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/wedsync/backup-replication/shared/replicate"
	"github.com/wedsync/backup-replication/shared/secret"
	"github.com/wedsync/backup-replication/shared/storage"
	"github.com/wedsync/backup-replication/shared/storage/gcs"
	s3p "github.com/wedsync/backup-replication/shared/storage/s3"
	"github.com/wedsync/backup-replication/shared/storage/supabase"
)

// spec is what a child process does, sent on its standard input (so that
// no credential appears on a command line).
type spec struct {
	// Op is "put" (a local file, or the generated stream when File is
	// empty, into the destination), "copy" (the landing object by the
	// destination's storage.Copier) or "stream" (the landing object read
	// through replicate.Landing and written by the destination's Put).
	Op     string
	Key    string
	Size   int64
	SHA256 string
	File   string

	Landing    *s3Conf
	LandingKey string

	S3       *s3Conf
	GCS      *gcsConf
	Supabase *supaConf
	Seal     *sealConf // Op "seal" or "seal-cpu" (seal.go)
}

type s3Conf struct {
	Endpoint, Bucket, AccessKey, SecretKey string
	PartSize                               int64
	Concurrency                            int
}

type gcsConf struct {
	Endpoint, Bucket string
	ChunkSize        int
}

type supaConf struct {
	URL, Key, Bucket string
	TUSThreshold     int64
}

// childResult is what a child prints on stdout when it is done.
type childResult struct {
	Bytes       int64
	Seconds     float64
	BaselineRSS int64 // VmRSS after building clients, before the first byte
	Method      string
}

// runChild reads a spec from stdin, does it, and prints a childResult.
func runChild(ctx context.Context) error {
	var sp spec
	if err := json.NewDecoder(bufio.NewReader(os.Stdin)).Decode(&sp); err != nil {
		return fmt.Errorf("read spec: %w", err)
	}
	if sp.Seal != nil {
		return runSealChild(ctx, sp)
	}
	dst, err := sp.destination(ctx)
	if err != nil {
		return err
	}
	var landing *replicate.Landing
	if sp.Landing != nil {
		landing = replicate.NewLanding(sp.Landing.client(), sp.Landing.Bucket, sp.Landing.Endpoint)
	}
	var src *os.File
	if sp.Op == "put" && sp.File != "" {
		if src, err = os.Open(sp.File); err != nil {
			return err
		}
		defer src.Close()
	}
	runtime.GC()
	debug.FreeOSMemory()
	res := childResult{BaselineRSS: vmRSS(), Method: sp.Op}
	opts := storage.PutOptions{SHA256: sp.SHA256, ContentType: "application/octet-stream",
		Metadata: map[string]string{"backup-id": "bench"}}
	start := time.Now()
	var info storage.ObjectInfo
	switch sp.Op {
	case "put":
		var r io.Reader = src
		if src == nil {
			r = generated(sp.Size)
		}
		info, err = dst.Put(ctx, sp.Key, r, sp.Size, opts)
	case "copy", "stream":
		if landing == nil {
			return errors.New("copy and stream need a landing bucket")
		}
		var obj replicate.LandingObject
		if obj, err = landing.Head(ctx, sp.LandingKey); err != nil {
			return err
		}
		if sp.Op == "copy" {
			c, ok := storage.As[storage.Copier](dst)
			if !ok {
				return fmt.Errorf("%s cannot copy server-side", dst.Name())
			}
			info, err = c.Copy(ctx, landing.Locator(obj), sp.Key, opts)
			break
		}
		var rc io.ReadCloser
		if rc, err = landing.Source(obj).Open(ctx, 0); err != nil {
			return err
		}
		info, err = dst.Put(ctx, sp.Key, rc, obj.Size, opts)
		rc.Close()
	default:
		return fmt.Errorf("unknown op %q", sp.Op)
	}
	res.Seconds = time.Since(start).Seconds()
	if err != nil {
		return err
	}
	if info.Size != sp.Size {
		return fmt.Errorf("%s stored %d bytes, want %d", dst.Name(), info.Size, sp.Size)
	}
	res.Bytes = info.Size
	return json.NewEncoder(os.Stdout).Encode(res)
}

// destination builds the one provider the spec names.
func (sp spec) destination(ctx context.Context) (storage.Provider, error) {
	switch {
	case sp.S3 != nil:
		return sp.S3.provider(ctx, "s3")
	case sp.GCS != nil:
		return gcs.New(ctx, gcs.Config{Bucket: sp.GCS.Bucket, Endpoint: sp.GCS.Endpoint, ChunkSize: sp.GCS.ChunkSize}, nil)
	case sp.Supabase != nil:
		return supabase.New(supabase.Config{URL: sp.Supabase.URL, ServiceKey: secret.Secret(sp.Supabase.Key),
			Bucket: sp.Supabase.Bucket, TUSThreshold: sp.Supabase.TUSThreshold}, nil)
	}
	return nil, errors.New("the spec names no destination")
}

func (c *s3Conf) config(name string) s3p.Config {
	return s3p.Config{Name: name, Bucket: c.Bucket, Region: region, Endpoint: c.Endpoint,
		UsePathStyle: true, AccessKeyID: c.AccessKey, SecretAccessKey: secret.Secret(c.SecretKey),
		PartSize: c.PartSize, Concurrency: c.Concurrency}
}

func (c *s3Conf) provider(ctx context.Context, name string) (*s3p.Provider, error) {
	return s3p.New(ctx, c.config(name), nil)
}

// client is a bare S3 client with the provider's options, for reading the
// landing bucket the way the replicate function does.
func (c *s3Conf) client() *s3.Client {
	return s3.NewFromConfig(aws.Config{Region: region,
		Credentials: credentials.NewStaticCredentialsProvider(c.AccessKey, c.SecretKey, "")},
		s3p.ClientOptions(c.config("landing")))
}

// vmRSS is this process's resident set now, in bytes.
func vmRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kib, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kib << 10
		}
	}
	return 0
}
