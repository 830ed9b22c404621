package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/wedsync/backup-replication/infra/emulator"
	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/keys"
	"github.com/wedsync/backup-replication/shared/replicate"
	"github.com/wedsync/backup-replication/shared/seal"
	"github.com/wedsync/backup-replication/shared/sealer"
)

// Names of the seal rows' catalog, keys table and organisation, on the
// bench's own moto server (DynamoDB and KMS only: the bytes stay on
// versitygw, like the S3 → S3 rows).
const (
	sealOrg           = "org-bench"
	sealBackupsTable  = "bench-backups"
	sealReplicasTable = "bench-replicas"
	sealKeysTable     = "bench-keys"
	sealAliasPrefix   = "alias/ws191-bench/org/"
)

// sealConf is what a seal child needs besides the landing bucket: the
// moto server holding the catalog and the keys, and the backup to seal
// (Op "seal"), or nothing more (Op "seal-cpu").
type sealConf struct {
	MotoURL  string
	KMSKeyID string
	BackupID string
}

// sealSetup is the moto server and its tables and KMS key, made once
// when a seal row first runs.
type sealSetup struct {
	once   sync.Once
	err    error
	moto   *emulator.Moto
	kmsKey string
	store  *catalog.Dynamo
	seq    atomic.Int64
}

// sealRows are the rows of issue 8 §6: the seal step itself (the real
// sealer.Handler, landing object → sealed object in the same versitygw
// bucket, catalog and keys on moto) and seal.Seal alone, from the
// generated stream to io.Discard, as the CPU ceiling of sealing.
func (e *benchEnv) sealRows(t time.Duration) []row {
	size, sum := e.size, e.sha256
	return []row{
		{"S3 → sealed S3", toolOurs, "seal step, 16 MiB parts × 2 (production defaults)",
			"sealer.Handler.Handle(Object Created): GET landing → seal.Seal → multipart sealed/{org}/{id} [catalog, KMS on moto]",
			func(ctx context.Context) (result, error) {
				id, err := e.prepareSeal(ctx)
				if err != nil {
					return result{}, fmt.Errorf("prepare: %w", err)
				}
				defer e.deleteLanding(ctx, sealer.SealedKey(sealOrg, id))
				defer e.deleteLanding(ctx, "backups/"+sealOrg+"/"+id)
				return e.ours(ctx, spec{Op: "seal", Key: sealer.SealedKey(sealOrg, id), Size: size, SHA256: sum,
					Landing: e.landing(), Seal: &sealConf{MotoURL: e.seal.moto.URL, KMSKeyID: e.seal.kmsKey, BackupID: id}},
					e.vgw, t)
			}},
		{"seal only", toolOurs, "seal.Seal, generated stream → io.Discard (CPU ceiling)",
			"seal.Seal(io.Discard, generated, random 32-byte key, header)",
			func(ctx context.Context) (result, error) {
				return e.ours(ctx, spec{Op: "seal-cpu", Size: size, SHA256: sum, Seal: &sealConf{}}, nil, t)
			}},
	}
}

// prepareSeal starts moto when needed, then registers a fresh backup of
// the landing object and copies the object to its landing key (server
// side, not measured). It returns the backup's id.
func (e *benchEnv) prepareSeal(ctx context.Context) (string, error) {
	s := &e.seal
	s.once.Do(func() { s.err = e.startSealWorld(ctx) })
	if s.err != nil {
		return "", s.err
	}
	id := fmt.Sprintf("seal-%s-%d", randHex(4), s.seq.Add(1))
	b, _, err := s.store.CreateBackup(ctx, catalog.Backup{ID: id, OrganizationID: sealOrg, Name: "bench.bin",
		Size: e.size, SHA256: e.sha256, ContentType: "application/octet-stream"})
	if err != nil {
		return "", err
	}
	b.LandingKey = "backups/" + sealOrg + "/" + id
	if _, err := s.store.UpdateBackup(ctx, b); err != nil {
		return "", err
	}
	_, err = e.s3.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String(landingBucket), Key: aws.String(b.LandingKey),
		CopySource: aws.String(landingBucket + "/" + landingKey)})
	return id, err
}

// startSealWorld starts moto and makes the catalog, the keys table and
// the organisations' default KMS key.
func (e *benchEnv) startSealWorld(ctx context.Context) error {
	s := &e.seal
	e.logf("starting moto (catalog and KMS of the seal rows)")
	var err error
	if s.moto, err = emulator.StartMoto(ctx); err != nil {
		return err
	}
	cfg, _ := s.moto.AWSConfig(ctx)
	db := dynamodb.NewFromConfig(cfg)
	names := catalog.Config{BackupsTable: sealBackupsTable, ReplicasTable: sealReplicasTable}
	if err := catalog.EnsureTables(ctx, db, names); err != nil {
		return err
	}
	if s.store, err = catalog.NewDynamo(db, names); err != nil {
		return err
	}
	if err := keys.EnsureTable(ctx, db, sealKeysTable); err != nil {
		return err
	}
	key, err := kms.NewFromConfig(cfg).CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("bench default key")})
	if err != nil {
		return err
	}
	s.kmsKey = aws.ToString(key.KeyMetadata.Arn)
	return nil
}

// deleteLanding removes a landing bucket object; failures only cost disk.
func (e *benchEnv) deleteLanding(ctx context.Context, key string) {
	e.s3.DeleteObject(context.WithoutCancel(ctx), &s3.DeleteObjectInput{Bucket: aws.String(landingBucket), Key: aws.String(key)})
}

