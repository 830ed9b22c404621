package rotate_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/credentials"
	"github.com/wedsync/backup-replication/shared/credentials/credtest"
	"github.com/wedsync/backup-replication/shared/policy"
	"github.com/wedsync/backup-replication/shared/replicate"
	"github.com/wedsync/backup-replication/shared/rotate"
	"github.com/wedsync/backup-replication/shared/secret"
	"github.com/wedsync/backup-replication/shared/storage"
)

// Backups replicated while the credentials rotate, in rounds of batch.
const (
	backups = 50
	batch   = 5
)

// TestRotateEveryProviderWhileReplicating drives the real replicate handler
// of each provider (supabase, s3, gcs), with the credentials layer in the
// provider chain, over 50 backups in rounds of 5: three rounds before the
// rotations, four while all three secrets rotate (S3 access key through
// IAM, GCS service-account key through the IAM API, Supabase key staged by
// an operator), and three after the functions' credential cache expired.
// No replication may fail; every backup ends PROTECTED; after the rotations
// the providers use the new credentials; no secret reaches a log line.
func TestRotateEveryProviderWhileReplicating(t *testing.T) {
	if testing.Short() {
		t.Skip("50 backups through three providers")
	}
	ctx := t.Context()
	w := newWorld(t)
	landing := w.Bucket()
	s3r := newS3Rotation(t, rotate.HandlerConfig{}, landing) // the user may read the landing bucket: server-side copies
	gs := newGoogleSide(t)
	ss := newSupabaseSide(t)
	gcsARN := w.Secret(secret.Secret(gs.key1))
	supaARN := w.Secret(ss.creds(ss.emu.ServiceKey).Secret())

	logs := &credtest.Logs{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h, err := rotate.New(w.SM, map[string]rotate.Rotator{
		s3r.arn: mustS3(t, w, s3r),
		gcsARN:  rotate.NewGCS(rotate.GCSConfig{Provider: gs.pcfg, IAMEndpoint: gs.g.IAMEndpoint(), Probing: quick}, log),
		supaARN: rotate.NewSupabase(rotate.SupabaseConfig{Provider: ss.pcfg, Probing: quick}, log),
	}, rotate.HandlerConfig{}, log)
	if err != nil {
		t.Fatal(err)
	}

	// The functions' side: one loader (TTL on a clock the test moves), the
	// credentials layer on each provider, the replicate handler on top.
	clk := &testClock{}
	loader := credentials.NewLoader(w.SM, credentials.LoaderConfig{TTL: 5 * time.Minute, Now: clk.Now})
	s3cfg := s3r.pcfg
	providers := map[string]storage.Provider{}
	for name, c := range map[string]struct {
		arn   string
		build credentials.Build
	}{
		"s3":       {s3r.arn, credentials.S3(s3cfg, side.Admin(), log)},
		"gcs":      {gcsARN, credentials.GCS(gs.pcfg, log)},
		"supabase": {supaARN, credentials.Supabase(ss.pcfg, log)},
	} {
		p, err := credentials.Provider(ctx, name, c.arn, loader, c.build, log)
		if err != nil {
			t.Fatal(err)
		}
		providers[name] = p
	}
	db := dynamodb.NewFromConfig(side.Admin())
	names := catalog.Config{BackupsTable: "backups-" + credtest.RandomHex(4), ReplicasTable: "replicas-" + credtest.RandomHex(4)}
	if err := catalog.EnsureTables(ctx, db, names); err != nil {
		t.Fatal(err)
	}
	store, err := catalog.NewDynamo(db, names)
	if err != nil {
		t.Fatal(err)
	}
	handlers := map[string]*replicate.Handler{}
	for name, p := range providers {
		if handlers[name], err = replicate.New(replicate.Config{Provider: name, LandingBucket: landing}, replicate.Deps{
			Provider: p, Landing: replicate.NewLanding(w.S3, landing, side.URL()), Store: store,
			Policy: policy.DefaultTable(), Logger: log}); err != nil {
			t.Fatal(err)
		}
	}

	// 50 backups land.
	var all []catalog.Backup
	var msgs []events.SQSMessage
	for i := range backups {
		data := make([]byte, 1024+i*2048)
		copy(data, fmt.Sprintf("backup %d of the Smith–Jones wedding", i))
		sum := sha256.Sum256(data)
		org, id := "org-"+credtest.RandomHex(3), "B"+credtest.RandomHex(8)
		b, _, err := store.CreateBackup(ctx, catalog.Backup{ID: id, OrganizationID: org, Name: fmt.Sprintf("wedding %d.zip", i),
			Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:]), ContentType: "application/zip",
			LandingKey: "backups/" + org + "/" + id})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.S3.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String(landing), Key: aws.String(b.LandingKey),
			Body: bytes.NewReader(data)}); err != nil {
			t.Fatal(err)
		}
		all = append(all, b)
		msgs = append(msgs, landed(landing, b))
	}

	var mu sync.Mutex
	var failures []string
	round := func(r int) {
		var wg sync.WaitGroup
		for name, h := range handlers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := h.Handle(ctx, events.SQSEvent{Records: msgs[r*batch : (r+1)*batch]})
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					failures = append(failures, fmt.Sprintf("%s round %d: %v", name, r, err))
				}
				for _, f := range resp.BatchItemFailures {
					failures = append(failures, fmt.Sprintf("%s round %d: message %s", name, r, f.ItemIdentifier))
				}
			}()
		}
		wg.Wait()
	}
	for r := range 3 {
		round(r)
	}
	newSupaKey := ss.newKey(72 * time.Hour) // the operator makes a new key in the dashboard…
	stage(t, w, supaARN, ss.creds(newSupaKey).Secret())
	rotErrs := make(chan error, 3)
	for _, arn := range []string{s3r.arn, gcsARN, supaARN} {
		go func() { _, err := rotate.Drive(ctx, w.SM, h, arn); rotErrs <- err }()
	}
	for r := 3; r < 7; r++ {
		round(r)
	}
	for range 3 {
		if err := <-rotErrs; err != nil {
			t.Errorf("rotation: %v", err)
		}
	}
	clk.Advance(6 * time.Minute) // the functions' cached credentials expire
	gcsMark, supaMark := len(gs.g.Requests()), len(ss.gate.Requests())
	for r := 7; r < backups/batch; r++ {
		round(r)
	}
	ss.keys.Remove(ss.emu.ServiceKey) // …and revokes the old one once functions use the new

	if len(failures) > 0 {
		t.Fatalf("%d replications failed while credentials rotated:\n%s", len(failures), strings.Join(failures, "\n"))
	}
	for _, b := range all {
		if got, err := store.GetBackup(ctx, b.ID); err != nil || got.Status != catalog.StatusProtected {
			t.Fatalf("backup %s: %s (%s), %v; want PROTECTED", b.ID, got.Status, got.StatusReason, err)
		}
	}
	newGCS, _ := credentials.ParseGCS(w.Value(gcsARN, credentials.StageCurrent))
	for _, r := range gs.g.Requests()[gcsMark:] {
		if r.Credential != "" && r.Credential != newGCS.PrivateKeyID {
			t.Fatalf("after the rotation a GCS request used key %s, want %s", r.Credential, newGCS.PrivateKeyID)
		}
	}
	for _, r := range ss.gate.Requests()[supaMark:] {
		if r.Credential != "" && r.Credential != credtest.Fingerprint(newSupaKey) {
			t.Fatalf("after the rotation a Supabase request used another key (%s)", r.Credential)
		}
	}
	out := logs.String()
	if n := strings.Count(out, `"reason":"secret rotated"`); n != 3 {
		t.Errorf("%d providers logged picking up rotated credentials, want 3", n)
	}
	newS3, _ := credentials.ParseS3(w.Value(s3r.arn, credentials.StageCurrent))
	for _, v := range []string{s3r.key1.SecretAccessKey.Reveal(), newS3.SecretAccessKey.Reveal(), ss.emu.ServiceKey, newSupaKey,
		"PRIVATE KEY", gs.key1[len(gs.key1)/2 : len(gs.key1)/2+24]} {
		if strings.Contains(out, v) {
			t.Fatalf("a secret is in the logs (%.12s…)", v)
		}
	}
}

