package tests

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/wedsync/backup-replication/infra/local/stack"
	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/keys"
	"github.com/wedsync/backup-replication/shared/seal"
	"github.com/wedsync/backup-replication/shared/sealer"
)

// Providers only ever hold ciphertext (issue 8). These helpers look at a
// copy from behind the system: its SHA-256 and size, whether the
// plaintext marker that every test upload carries shows up in it, and,
// when asked, what it decrypts to with the backup's data key, unwrapped
// from the keys table with KMS as an operator's restore would.

// plaintextMarker starts every 64 KiB block of the test uploads
// (patternData): a copy holding plaintext would contain it.
const plaintextMarker = "WS191-E2E-PLAINTEXT-MARKER/"

// copyFacts is what reading one copy found.
type copyFacts struct {
	SHA256 string
	Size   int64
	// Marker: the plaintext marker appears in the copy's bytes.
	Marker bool
	// PlainSHA256 and PlainSize are what the copy decrypts to, when it was
	// opened; PlainSize -1 otherwise.
	PlainSHA256 string
	PlainSize   int64
}

// copyOpener streams an object from one place, straight from its emulator.
type copyOpener func(ctx context.Context, key string) (io.ReadCloser, error)

// markerScan is an io.Writer that notices the plaintext marker across
// write boundaries.
type markerScan struct {
	tail  []byte
	found bool
}

func (m *markerScan) Write(p []byte) (int, error) {
	if m.found {
		return len(p), nil
	}
	buf := append(m.tail, p...)
	if bytes.Contains(buf, []byte(plaintextMarker)) {
		m.found = true
	}
	keep := min(len(buf), len(plaintextMarker)-1)
	m.tail = append(m.tail[:0], buf[len(buf)-keep:]...)
	return len(p), nil
}

// sealKeys is a key store on the stack's keys table and KMS, for tests
// that decrypt copies as an operator's restore would.
func sealKeys(s *stack.Stack) (*keys.Store, error) {
	return keys.New(keys.Config{Table: s.Template.Ref("KeysTable"), DefaultKeyID: s.Template.Attr("OrgKey", "Arn"),
		AliasPrefix: fmt.Sprint(s.Template.Parameters["KmsKeyAliasPrefix"])},
		kms.NewFromConfig(s.AWS), dynamodb.NewFromConfig(s.AWS))
}

