package replicate

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/wedsync/backup-replication/infra/emulator"
	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/config"
	"github.com/wedsync/backup-replication/shared/storage"
)

// One landing, three providers (S3 streamed, S3 server-side copy, GCS):
// each replica verified by the provider's evidence, the backup PROTECTED
// with its time to protection, and the copies byte for byte the upload.
func TestReplicateToThreeProvidersProtects(t *testing.T) {
	e := newEnv(t)
	e.bucket("replica-a")
	e.bucket("replica-b")
	streamed := e.streamingS3("replica-a")
	copied := e.s3Provider("s3-copy", "replica-b", moto.URL)
	offsite := e.gcsProvider()
	data := randomBytes(3<<20 + 17)
	b := e.upload(data, "")
	progress := &recorder{}

	for i, p := range []storage.Provider{streamed, copied, offsite} {
		if failed := handle(t, e.handler(p, progress, nil), e.message(b, 1)); len(failed) != 0 {
			t.Fatalf("%s: batch item failures %v; logs:\n%v", p.Name(), failed, e.logs.lines())
		}
		r := e.replica(b, p.Name())
		if r.State != catalog.ReplicaVerified || r.VerifiedSHA256 != b.SHA256 || r.Bytes != b.Size || r.Attempts != 1 ||
			r.Evidence == "" || r.VerifiedAt == nil || r.LastError != "" {
			t.Fatalf("%s replica %+v", p.Name(), r)
		}
		if got := readSum(t, p, b.LandingKey); got != b.SHA256 {
			t.Fatalf("%s holds sha256 %q, want %s", p.Name(), got, b.SHA256)
		}
		st := e.backup(b.ID)
		if i < 2 && (st.Status != catalog.StatusAtRisk || !strings.Contains(st.StatusReason, "of 3 verified copies")) {
			t.Fatalf("after %d copies: %s %q", i+1, st.Status, st.StatusReason)
		}
	}
	evidence := map[string]string{}
	for _, p := range []string{"s3", "s3-copy", "gcs"} {
		evidence[p] = e.replica(b, p).Evidence
	}
	if !strings.HasPrefix(evidence["gcs"], "gcs-") || !strings.Contains(evidence["gcs"], "crc32c") {
		t.Errorf("gcs evidence %q: expected its CRC32C to be checked", evidence["gcs"])
	}
	t.Logf("evidence: %v", evidence)

	final := e.backup(b.ID)
	if final.Status != catalog.StatusProtected || final.StatusReason != "" || final.LandedAt == nil ||
		final.ProtectedAt == nil || final.ProtectedAt.Before(*final.LandedAt) {
		t.Fatalf("backup %+v", final)
	}
	if got := progress.states(); !slices.Contains(got, catalog.ReplicaCopying) || got[len(got)-1] != catalog.ReplicaVerified {
		t.Errorf("progress states %v", got)
	}
	checkLogsAndMetrics(t, e, b)
}

func checkLogsAndMetrics(t *testing.T, e *env, b catalog.Backup) {
	t.Helper()
	var replicateLines int
	for _, l := range e.logs.lines() {
		if l["op"] != "replicate" {
			continue
		}
		replicateLines++
		for _, k := range []string{"backup_id", "provider", "op", "attempt", "bytes", "duration_ms"} {
			if _, ok := l[k]; !ok {
				t.Errorf("log line lacks %s: %v", k, l)
			}
		}
		if l["backup_id"] != b.ID {
			t.Errorf("log line for another backup: %v", l)
		}
	}
	if replicateLines == 0 {
		t.Error("no replicate log line")
	}
	ops := map[string]bool{}
	for _, m := range e.emf.lines() {
		if _, ok := m["_aws"]; !ok {
			t.Errorf("metric line without _aws: %v", m)
		}
		ops[m["Operation"].(string)] = true
	}
	for _, op := range []string{"replicate", "put", "copy", "verify"} {
		if !ops[op] {
			t.Errorf("no %s metric; got %v", op, ops)
		}
	}
}

