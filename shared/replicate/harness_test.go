package replicate

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/wedsync/backup-replication/infra/emulator"
	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/metrics"
	"github.com/wedsync/backup-replication/shared/policy"
	"github.com/wedsync/backup-replication/shared/secret"
	"github.com/wedsync/backup-replication/shared/storage"
	"github.com/wedsync/backup-replication/shared/storage/gcs"
	s3p "github.com/wedsync/backup-replication/shared/storage/s3"
)

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

// testTable is a 3-2-1 table over the providers a test can run: two S3
// buckets on moto (distinct failure domains), fake-gcs-server, and a
// standby S3 bucket in the same domain as "s3".
var testTable = policy.Table{Providers: []policy.Provider{
	{Name: "s3", Role: policy.RoleSecondary, Cloud: "aws", Domain: "replica", Order: 2},
	{Name: "s3-copy", Role: policy.RolePrimary, Cloud: "aws", Domain: "other-account", Order: 1},
	{Name: "gcs", Role: policy.RoleOffsite, Cloud: "gcp", Domain: "proj", Order: 3},
	{Name: "s3-standby", Role: policy.RoleStandby, Cloud: "aws", Domain: "replica", Order: 4},
}}

// lockedBuffer collects log or metric lines from concurrent writers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) lines() []map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.buf.String()), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// recorder is a Publisher that keeps what it is given.
type recorder struct {
	mu  sync.Mutex
	evs []ProgressEvent
}

func (r *recorder) Progress(_ context.Context, ev ProgressEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evs = append(r.evs, ev)
}

func (r *recorder) states() []catalog.ReplicaState {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []catalog.ReplicaState
	for _, ev := range r.evs {
		if len(out) == 0 || out[len(out)-1] != ev.State {
			out = append(out, ev.State)
		}
	}
	return out
}

// env is one test's world: a landing bucket, the catalog tables, and
// replica buckets, all on the shared moto server.
type env struct {
	t       *testing.T
	s3      *s3.Client
	store   *catalog.Dynamo
	landing string
	id      string // suffix of this test's bucket names
	logs    *lockedBuffer
	emf     *lockedBuffer
	gcs     *emulator.GCS
}

func newEnv(t *testing.T) *env {
	t.Helper()
	emulator.Require(t, motoErr)
	ctx := t.Context()
	cfg, err := moto.AWSConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	id := randomHex(4)
	e := &env{t: t, id: id, logs: &lockedBuffer{}, emf: &lockedBuffer{}, landing: "landing-" + id}
	e.s3 = s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
	if _, err := e.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(e.landing)}); err != nil {
		t.Fatal(err)
	}
	names := catalog.Config{BackupsTable: "backups-" + randomHex(4), ReplicasTable: "replicas-" + randomHex(4)}
	db := dynamodb.NewFromConfig(cfg)
	if err := catalog.EnsureTables(ctx, db, names); err != nil {
		t.Fatal(err)
	}
	if e.store, err = catalog.NewDynamo(db, names); err != nil {
		t.Fatal(err)
	}
	return e
}

// bucket creates this test's replica bucket called name.
func (e *env) bucket(name string) {
	e.t.Helper()
	if _, err := e.s3.CreateBucket(e.t.Context(), &s3.CreateBucketInput{Bucket: aws.String(e.real(name))}); err != nil {
		e.t.Fatalf("create bucket %s: %v", name, err)
	}
}