// runSealChild does a seal spec in the child and prints its childResult.
func runSealChild(ctx context.Context, sp spec) error {
	if sp.Op == "seal-cpu" {
		return sealCPU(sp)
	}
	if sp.Op != "seal" || sp.Landing == nil {
		return fmt.Errorf("op %q with a seal spec needs \"seal\" and a landing bucket", sp.Op)
	}
	mcfg := aws.Config{Region: emulator.MotoRegion, BaseEndpoint: aws.String(sp.Seal.MotoURL),
		Credentials: credentials.NewStaticCredentialsProvider(emulator.MotoAccessKeyID, emulator.MotoSecretAccessKey, "")}
	db := dynamodb.NewFromConfig(mcfg)
	store, err := catalog.NewDynamo(db, catalog.Config{BackupsTable: sealBackupsTable, ReplicasTable: sealReplicasTable})
	if err != nil {
		return err
	}
	ks, err := keys.New(keys.Config{Table: sealKeysTable, DefaultKeyID: sp.Seal.KMSKeyID, AliasPrefix: sealAliasPrefix},
		kms.NewFromConfig(mcfg), db)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	h, err := sealer.New(sealer.Config{LandingBucket: sp.Landing.Bucket},
		sealer.Deps{Landing: sp.Landing.client(), Store: store, Keys: ks, Logger: log})
	if err != nil {
		return err
	}
	landingKey := "backups/" + sealOrg + "/" + sp.Seal.BackupID
	body := replicate.ObjectCreated(sp.Landing.Bucket, landingKey, sp.Size, "", "PutObject", time.Now())
	msg := events.SQSMessage{MessageId: "bench-1", Body: body,
		Attributes: map[string]string{"ApproximateReceiveCount": "1"}}
	res := startMeasure("seal")
	start := time.Now()
	resp, _ := h.Handle(ctx, events.SQSEvent{Records: []events.SQSMessage{msg}})
	res.Seconds = time.Since(start).Seconds()
	if len(resp.BatchItemFailures) > 0 {
		return errors.New("the seal handler returned the message to the queue (its log is above)")
	}
	b, err := store.GetBackup(ctx, sp.Seal.BackupID)
	if err != nil {
		return err
	}
	if b.Seal == nil || b.Seal.Key != sp.Key || b.Status != catalog.StatusReplicating {
		return fmt.Errorf("backup %s is %s (%s) with seal %+v, want sealed to %s", b.ID, b.Status, b.StatusReason, b.Seal, sp.Key)
	}
	res.Bytes = b.Size
	return json.NewEncoder(os.Stdout).Encode(res)
}

// sealCPU seals the generated stream into io.Discard: no network, no
// disk, only the encryption and both SHA-256s (and the generator).
func sealCPU(sp spec) error {
	key := make([]byte, seal.KeySize)
	rand.Read(key)
	hdr := seal.Header{Format: seal.Format, KMSKeyID: "bench", OrganizationID: sealOrg, BackupID: "bench",
		PlaintextSize: sp.Size}
	res := startMeasure("seal-cpu")
	start := time.Now()
	r, err := seal.Seal(io.Discard, generated(sp.Size), key, hdr)
	res.Seconds = time.Since(start).Seconds()
	if err != nil {
		return err
	}
	if !strings.EqualFold(r.PlaintextSHA256, sp.SHA256) || r.CipherSize != seal.SealedSize(hdr) {
		return fmt.Errorf("sealed %d bytes of plaintext sha256 %s into %d; want %s and %d",
			r.PlaintextSize, r.PlaintextSHA256, r.CipherSize, sp.SHA256, seal.SealedSize(hdr))
	}
	res.Bytes = r.PlaintextSize
	return json.NewEncoder(os.Stdout).Encode(res)
}

// startMeasure collects garbage and reads the baseline resident set, just
// before a child's measured operation.
func startMeasure(op string) childResult {
	runtime.GC()
	debug.FreeOSMemory()
	return childResult{BaselineRSS: vmRSS(), Method: op}
}

// sealNotes compares the seal rows with the plain server-side S3 copy of
// the same object (issue 8 §6), when those rows ran.
func sealNotes(size int64, stats []rowStats) string {
	var step, cpu, copy *rowStats
	for i := range stats {
		s := &stats[i]
		switch {
		case s.ok == 0:
		case s.pair == "S3 → sealed S3":
			step = s
		case s.pair == "seal only":
			cpu = s
		case s.pair == "S3 → S3" && s.tool == toolOurs:
			copy = s
		}
	}
	if step == nil && cpu == nil {
		return ""
	}
	var b strings.Builder
	b.WriteString("\nSealing " + sizeName(size) + " (wall time of the child process; in brackets the operation alone, " +
		"from the child's clock, without process start and client set-up; peak RSS with the baseline before the first byte):\n")
	line := func(name string, s *rowStats) {
		fmt.Fprintf(&b, "- %s: %.1f s wall (%.1f s), %.1f MB/s, CPU %.1f s, peak RSS %.0f MiB (+%.0f)",
			name, float64(size)/1e6/s.mbps, s.opSec, s.mbps, s.cpu, s.rss, s.rss-s.baseRSS)
	}
	if step != nil {
		line("seal step (sealer.Handler, S3 → sealed S3)", step)
		if copy != nil {
			fmt.Fprintf(&b, "; the plain server-side copy takes %.1f s wall (%.1f s), so sealing costs %.1f s more",
				float64(size)/1e6/copy.mbps, copy.opSec, float64(size)/1e6/step.mbps-float64(size)/1e6/copy.mbps)
		}
		b.WriteString(".\n")
	}
	if cpu != nil {
		line("seal.Seal alone (generated → io.Discard)", cpu)
		b.WriteString(".\n")
	}
	return b.String()
}