// Delivery is at least once: the same event again, later, in the same batch
// or after the copy, leaves one replica and copies nothing a second time.
func TestDuplicateEventCopiesOnce(t *testing.T) {
	e := newEnv(t)
	e.bucket("replica")
	h := e.handler(e.streamingS3("replica"), nil, nil)
	b := e.upload(randomBytes(64<<10), "")
	if failed := handle(t, h, e.message(b, 1)); len(failed) != 0 {
		t.Fatalf("first delivery failed: %v", failed)
	}
	first := e.replica(b, "s3")
	if failed := handle(t, h, e.message(b, 2), e.message(b, 1)); len(failed) != 0 {
		t.Fatalf("duplicates failed: %v", failed)
	}
	again := e.replica(b, "s3")
	if again.Version != first.Version || again.Attempts != 1 || again.State != catalog.ReplicaVerified {
		t.Fatalf("duplicate changed the replica: %+v → %+v", first, again)
	}
	reps, _ := e.store.Replicas(t.Context(), b.ID)
	if len(reps) != 1 {
		t.Fatalf("%d replica records", len(reps))
	}
}

// Two deliveries of a fresh event in one batch: one copies, the other is
// consumed as a duplicate or returned to the queue; never two attempts.
func TestConcurrentDuplicatesInOneBatch(t *testing.T) {
	e := newEnv(t)
	e.bucket("replica")
	h := e.handler(e.streamingS3("replica"), nil, nil)
	b := e.upload(randomBytes(256<<10), "")
	failed := handle(t, h, e.message(b, 1), e.message(b, 1), e.message(b, 1))
	if len(failed) > 2 {
		t.Fatalf("all deliveries failed: %v", failed)
	}
	for range failed {
		if again := handle(t, h, e.message(b, 2)); len(again) != 0 {
			t.Fatalf("redelivery failed: %v", again)
		}
	}
	if r := e.replica(b, "s3"); r.State != catalog.ReplicaVerified || r.Attempts != 1 {
		t.Fatalf("replica %+v", r)
	}
}

// Declared SHA-256 (or size) that the landed bytes do not have: the backup
// is FAILED with the reason, nothing is left on the provider, and the
// message is consumed (no retry can fix it). Streamed and server-side.
func TestWrongDeclarationFailsBackup(t *testing.T) {
	cases := []struct {
		name     string
		copy     bool
		declared func(data []byte) string
		size     int64
		reason   string
	}{
		{"wrong sha256, streamed", false, func([]byte) string { return sum([]byte("something else")) }, 0, "sha256"},
		{"wrong sha256, server-side copy", true, func([]byte) string { return sum([]byte("something else")) }, 0, "integrity"},
		{"wrong size", false, func(d []byte) string { return sum(d) }, 99, "bytes, declared 99"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.bucket("replica")
			p := e.streamingS3("replica")
			if tc.copy {
				p = e.s3Provider("s3", "replica", moto.URL)
			}
			data := randomBytes(200 << 10)
			b := e.upload(data, tc.declared(data))
			if tc.size != 0 {
				b.Size = tc.size
				var err error
				if b, err = e.store.UpdateBackup(t.Context(), b); err != nil {
					t.Fatal(err)
				}
			}
			progress := &recorder{}
			if failed := handle(t, e.handler(p, progress, nil), e.message(b, 1)); len(failed) != 0 {
				t.Fatalf("the message was not consumed: %v", failed)
			}
			got := e.backup(b.ID)
			t.Logf("status %s: %s", got.Status, got.StatusReason)
			if got.Status != catalog.StatusFailed || !strings.Contains(got.StatusReason, tc.reason) {
				t.Fatalf("backup %s %q", got.Status, got.StatusReason)
			}
			if _, err := p.Stat(t.Context(), b.LandingKey); !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("something is on the provider: %v", err)
			}
			if s := progress.states(); len(s) == 0 || s[len(s)-1] != catalog.ReplicaFailed {
				t.Errorf("progress %v", s)
			}
			// Later deliveries leave it FAILED and copy nothing.
			if failed := handle(t, e.handler(p, nil, nil), e.message(b, 2)); len(failed) != 0 {
				t.Fatalf("redelivery: %v", failed)
			}
			if _, err := p.Stat(t.Context(), b.LandingKey); !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("redelivery copied: %v", err)
			}
		})
	}
}

