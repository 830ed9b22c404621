package keys_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/wedsync/backup-replication/infra/emulator"
	"github.com/wedsync/backup-replication/shared/keys"
)

var (
	motoOnce sync.Once
	moto     *emulator.Moto
	motoErr  error
	seq      atomic.Int64
	// serialURL is the serialising proxy in front of moto (newEnv).
	serialURL string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if moto != nil {
		moto.Close()
	}
	os.Exit(code)
}

// env is one test's view of moto: its own keys table and default KMS key.
type env struct {
	kms        *kms.Client
	db         *dynamodb.Client
	table      string
	defaultKey string // ARN
	prefix     string // alias prefix, unique per test
}

func newEnv(t *testing.T) *env {
	t.Helper()
	motoOnce.Do(func() {
		if moto, motoErr = emulator.StartMoto(context.Background()); motoErr == nil {
			// The keys table one request at a time: moto lets two
			// concurrent conditional writes both pass, DynamoDB does not.
			serialURL, motoErr = emulator.Serialize(moto.URL)
		}
	})
	emulator.Require(t, motoErr)
	cfg, err := moto.AWSConfig(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	dcfg, _ := (&emulator.Moto{URL: serialURL}).AWSConfig(t.Context())
	n := seq.Add(1)
	e := &env{kms: kms.NewFromConfig(cfg), db: dynamodb.NewFromConfig(dcfg), table: fmt.Sprintf("keys-%d", n),
		prefix: fmt.Sprintf("alias/ws191-test-%d/org/", n)}
	if err := keys.EnsureTable(t.Context(), e.db, e.table); err != nil {
		t.Fatal(err)
	}
	if err := keys.EnsureTable(t.Context(), e.db, e.table); err != nil {
		t.Fatalf("EnsureTable is not idempotent: %v", err)
	}
	e.defaultKey = e.newKey(t)
	return e
}

func (e *env) newKey(t *testing.T) string {
	t.Helper()
	out, err := e.kms.CreateKey(t.Context(), &kms.CreateKeyInput{Description: aws.String("test key")})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.KeyMetadata.Arn)
}

func (e *env) store(t *testing.T, mod func(*keys.Config)) *keys.Store {
	t.Helper()
	cfg := keys.Config{Table: e.table, DefaultKeyID: e.defaultKey, AliasPrefix: e.prefix}
	if mod != nil {
		mod(&cfg)
	}
	s, err := keys.New(cfg, e.kms, e.db)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// scan returns every item of the table.
func (e *env) scan(t *testing.T) []map[string]types.AttributeValue {
	t.Helper()
	out, err := e.db.Scan(t.Context(), &dynamodb.ScanInput{TableName: aws.String(e.table)})
	if err != nil {
		t.Fatal(err)
	}
	return out.Items
}

// forms are the ways key bytes could show up in text.
func forms(k []byte) []string {
	return []string{string(k), hex.EncodeToString(k), strings.ToUpper(hex.EncodeToString(k)),
		base64.StdEncoding.EncodeToString(k), base64.RawStdEncoding.EncodeToString(k),
		base64.URLEncoding.EncodeToString(k), fmt.Sprint(k)}
}

func TestCreateStoresOnlyTheWrappedKey(t *testing.T) {
	e := newEnv(t)
	s := e.store(t, nil)
	plain, rec, err := s.Create(t.Context(), "org-1", "backup-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(plain) != keys.KeySize || bytes.Equal(plain, make([]byte, keys.KeySize)) {
		t.Fatalf("data key %d bytes", len(plain))
	}
	if rec.BackupID != "backup-1" || rec.OrganizationID != "org-1" || rec.KMSKeyID != e.defaultKey ||
		len(rec.Wrapped) == 0 || rec.CreatedAt.IsZero() || rec.Destroyed() {
		t.Fatalf("record %+v", rec)
	}
	items := e.scan(t)
	if len(items) != 1 {
		t.Fatalf("%d items", len(items))
	}
	for name, v := range items[0] {
		var text []byte
		switch v := v.(type) {
		case *types.AttributeValueMemberS:
			text = []byte(v.Value)
		case *types.AttributeValueMemberB:
			text = v.Value
		}
		for _, f := range forms(plain) {
			if bytes.Contains(text, []byte(f)) {
				t.Fatalf("attribute %s holds the plaintext data key", name)
			}
		}
	}
	if b, ok := items[0][keys.AttrWrapped].(*types.AttributeValueMemberB); !ok || !bytes.Equal(b.Value, rec.Wrapped) {
		t.Fatalf("wrapped key not stored as returned")
	}
}

func TestCreateIsIdempotent(t *testing.T) {
	e := newEnv(t)
	s := e.store(t, nil)
	first, rec1, err := s.Create(t.Context(), "org-1", "b-1")
	if err != nil {
		t.Fatal(err)
	}
	again, rec2, err := s.Create(t.Context(), "org-1", "b-1")
	if err != nil || !bytes.Equal(first, again) || !bytes.Equal(rec1.Wrapped, rec2.Wrapped) || !rec1.CreatedAt.Equal(rec2.CreatedAt) {
		t.Fatalf("second Create: err %v, same key %v, same record %v", err, bytes.Equal(first, again), bytes.Equal(rec1.Wrapped, rec2.Wrapped))
	}
	// Concurrent first Creates agree on one key.
	var wg sync.WaitGroup
	got := make([][]byte, 6)
	errs := make([]error, len(got))
	for i := range got {
		wg.Go(func() { got[i], _, errs[i] = s.Create(t.Context(), "org-1", "b-2") })
	}
	wg.Wait()
	for i := range got {
		if errs[i] != nil || !bytes.Equal(got[i], got[0]) {
			t.Fatalf("concurrent Create %d: err %v, same key %v", i, errs[i], bytes.Equal(got[i], got[0]))
		}
	}
	if _, _, err := s.Create(t.Context(), "org-2", "b-1"); !errors.Is(err, keys.ErrWrongOrganization) {
		t.Fatalf("Create for another organization's backup: %v, want ErrWrongOrganization", err)
	}
}

func TestOpen(t *testing.T) {
	e := newEnv(t)
	s := e.store(t, nil)
	plain, rec, err := s.Create(t.Context(), "org-1", "b-1")
	if err != nil {
		t.Fatal(err)
	}
	got, grec, err := s.Open(t.Context(), "org-1", "b-1")
	if err != nil || !bytes.Equal(got, plain) || !bytes.Equal(grec.Wrapped, rec.Wrapped) {
		t.Fatalf("Open: err %v, same key %v", err, bytes.Equal(got, plain))
	}
	// Another instance (a restore run, the API) opens it too.
	if got, _, err := e.store(t, nil).Open(t.Context(), "org-1", "b-1"); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("Open from a new store: %v", err)
	}
	if got, _, err := s.Open(t.Context(), "org-2", "b-1"); !errors.Is(err, keys.ErrWrongOrganization) || got != nil {
		t.Fatalf("Open by another organization: %v, want ErrWrongOrganization", err)
	}
	if _, _, err := s.Open(t.Context(), "org-1", "nope"); !errors.Is(err, keys.ErrNotFound) {
		t.Fatalf("Open of an unknown backup: %v, want ErrNotFound", err)
	}
}

