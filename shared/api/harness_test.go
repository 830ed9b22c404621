package api_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/golang-jwt/jwt/v5"

	"github.com/wedsync/backup-replication/infra/emulator"
	"github.com/wedsync/backup-replication/shared/api"
	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/policy"
)

var (
	motoOnce sync.Once
	moto     *emulator.Moto
	motoErr  error
	seq      atomic.Int64
)

func TestMain(m *testing.M) {
	code := m.Run()
	if moto != nil {
		moto.Close()
	}
	os.Exit(code)
}

// startMoto starts (once per test binary) a moto server, or ends the test
// per emulator.Require.
func startMoto(t *testing.T) *emulator.Moto {
	t.Helper()
	motoOnce.Do(func() { moto, motoErr = emulator.StartMoto(context.Background()) })
	emulator.Require(t, motoErr)
	return moto
}

const (
	testIssuer   = "https://example.supabase.co/auth/v1"
	testAudience = "authenticated"
)

var testSecret = []byte("test-secret-that-is-at-least-32-bytes-long")

// env is one API instance on its own tables and landing bucket.
type env struct {
	t       *testing.T
	srv     *httptest.Server
	h       *api.Handler
	store   *catalog.Dynamo
	s3      *s3.Client
	landing string // landing bucket
	deps    api.Deps
	logs    *bytes.Buffer
}

// newEnv builds an API on moto. mod may adjust config and deps (after the
// store, landing and auth are set) before the handler is built.
func newEnv(t *testing.T, mod func(*api.Config, *api.Deps)) *env {
	t.Helper()
	m := startMoto(t)
	awsCfg, err := m.AWSConfig(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	n := seq.Add(1)
	db := dynamodb.NewFromConfig(awsCfg)
	names := catalog.Config{BackupsTable: fmt.Sprintf("api-backups-%d", n), ReplicasTable: fmt.Sprintf("api-replicas-%d", n)}
	if err := catalog.EnsureTables(t.Context(), db, names); err != nil {
		t.Fatal(err)
	}
	store, err := catalog.NewDynamo(db, names)
	if err != nil {
		t.Fatal(err)
	}
	s3c := s3.NewFromConfig(awsCfg, func(o *s3.Options) { o.UsePathStyle = true })
	bucket := fmt.Sprintf("api-landing-%d", n)
	if _, err := s3c.CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	auth, err := api.NewJWTAuthenticator(api.JWTConfig{Secret: testSecret, Issuer: testIssuer, Audience: testAudience})
	if err != nil {
		t.Fatal(err)
	}
	logs := &bytes.Buffer{}
	cfg := api.Config{}
	deps := api.Deps{
		Store: store, Landing: api.NewS3Landing(s3c, bucket), Auth: auth, Policy: policy.DefaultTable(),
		Logger: slog.New(slog.NewJSONHandler(&lockedWriter{w: logs}, nil)),
	}
	if mod != nil {
		mod(&cfg, &deps)
	}
	h, err := api.New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, srv: httptest.NewServer(h), h: h, store: store, s3: s3c, landing: bucket, deps: deps, logs: logs}
	t.Cleanup(e.srv.Close)
	return e
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// token signs a JWT for org with the test secret; mod may change claims.
func token(t testing.TB, org string, mod func(jwt.MapClaims)) string {
	t.Helper()
	c := jwt.MapClaims{
		"iss": testIssuer, "aud": testAudience, "sub": "user-" + org,
		"exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix(),
		"app_metadata": map[string]any{"org_id": org},
	}
	if mod != nil {
		mod(c)
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// reply is a decoded API answer.
type reply struct {
	Status int
	Body   []byte
}

// code returns the error code of an error reply.
func (r reply) code() string {
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	json.Unmarshal(r.Body, &e)
	return e.Error.Code
}

func (r reply) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
}

// call sends a request as org (no Authorization header when org is "");
// body is JSON-encoded unless it is a string or []byte.
func (e *env) call(method, path, org string, body any) reply {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(e.t.Context(), method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if org != "" {
		req.Header.Set("Authorization", "Bearer "+token(e.t, org, nil))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") && !strings.HasPrefix(ct, "text/html") {
		e.t.Errorf("%s %s: Content-Type %q, body %s", method, path, ct, b)
	}
	return reply{resp.StatusCode, b}
}

// createReq is a valid create request for org with the given bytes.
func createReq(org, name string, data []byte) map[string]any {
	sum := sha256.Sum256(data)
	return map[string]any{
		"organizationId": org, "name": name, "size": len(data), "sha256": hex.EncodeToString(sum[:]),
		"contentType": "application/zip", "idempotencyKey": "key-" + name,
	}
}

// create registers a backup and returns the answer, failing unless wantStatus.
func (e *env) create(org string, req map[string]any, wantStatus int) api.BackupResponse {
	e.t.Helper()
	r := e.call("POST", "/backups", org, req)
	if r.Status != wantStatus {
		e.t.Fatalf("POST /backups: %d %s, want %d", r.Status, r.Body, wantStatus)
	}
	var out api.BackupResponse
	r.decode(e.t, &out)
	return out
}

// put sends data to a presigned request, as a client would.
func put(t testing.TB, method, url string, headers map[string]string, data []byte) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		if k != "Content-Length" {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// landed reads the landing object of b, or returns ok=false when absent.
func (e *env) landed(key string) ([]byte, bool) {
	e.t.Helper()
	out, err := e.s3.GetObject(e.t.Context(), &s3.GetObjectInput{Bucket: aws.String(e.landing), Key: aws.String(key)})
	if err != nil {
		return nil, false
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return b, true
}