// Bodies that can never succeed are batch item failures (so the redrive
// policy dead-letters them), never a panic and never a catalog write.
func TestMalformedMessages(t *testing.T) {
	e := newEnv(t)
	e.bucket("replica")
	h := e.handler(e.streamingS3("replica"), nil, nil)
	ok := e.message(catalog.Backup{LandingKey: "backups/org/id", Size: 1}, 1).Body
	bodies := map[string]string{
		"empty":           ``,
		"not json":        `supabase,s3,gcs`,
		"json null":       `null`,
		"array":           `[1,2,3]`,
		"other event":     strings.Replace(ok, "Object Created", "Object Deleted", 1),
		"other source":    strings.Replace(ok, `"aws.s3"`, `"aws.ec2"`, 1),
		"key outside":     strings.Replace(ok, "backups/org/id", "_health/canary", 1),
		"key too deep":    strings.Replace(ok, "backups/org/id", "backups/org/id/../../x", 1),
		"dot segment":     strings.Replace(ok, "backups/org/id", "backups/../id", 1),
		"negative size":   strings.Replace(ok, `"size":1`, `"size":-5`, 1),
		"size a string":   strings.Replace(ok, `"size":1`, `"size":"1"`, 1),
		"no size":         strings.Replace(ok, `"size":1,`, ``, 1),
		"other bucket":    strings.ReplaceAll(ok, e.landing, "someone-elses-bucket"),
		"huge":            `{"source":"aws.s3","x":"` + strings.Repeat("A", 300<<10) + `"}`,
		"deeply nested":   strings.Repeat("[", 100000) + strings.Repeat("]", 100000),
		"invalid utf8":    strings.Replace(ok, "backups/org/id", "backups/org/\xff\xfe", 1),
		"unicode escapes": strings.Replace(ok, "backups/org/id", `backups/org/\u0000`, 1),
	}
	var msgs []events.SQSMessage
	for name, body := range bodies {
		msgs = append(msgs, events.SQSMessage{MessageId: name, Body: body})
	}
	failed := handle(t, h, msgs...)
	slices.Sort(failed)
	var want []string
	for name := range bodies {
		want = append(want, name)
	}
	slices.Sort(want)
	// "unicode escapes" parses to a key with a NUL byte, which is a valid
	// landing key shape but has no backup record: still a failure.
	if !slices.Equal(failed, want) {
		t.Fatalf("failed %v\nwant %v", failed, want)
	}
	p, err := e.store.BackupsByStatus(t.Context(), catalog.StatusReplicating, 0, "")
	if err != nil || len(p.Backups) != 0 {
		t.Fatalf("catalog changed: %v %v", p.Backups, err)
	}
}

// An event for a backup the catalog does not know is kept (batch item
// failure, then the dead-letter queue), and nothing is copied.
func TestMissingBackupRecordKeepsMessage(t *testing.T) {
	e := newEnv(t)
	e.bucket("replica")
	p := e.streamingS3("replica")
	h := e.handler(p, nil, nil)
	b := catalog.Backup{ID: "never-registered", OrganizationID: "org", Size: 3, LandingKey: "backups/org/never-registered"}
	e.s3.PutObject(t.Context(), &s3.PutObjectInput{Bucket: aws.String(e.landing), Key: aws.String(b.LandingKey), Body: strings.NewReader("abc")})
	msg := e.message(b, 1)
	if failed := handle(t, h, msg); !slices.Equal(failed, []string{msg.MessageId}) {
		t.Fatalf("failed %v", failed)
	}
	if _, err := p.Stat(t.Context(), b.LandingKey); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("copied without a record: %v", err)
	}
	if _, err := e.store.GetReplica(t.Context(), b.ID, "s3"); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("replica record written: %v", err)
	}
}