// readCopy reads key at where (a provider, "s3-standby" or "landing");
// with b set it also decrypts it with b's data key.
func (e *sharedEnv) readCopy(ctx context.Context, where, key string, b *catalog.Backup) (copyFacts, error) {
	open, ok := e.Open[where]
	if !ok {
		return copyFacts{}, fmt.Errorf("no reader for %q", where)
	}
	rc, err := open(ctx, key)
	if err != nil {
		return copyFacts{}, err
	}
	defer rc.Close()
	h, scan := sha256.New(), &markerScan{}
	counted := &countWriter{}
	src := io.TeeReader(rc, io.MultiWriter(h, scan, counted))
	f := copyFacts{PlainSize: -1}
	if b != nil {
		dataKey, _, err := e.Keys.Open(ctx, b.OrganizationID, b.ID)
		if err != nil {
			return f, fmt.Errorf("data key of %s: %w", b.ID, err)
		}
		hdr, plain, err := seal.Open(src, dataKey)
		if err != nil {
			return f, fmt.Errorf("open the %s copy: %w", where, err)
		}
		ph := sha256.New()
		n, err := io.Copy(ph, plain)
		if err != nil {
			return f, fmt.Errorf("decrypt the %s copy: %w", where, err)
		}
		if hdr.BackupID != b.ID || hdr.OrganizationID != b.OrganizationID {
			return f, fmt.Errorf("the %s copy's header names %s/%s", where, hdr.OrganizationID, hdr.BackupID)
		}
		f.PlainSHA256, f.PlainSize = hex.EncodeToString(ph.Sum(nil)), n
	}
	if _, err := io.Copy(io.Discard, src); err != nil {
		return f, err
	}
	f.SHA256, f.Size, f.Marker = hex.EncodeToString(h.Sum(nil)), counted.n, scan.found
	return f, nil
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// checkSealedCopy reports what is wrong with a provider copy of b (nil:
// nothing): it must be the recorded sealed bytes, differ from the upload
// (uploadSHA), hold no plaintext marker, and, when decrypt, open to the
// upload.
func (e *sharedEnv) checkSealedCopy(ctx context.Context, where, key string, b catalog.Backup, uploadSHA string, decrypt bool) error {
	if b.Seal == nil {
		return fmt.Errorf("backup %s has no seal (status %s %q)", b.ID, b.Status, b.StatusReason)
	}
	var open *catalog.Backup
	if decrypt {
		open = &b
	}
	f, err := e.readCopy(ctx, where, key, open)
	var problems []string
	switch {
	case err != nil:
		return fmt.Errorf("%s/%s: %w", where, key, err)
	case f.SHA256 != b.Seal.CipherSHA256 || f.Size != b.Seal.CipherSize:
		problems = append(problems, fmt.Sprintf("%d bytes sha256 %s, the seal records %d bytes %s", f.Size, f.SHA256,
			b.Seal.CipherSize, b.Seal.CipherSHA256))
	}
	if f.SHA256 == uploadSHA {
		problems = append(problems, "it is the uploaded plaintext")
	}
	if f.Marker {
		problems = append(problems, "it contains the plaintext marker")
	}
	if decrypt && (f.PlainSHA256 != uploadSHA || f.PlainSize != b.Size) {
		problems = append(problems, fmt.Sprintf("it decrypts to %d bytes sha256 %s, uploaded %d bytes %s", f.PlainSize,
			f.PlainSHA256, b.Size, uploadSHA))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s copy %s: %s", where, key, strings.Join(problems, "; "))
	}
	return nil
}

// plaintextGone reports an error while the plaintext upload of b is still
// in the landing bucket (the seal step deletes it once sealed).
func (e *sharedEnv) plaintextGone(ctx context.Context, b catalog.Backup) error {
	_, err := e.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(e.Buckets.Landing), Key: aws.String(b.LandingKey)})
	var nf *s3types.NotFound
	switch {
	case err == nil:
		return fmt.Errorf("the plaintext upload %s is still in the landing bucket", b.LandingKey)
	case errors.As(err, &nf):
		return nil
	}
	return err
}

// sealedKeyOf is the sealed object's key of a test backup.
func sealedKeyOf(b pipelineBackup) string {
	org, id, _ := strings.Cut(strings.TrimPrefix(b.Key, "backups/"), "/")
	return sealer.SealedKey(org, id)
}

// sealedEvent is the event the replicate queues get for b: its sealed
// object's Object Created, with the object's own size and ETag. It waits
// for the seal step to have written the object.
func (e *sharedEnv) sealedEvent(ctx context.Context, b pipelineBackup) (string, error) {
	key := sealedKeyOf(b)
	for {
		head, err := e.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(e.Buckets.Landing), Key: aws.String(key)})
		if err == nil {
			return objectCreated(e, key, aws.ToInt64(head.ContentLength), strings.Trim(aws.ToString(head.ETag), `"`), "PutObject"), nil
		}
		var nf *s3types.NotFound
		if !errors.As(err, &nf) {
			return "", fmt.Errorf("sealed object %s: %w", key, err)
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("sealed object %s never appeared: %w", key, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func sealedEventOf(t *testing.T, e *sharedEnv, b pipelineBackup) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	ev, err := e.sealedEvent(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// sealLine matches the line the seal function writes when it is done with
// one record of backupID (whatever became of it).
func sealLine(backupID string) func(string) bool {
	return func(l string) bool {
		return strings.HasPrefix(l, "[SealFunction") && strings.Contains(l, `"op":"seal"`) &&
			strings.Contains(l, `"backup_id":"`+backupID+`"`) && strings.Contains(l, `"outcome":`)
	}
}