func mustS3(t *testing.T, w *world, r *s3Rotation) rotate.Rotator {
	t.Helper()
	rot, err := rotate.NewS3(rotate.S3Config{UserName: r.user, Provider: r.pcfg, Probing: quick}, w.IAM, nil)
	if err != nil {
		t.Fatal(err)
	}
	return rot
}

// landed is the SQS message EventBridge delivers for b's landing.
func landed(bucket string, b catalog.Backup) events.SQSMessage {
	body := fmt.Sprintf(`{"version":"0","id":"%s","detail-type":"Object Created","source":"aws.s3","account":"123456789012",
"time":"2026-06-01T12:00:00Z","region":"us-east-1","resources":["arn:aws:s3:::%s"],
"detail":{"version":"0","bucket":{"name":"%s"},"object":{"key":"%s","size":%d,"etag":"abc","sequencer":"00"},
"request-id":"R","requester":"123456789012","reason":"PutObject"}}`, credtest.RandomHex(8), bucket, bucket, b.LandingKey, b.Size)
	return events.SQSMessage{MessageId: "m-" + b.ID, Body: body, Attributes: map[string]string{"ApproximateReceiveCount": "1"}}
}

// testClock is the real clock, moved forward on demand (so the loader's
// TTL can expire without waiting, and its MinRefresh still passes).
type testClock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *testClock) Advance(d time.Duration) { c.mu.Lock(); c.offset += d; c.mu.Unlock() }