// A provider failure is recorded on the replica (attempt, redacted error)
// and the message returns to the queue; the next delivery succeeds.
func TestProviderFailureIsRetried(t *testing.T) {
	e := newEnv(t)
	p := e.streamingS3("not-created-yet")
	h := e.handler(p, nil, nil)
	b := e.upload(randomBytes(10<<10), "")
	msg := e.message(b, 1)
	if failed := handle(t, h, msg); !slices.Equal(failed, []string{msg.MessageId}) {
		t.Fatalf("failed %v", failed)
	}
	r := e.replica(b, "s3")
	if r.State != catalog.ReplicaFailed || r.Attempts != 1 || r.LastError == "" || r.LastErrorKind == "" {
		t.Fatalf("replica after failure %+v", r)
	}
	if st := e.backup(b.ID); st.Status != catalog.StatusAtRisk || !strings.Contains(st.StatusReason, "s3 (failed)") {
		t.Fatalf("backup %s %q", st.Status, st.StatusReason)
	}
	e.bucket("not-created-yet")
	if failed := handle(t, h, e.message(b, 2)); len(failed) != 0 {
		t.Fatalf("retry failed: %v", failed)
	}
	r = e.replica(b, "s3")
	if r.State != catalog.ReplicaVerified || r.Attempts != 2 || r.LastError != "" {
		t.Fatalf("replica after retry %+v", r)
	}
}

// failingGate stands for a breaker whose state cannot be read.
type failingGate struct{}

func (failingGate) Allow(context.Context) (func(error), error) {
	return nil, errors.New("breakers table unreachable")
}

// A breaker that cannot be read fails the delivery (it is retried and,
// if it persists, dead-lettered) without touching the replica.
func TestUnreadableGateFailsTheDelivery(t *testing.T) {
	e := newEnv(t)
	e.bucket("replica")
	b := e.upload(randomBytes(1024), "")
	msg := e.message(b, 1)
	if failed := handle(t, e.handler(e.streamingS3("replica"), nil, failingGate{}), msg); !slices.Equal(failed, []string{msg.MessageId}) {
		t.Fatalf("failed %v", failed)
	}
	if _, err := e.store.GetReplica(t.Context(), b.ID, "s3"); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("replica touched while the gate was unreadable: %v", err)
	}
}

func TestEmptyBackupReplicates(t *testing.T) {
	e := newEnv(t)
	e.bucket("replica")
	p := e.streamingS3("replica")
	b := e.upload(nil, "")
	if failed := handle(t, e.handler(p, nil, nil), e.message(b, 1)); len(failed) != 0 {
		t.Fatalf("failed %v: %v", failed, e.logs.lines())
	}
	if r := e.replica(b, "s3"); r.State != catalog.ReplicaVerified || r.Bytes != 0 {
		t.Fatalf("replica %+v", r)
	}
}