// The encryption context binds a wrapped key to its organisation and
// backup in KMS itself (moto enforces it: it is the AES-GCM associated
// data of its ciphertext blob), not only in our record check.
func TestEncryptionContextIsBound(t *testing.T) {
	e := newEnv(t)
	s := e.store(t, nil)
	plain, rec, err := s.Create(t.Context(), "org-A", "b-1")
	if err != nil {
		t.Fatal(err)
	}
	decrypt := func(ctx map[string]string) error {
		out, err := e.kms.Decrypt(t.Context(), &kms.DecryptInput{CiphertextBlob: rec.Wrapped, EncryptionContext: ctx})
		if err == nil && !bytes.Equal(out.Plaintext, plain) {
			t.Fatal("decrypted to another key")
		}
		return err
	}
	if err := decrypt(keys.Context("org-A", "b-1")); err != nil {
		t.Fatalf("right context: %v", err)
	}
	var invalid *kmstypes.InvalidCiphertextException
	for name, ctx := range map[string]map[string]string{
		"organization B": keys.Context("org-B", "b-1"), "another backup": keys.Context("org-A", "b-2"),
		"no context": nil, "extra pair": {"organizationId": "org-A", "backupId": "b-1", "x": "y"},
	} {
		if err := decrypt(ctx); !errors.As(err, &invalid) {
			t.Errorf("%s: Decrypt = %v, want InvalidCiphertextException", name, err)
		}
	}
	// A record forged to say organisation B (or moved to another backup
	// id) does not open: KMS refuses the blob in B's context.
	for _, forged := range []keys.Record{
		{BackupID: "b-1", OrganizationID: "org-B", KMSKeyID: rec.KMSKeyID, Wrapped: rec.Wrapped, CreatedAt: rec.CreatedAt},
		{BackupID: "b-9", OrganizationID: "org-A", KMSKeyID: rec.KMSKeyID, Wrapped: rec.Wrapped, CreatedAt: rec.CreatedAt},
	} {
		e.put(t, forged)
		_, _, err := s.Open(t.Context(), forged.OrganizationID, forged.BackupID)
		if !errors.As(err, &invalid) {
			t.Errorf("forged record %s/%s: Open = %v, want InvalidCiphertextException", forged.OrganizationID, forged.BackupID, err)
		}
		checkNoKey(t, err, plain)
	}
}

// put writes a record as raw attributes (forging one).
func (e *env) put(t *testing.T, r keys.Record) {
	t.Helper()
	item := map[string]types.AttributeValue{
		keys.AttrBackupID: &types.AttributeValueMemberS{Value: r.BackupID}, keys.AttrOrganizationID: &types.AttributeValueMemberS{Value: r.OrganizationID},
		keys.AttrKMSKeyID: &types.AttributeValueMemberS{Value: r.KMSKeyID}, keys.AttrWrapped: &types.AttributeValueMemberB{Value: r.Wrapped},
	}
	if _, err := e.db.PutItem(t.Context(), &dynamodb.PutItemInput{TableName: aws.String(e.table), Item: item}); err != nil {
		t.Fatal(err)
	}
}

func checkNoKey(t *testing.T, err error, k []byte) {
	t.Helper()
	if err == nil {
		return
	}
	for _, f := range forms(k) {
		if strings.Contains(err.Error(), f) {
			t.Fatalf("error %q carries key material", err)
		}
	}
}
