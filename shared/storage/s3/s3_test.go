package s3

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/wedsync/backup-replication/infra/emulator"
	"github.com/wedsync/backup-replication/shared/secret"
	"github.com/wedsync/backup-replication/shared/storage"
	"github.com/wedsync/backup-replication/shared/storage/storagetest"
)

// moto is the one moto_server the package's tests share; motoErr says why
// there is none.
var (
	moto    *emulator.Moto
	motoErr error
)

func TestMain(m *testing.M) {
	moto, motoErr = emulator.StartMoto(context.Background())
	code := m.Run()
	moto.Close()
	os.Exit(code)
}

// testConfig is a provider configuration for a new bucket on moto, with
// parts small enough that the 32 MiB and 100 MiB cases go by multipart.
//
// What moto 5.2.1 does and does not check, measured: it stores but never
// verifies x-amz-checksum-sha256 (PutObject, UploadPart) or
// x-amz-content-sha256, so the integrity cases here pass on the provider's
// own gate alone; it computes a SHA-256 for CopyObject with
// ChecksumAlgorithm; it reports a multipart object's composite checksum
// without AWS's "-N" suffix or ChecksumType (Stat tells by the ETag); and it
// ignores object lock headers on CreateMultipartUpload (ensureLock fixes).
func testConfig(t *testing.T) Config {
	t.Helper()
	emulator.Require(t, motoErr)
	cfg := Config{
		Name:               "s3",
		Bucket:             "test-" + randomHex(6),
		Region:             emulator.MotoRegion,
		Endpoint:           moto.URL,
		UsePathStyle:       true,
		AccessKeyID:        emulator.MotoAccessKeyID,
		SecretAccessKey:    secret.Secret(emulator.MotoSecretAccessKey),
		PartSize:           16 << 20,
		MultipartThreshold: 16 << 20,
		Concurrency:        2,
	}
	if _, err := newProvider(t, cfg).client.CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: aws.String(cfg.Bucket)}); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	return cfg
}

func newProvider(t *testing.T, cfg Config) *Provider {
	t.Helper()
	p, err := New(t.Context(), cfg, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p
}

func TestConformance(t *testing.T) {
	cfg := testConfig(t)
	p := newProvider(t, cfg)
	storagetest.Run(t, func(t *testing.T) storage.Provider { return p }, storagetest.Options{
		MaxHeapGrowth: 64 << 20, // two 16 MiB parts in flight, plus slack
		BadCredentials: func(t *testing.T) storage.Provider {
			bad := cfg
			bad.Endpoint = denyKeyProxy(t, moto.URL, "AKIDREVOKED")
			bad.AccessKeyID, bad.SecretAccessKey = "AKIDREVOKED", "wrong"
			return newProvider(t, bad)
		},
	})
	// Failed and cancelled multipart uploads were all aborted.
	out, err := p.client.ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: aws.String(cfg.Bucket)})
	if err != nil {
		t.Fatalf("ListMultipartUploads: %v", err)
	}
	for _, u := range out.Uploads {
		t.Errorf("multipart upload left behind: key %q id %s", aws.ToString(u.Key), aws.ToString(u.UploadId))
	}
}

// denyKeyProxy is a reverse proxy in front of target that answers 403
// InvalidAccessKeyId, as S3 does, to every request signed with accessKeyID
// (moto accepts any credentials). It reads the key from the SigV4
// Authorization header and passes every other request through.
func denyKeyProxy(t *testing.T, target, accessKeyID string) string {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(r.Header.Get("Authorization"), "Credential="+accessKeyID+"/") {
			proxy.ServeHTTP(w, r)
			return
		}
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusForbidden)
		if r.Method != http.MethodHead {
			fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>InvalidAccessKeyId</Code>`+
				`<Message>The AWS Access Key Id you provided does not exist in our records.</Message></Error>`)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