func TestNewRejectsBadWiring(t *testing.T) {
	_, err := New(Config{}, Deps{})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"provider name is empty", "landing bucket is empty", "provider, landing and store are required"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestRedact(t *testing.T) {
	cases := map[string]string{
		`Put "https://x.supabase.co/storage/v1/object/sign/b/k?token=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc": EOF`: "token",
		`Authorization: Bearer sk_live_abcdef123`:  "sk_live",
		`apikey=supersecretvalue&x=1`:              "supersecretvalue",
		`X-Amz-Security-Token: FQoGZXIvYXdzEJr...`: "FQoGZXIvYXdzEJr",
	}
	for in, secret := range cases {
		if out := Redact(in); strings.Contains(out, secret) {
			t.Errorf("Redact(%q) = %q still holds %q", in, out, secret)
		}
	}
	if out := Redact(strings.Repeat("x", 5000)); len(out) > maxErrorText+4 {
		t.Errorf("not bounded: %d", len(out))
	}
}

// The wiring the Lambda and the local stack use: configuration from the
// environment's variables, providers built from it, one event replicated.
// By default (REPLICATE_REQUIRE_SEAL) the plaintext landing event is
// consumed with nothing copied and the sealed object's event replicates.
func TestWireFromEnvironment(t *testing.T) {
	e := newEnv(t)
	e.bucket("replica")
	awsCfg, _ := moto.AWSConfig(t.Context())
	cfg, err := config.LoadReplicate(config.Map(map[string]string{
		"AWS_REGION": emulator.MotoRegion, "AWS_ENDPOINT_URL": moto.URL, "LANDING_BUCKET": e.landing,
		"BACKUPS_TABLE": e.store.Config().BackupsTable, "REPLICAS_TABLE": e.store.Config().ReplicasTable,
		"PROVIDER": "s3", "S3_REPLICA_BUCKET": e.real("replica"),
	}))
	if err != nil {
		t.Fatal(err)
	}
	h, err := Wire(t.Context(), cfg, awsCfg, slog.New(slog.NewJSONHandler(e.logs, nil)), e.emf)
	if err != nil {
		t.Fatal(err)
	}
	b := e.upload(randomBytes(4096), "")
	if failed := handle(t, h, e.message(b, 1)); len(failed) != 0 {
		t.Fatalf("failed %v: %v", failed, e.logs.lines())
	}
	if _, err := e.store.GetReplica(t.Context(), b.ID, "s3"); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("plaintext event replicated: %v", err)
	}
	cipher := randomBytes(4096 + 77)
	b = e.seal(b, cipher)
	if failed := handle(t, h, e.sealedMessage(b, 1)); len(failed) != 0 {
		t.Fatalf("failed %v: %v", failed, e.logs.lines())
	}
	if r := e.replica(b, "s3"); r.State != catalog.ReplicaVerified || r.VerifiedSHA256 != sum(cipher) {
		t.Fatalf("replica %+v", r)
	}
	if st := e.backup(b.ID); st.Status != catalog.StatusAtRisk || !strings.Contains(st.StatusReason, "1 of 3 verified copies") {
		t.Fatalf("backup %s %q", st.Status, st.StatusReason)
	}
}

// recordingGate stands for a closed breaker and keeps what done reports.
type recordingGate struct{ outcomes []error }

func (g *recordingGate) Allow(context.Context) (func(error), error) {
	return func(err error) { g.outcomes = append(g.outcomes, err) }, nil
}

// The gate hears one outcome per transfer: success, the provider's failure,
// and nothing it should count when the landing object was at fault.
func TestGateHearsEachTransferOnce(t *testing.T) {
	e := newEnv(t)
	g := &recordingGate{}
	h := e.handler(e.streamingS3("later"), nil, g)
	good := e.upload(randomBytes(2048), "")
	handle(t, h, e.message(good, 1)) // bucket missing: provider failure
	e.bucket("later")
	handle(t, h, e.message(good, 2))                                  // success
	handle(t, h, e.message(e.upload(randomBytes(2048), sum(nil)), 1)) // landing at fault
	if len(g.outcomes) != 3 {
		t.Fatalf("outcomes %v", g.outcomes)
	}
	if err := g.outcomes[0]; err == nil || errors.Is(err, context.Canceled) || storage.KindOf(err) != storage.NotFound {
		t.Errorf("provider failure reported as %v", err)
	}
	if g.outcomes[1] != nil {
		t.Errorf("success reported as %v", g.outcomes[1])
	}
	if !errors.Is(g.outcomes[2], context.Canceled) {
		t.Errorf("landing fault reported as %v", g.outcomes[2])
	}
}
