package sealer_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/wedsync/backup-replication/infra/emulator"
	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/keys"
	"github.com/wedsync/backup-replication/shared/seal"
	"github.com/wedsync/backup-replication/shared/sealer"
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

// marker is in every test upload: no sealed object may contain it.
const marker = "WS191-PLAINTEXT-MARKER: Smith & Jones guest list"

// world is one test's landing bucket, catalog, keys table and KMS key on
// a shared moto server.
type world struct {
	t      *testing.T
	ctx    context.Context
	s3     *s3.Client
	store  *catalog.Dynamo
	keys   *keys.Store
	bucket string
	logs   *bytes.Buffer
	logMu  sync.Mutex
	msgSeq atomic.Int64
}

// eventMsg is one SQS message of a batch.
type eventMsg = events.SQSMessage

// keyForms are the ways key bytes could show up in text.
func keyForms(k []byte) []string {
	return []string{string(k), hex.EncodeToString(k), strings.ToUpper(hex.EncodeToString(k)),
		base64.StdEncoding.EncodeToString(k), base64.RawStdEncoding.EncodeToString(k),
		base64.URLEncoding.EncodeToString(k), fmt.Sprint(k)}
}

func newWorld(t *testing.T) *world {
	t.Helper()
	motoOnce.Do(func() { moto, motoErr = emulator.StartMoto(context.Background()) })
	emulator.Require(t, motoErr)
	cfg, err := moto.AWSConfig(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	n := seq.Add(1)
	w := &world{t: t, ctx: t.Context(), bucket: fmt.Sprintf("landing-%d", n), logs: &bytes.Buffer{}}
	w.s3 = s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
	if _, err := w.s3.CreateBucket(w.ctx, &s3.CreateBucketInput{Bucket: aws.String(w.bucket)}); err != nil {
		t.Fatal(err)
	}
	db := dynamodb.NewFromConfig(cfg)
	names := catalog.Config{BackupsTable: fmt.Sprintf("backups-%d", n), ReplicasTable: fmt.Sprintf("replicas-%d", n)}
	if err := catalog.EnsureTables(w.ctx, db, names); err != nil {
		t.Fatal(err)
	}
	if w.store, err = catalog.NewDynamo(db, names); err != nil {
		t.Fatal(err)
	}
	km := kms.NewFromConfig(cfg)
	key, err := km.CreateKey(w.ctx, &kms.CreateKeyInput{Description: aws.String("organisations' default key")})
	if err != nil {
		t.Fatal(err)
	}
	table := fmt.Sprintf("keys-%d", n)
	if err := keys.EnsureTable(w.ctx, db, table); err != nil {
		t.Fatal(err)
	}
	w.keys, err = keys.New(keys.Config{Table: table, DefaultKeyID: aws.ToString(key.KeyMetadata.Arn),
		AliasPrefix: fmt.Sprintf("alias/sealer-test-%d/org/", n)}, km, db)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// Write collects the handler's log lines.
func (w *world) Write(p []byte) (int, error) {
	w.logMu.Lock()
	defer w.logMu.Unlock()
	return w.logs.Write(p)
}

func (w *world) logText() string {
	w.logMu.Lock()
	defer w.logMu.Unlock()
	return w.logs.String()
}

// handler is a seal handler on the world, with 5 MiB parts so that a few
// MiB make a multipart upload.
func (w *world) handler(mod ...func(*sealer.Config)) *sealer.Handler {
	w.t.Helper()
	cfg := sealer.Config{LandingBucket: w.bucket, PartSize: sealer.MinPartSize, PartsInFlight: 2}
	for _, f := range mod {
		f(&cfg)
	}
	h, err := sealer.New(cfg, sealer.Deps{Landing: w.s3, Store: w.store, Keys: w.keys,
		Logger: slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		w.t.Fatal(err)
	}
	return h
}

// upload is one test backup: its record and its plaintext.
type upload struct {
	b    catalog.Backup
	data []byte
}

// payload is n bytes holding the marker (when it fits) and random bytes.
func payload(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, seed^0x5eed))
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	for i := 0; i+len(marker) <= n; i += 1 << 20 {
		copy(b[i:], marker)
	}
	return b
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// land registers a backup declaring declared (nil: data itself) and puts
// data at its landing key.
func (w *world) land(org string, data, declared []byte) upload {
	w.t.Helper()
	if declared == nil {
		declared = data
	}
	b, _, err := w.store.CreateBackup(w.ctx, catalog.Backup{OrganizationID: org, Name: "wedding.zip",
		Size: int64(len(declared)), SHA256: sum(declared), ContentType: "application/zip"})
	if err != nil {
		w.t.Fatal(err)
	}
	b.LandingKey = "backups/" + org + "/" + b.ID
	if b, err = w.store.UpdateBackup(w.ctx, b); err != nil {
		w.t.Fatal(err)
	}
	w.put(b.LandingKey, data)
	return upload{b: b, data: data}
}

func (w *world) put(key string, data []byte) {
	w.t.Helper()
	if _, err := w.s3.PutObject(w.ctx, &s3.PutObjectInput{Bucket: aws.String(w.bucket), Key: aws.String(key),
		Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data)))}); err != nil {
		w.t.Fatal(err)
	}
}