// s3Provider is the real S3 provider on a moto bucket. endpoint decides
// whether it can copy from the landing bucket server-side: the landing
// reader names moto.URL, so any other spelling of the same server makes
// the provider stream.
func (e *env) s3Provider(name, bucket, endpoint string) storage.Provider {
	e.t.Helper()
	p, err := s3p.New(e.t.Context(), s3p.Config{Name: name, Bucket: e.real(bucket), Region: emulator.MotoRegion,
		Endpoint: endpoint, UsePathStyle: true, AccessKeyID: emulator.MotoAccessKeyID,
		SecretAccessKey: secret.Secret(emulator.MotoSecretAccessKey)}, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

// real is the moto bucket behind this test's bucket name.
func (e *env) real(name string) string { return name + "-" + e.id }

// streamingS3 is an S3 provider that has to stream: same server, another
// spelling of its address.
func (e *env) streamingS3(bucket string) storage.Provider {
	return e.s3Provider("s3", bucket, strings.Replace(moto.URL, "127.0.0.1", "localhost", 1))
}

func (e *env) gcsProvider() storage.Provider {
	e.t.Helper()
	if e.gcs == nil {
		g, err := emulator.StartGCS()
		emulator.Require(e.t, err)
		e.t.Cleanup(func() { g.Close() })
		if err := g.CreateBucket("offsite"); err != nil {
			e.t.Fatal(err)
		}
		e.gcs = g
	}
	p, err := gcs.New(e.t.Context(), gcs.Config{Name: "gcs", Bucket: "offsite", Endpoint: e.gcs.URL}, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

// handler builds the handler for p; gate may be nil.
func (e *env) handler(p storage.Provider, progress Publisher, gate Gate) *Handler {
	e.t.Helper()
	return e.handlerWith(p, nil, func(d *Deps) { d.Progress, d.Gate = progress, gate })
}

// handlerWith builds the handler for p, letting cfg and deps adjust it.
func (e *env) handlerWith(p storage.Provider, cfg func(*Config), deps func(*Deps)) *Handler {
	e.t.Helper()
	log := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c := Config{Provider: p.Name(), LandingBucket: e.landing}
	d := Deps{Provider: p, Landing: NewLanding(e.s3, e.landing, moto.URL), Store: e.store, Policy: testTable,
		Logger: log, Metrics: metrics.NewEMF(e.emf)}
	if cfg != nil {
		cfg(&c)
	}
	if deps != nil {
		deps(&d)
	}
	h, err := New(c, d)
	if err != nil {
		e.t.Fatal(err)
	}
	return h
}

// upload registers a backup declaring declared (the bytes' own SHA-256 when
// empty) and lands data in the landing bucket.
func (e *env) upload(data []byte, declared string) catalog.Backup {
	e.t.Helper()
	if declared == "" {
		declared = sum(data)
	}
	org, id := "org-"+randomHex(3), "B"+randomHex(8)
	b, _, err := e.store.CreateBackup(e.t.Context(), catalog.Backup{ID: id, OrganizationID: org,
		Name: "Smith & Jones wedding.zip", Size: int64(len(data)), SHA256: declared, ContentType: "application/zip",
		LandingKey: "backups/" + org + "/" + id})
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.s3.PutObject(e.t.Context(), &s3.PutObjectInput{Bucket: aws.String(e.landing), Key: aws.String(b.LandingKey),
		Body: bytes.NewReader(data)}); err != nil {
		e.t.Fatal(err)
	}
	return b
}

// message is the SQS record EventBridge would deliver for b's landing.
func (e *env) message(b catalog.Backup, receive int) events.SQSMessage {
	body := fmt.Sprintf(`{"version":"0","id":"%s","detail-type":"Object Created","source":"aws.s3","account":"123456789012",
"time":"2026-06-01T12:00:00Z","region":"us-east-1","resources":["arn:aws:s3:::%s"],
"detail":{"version":"0","bucket":{"name":"%s"},"object":{"key":"%s","size":%d,"etag":"abc","sequencer":"00"},
"request-id":"R","requester":"123456789012","reason":"PutObject"}}`, randomHex(8), e.landing, e.landing, b.LandingKey, b.Size)
	return events.SQSMessage{MessageId: "m-" + randomHex(4), Body: body,
		Attributes: map[string]string{"ApproximateReceiveCount": fmt.Sprint(receive)}}
}

// handle runs one batch and returns the ids of the failed items.
func handle(t *testing.T, h *Handler, msgs ...events.SQSMessage) []string {
	t.Helper()
	resp, err := h.Handle(t.Context(), events.SQSEvent{Records: msgs})
	if err != nil {
		t.Fatalf("Handle returned an error: %v", err)
	}
	var ids []string
	for _, f := range resp.BatchItemFailures {
		ids = append(ids, f.ItemIdentifier)
	}
	return ids
}

func (e *env) replica(b catalog.Backup, provider string) catalog.Replica {
	e.t.Helper()
	r, err := e.store.GetReplica(e.t.Context(), b.ID, provider)
	if err != nil {
		e.t.Fatalf("replica %s: %v", provider, err)
	}
	return r
}

func (e *env) backup(id string) catalog.Backup {
	e.t.Helper()
	b, err := e.store.GetBackup(e.t.Context(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

// readAll reads key from p and returns its SHA-256, or "" when missing.
func readSum(t *testing.T, p storage.Provider, key string) string {
	t.Helper()
	rc, err := p.Get(t.Context(), key, 0, -1)
	if err != nil {
		return ""
	}
	defer rc.Close()
	h := sha256.New()
	var buf bytes.Buffer
	buf.ReadFrom(rc)
	h.Write(buf.Bytes())
	return hex.EncodeToString(h.Sum(nil))
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}