// event is the SQS message of the landing bucket's Object Created event
// for key.
func (w *world) event(bucket, key string, size int) events.SQSMessage {
	body, _ := json.Marshal(map[string]any{
		"version": "0", "detail-type": "Object Created", "source": "aws.s3",
		"detail": map[string]any{"bucket": map[string]any{"name": bucket},
			"object": map[string]any{"key": key, "size": size, "etag": "x"}},
	})
	return events.SQSMessage{MessageId: fmt.Sprintf("m-%d", w.msgSeq.Add(1)), Body: string(body),
		Attributes: map[string]string{"ApproximateReceiveCount": "1"}}
}

func (w *world) landed(u upload) events.SQSMessage {
	return w.event(w.bucket, u.b.LandingKey, len(u.data))
}

// handle runs one batch and returns the ids of the failed messages.
func (w *world) handle(h *sealer.Handler, msgs ...events.SQSMessage) []string {
	w.t.Helper()
	resp, err := h.Handle(w.ctx, events.SQSEvent{Records: msgs})
	if err != nil {
		w.t.Fatalf("Handle returned an error: %v", err)
	}
	var failed []string
	for _, f := range resp.BatchItemFailures {
		failed = append(failed, f.ItemIdentifier)
	}
	return failed
}

// get reads a landing bucket object; ok false when there is none.
func (w *world) get(key string) ([]byte, bool) {
	w.t.Helper()
	out, err := w.s3.GetObject(w.ctx, &s3.GetObjectInput{Bucket: aws.String(w.bucket), Key: aws.String(key)})
	var nsk *s3types.NoSuchKey
	if errors.As(err, &nsk) {
		return nil, false
	}
	if err != nil {
		w.t.Fatal(err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		w.t.Fatal(err)
	}
	return b, true
}

func (w *world) backup(id string) catalog.Backup {
	w.t.Helper()
	b, err := w.store.GetBackup(w.ctx, id)
	if err != nil {
		w.t.Fatal(err)
	}
	return b
}

// open decrypts sealed bytes with the backup's data key.
func (w *world) open(u upload, sealed []byte) (seal.Header, []byte, error) {
	w.t.Helper()
	k, _, err := w.keys.Open(w.ctx, u.b.OrganizationID, u.b.ID)
	if err != nil {
		return seal.Header{}, nil, err
	}
	h, r, err := seal.Open(bytes.NewReader(sealed), k)
	if err != nil {
		return h, nil, err
	}
	plain, err := io.ReadAll(r)
	return h, plain, err
}

// uploadsInProgress counts the bucket's unfinished multipart uploads.
func (w *world) uploadsInProgress() int {
	w.t.Helper()
	out, err := w.s3.ListMultipartUploads(w.ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(w.bucket)})
	if err != nil {
		w.t.Fatal(err)
	}
	return len(out.Uploads)
}

// expectSealed checks a sealed backup: the record's seal names an object
// in the landing bucket whose SHA-256 and size it records, which holds no
// plaintext and opens to exactly the uploaded bytes.
func (w *world) expectSealed(u upload) catalog.Backup {
	w.t.Helper()
	b := w.backup(u.b.ID)
	if b.Seal == nil {
		w.t.Fatalf("backup %s has no seal (status %s %q)\nlogs:\n%s", b.ID, b.Status, b.StatusReason, w.logText())
	}
	if want := sealer.SealedKey(b.OrganizationID, b.ID); b.Seal.Key != want || b.Seal.Format != seal.Format || b.Seal.KMSKeyID == "" {
		w.t.Fatalf("seal %+v, want key %s format %s and a KMS key", b.Seal, want, seal.Format)
	}
	sealed, ok := w.get(b.Seal.Key)
	if !ok {
		w.t.Fatalf("no sealed object at %s", b.Seal.Key)
	}
	if sum(sealed) != b.Seal.CipherSHA256 || int64(len(sealed)) != b.Seal.CipherSize {
		w.t.Fatalf("sealed object has %d bytes sha256 %s; the record says %d bytes %s",
			len(sealed), sum(sealed), b.Seal.CipherSize, b.Seal.CipherSHA256)
	}
	if len(u.data) > 0 && bytes.Equal(sealed, u.data) || bytes.Contains(sealed, []byte(marker)) {
		w.t.Fatal("the sealed object holds plaintext")
	}
	h, plain, err := w.open(u, sealed)
	if err != nil {
		w.t.Fatalf("sealed object does not open: %v", err)
	}
	if sum(plain) != u.b.SHA256 || h.BackupID != b.ID || h.OrganizationID != b.OrganizationID || h.PlaintextSize != b.Size {
		w.t.Fatalf("opened to %d bytes sha256 %s, header %+v; want %d bytes %s", len(plain), sum(plain), h, b.Size, u.b.SHA256)
	}
	if b.Status != catalog.StatusReplicating || b.LandedAt == nil {
		w.t.Fatalf("sealed backup status %s landed %v, want REPLICATING with LandedAt", b.Status, b.LandedAt)
	}
	return b
}
