package keys_test

import (
	"encoding/base64"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/wedsync/backup-replication/shared/keys"
)

func TestDestroyShreds(t *testing.T) {
	e := newEnv(t)
	s := e.store(t, nil)
	plain, _, err := s.Create(t.Context(), "org-1", "b-1")
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now().Add(-time.Second)
	rec, err := s.Destroy(t.Context(), "org-1", "b-1", "user:alice", "couple asked for erasure")
	if err != nil {
		t.Fatal(err)
	}
	if !rec.Destroyed() || rec.DestroyedAt.Before(before) || rec.DestroyedBy != "user:alice" ||
		rec.Reason != "couple asked for erasure" || len(rec.Wrapped) != 0 || rec.KMSKeyID == "" || rec.CreatedAt.IsZero() {
		t.Fatalf("tombstone %+v", rec)
	}
	// The wrapped key is gone from the table; the tombstone stays.
	items := e.scan(t)
	if len(items) != 1 {
		t.Fatalf("%d items after Destroy", len(items))
	}
	if _, ok := items[0][keys.AttrWrapped]; ok {
		t.Fatal("wrapped key still stored")
	}
	if _, _, err := s.Open(t.Context(), "org-1", "b-1"); !errors.Is(err, keys.ErrShredded) {
		t.Fatalf("Open after Destroy: %v, want ErrShredded", err)
	}
	if _, _, err := s.Create(t.Context(), "org-1", "b-1"); !errors.Is(err, keys.ErrShredded) {
		t.Fatalf("Create after Destroy: %v, want ErrShredded", err)
	}
	// Idempotent: the first tombstone stands.
	again, err := s.Destroy(t.Context(), "org-1", "b-1", "retention", "expired")
	if err != nil || !again.DestroyedAt.Equal(*rec.DestroyedAt) || again.DestroyedBy != "user:alice" || again.Reason != rec.Reason {
		t.Fatalf("second Destroy: %+v, %v", again, err)
	}
	if _, err := s.Destroy(t.Context(), "org-2", "b-1", "user:mallory", ""); !errors.Is(err, keys.ErrWrongOrganization) {
		t.Fatalf("Destroy by another organization: %v, want ErrWrongOrganization", err)
	}
	checkNoKey(t, err, plain)
}

func TestDestroyOtherOrganizationKeepsKey(t *testing.T) {
	e := newEnv(t)
	s := e.store(t, nil)
	plain, _, err := s.Create(t.Context(), "org-1", "b-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Destroy(t.Context(), "org-2", "b-1", "user:mallory", "x"); !errors.Is(err, keys.ErrWrongOrganization) {
		t.Fatalf("Destroy by another organization: %v", err)
	}
	if got, _, err := s.Open(t.Context(), "org-1", "b-1"); err != nil || string(got) != string(plain) {
		t.Fatalf("key lost to another organization's Destroy: %v", err)
	}
	if _, err := s.Destroy(t.Context(), "org-1", "b-1", "", "x"); err == nil {
		t.Fatal("Destroy without who: no error")
	}
}

// Destroying a backup that has no key yet (erased while its seal step is
// in flight) leaves a tombstone that the seal step's Create then meets.
func TestDestroyBeforeCreate(t *testing.T) {
	e := newEnv(t)
	s := e.store(t, nil)
	rec, err := s.Destroy(t.Context(), "org-1", "b-1", "retention", "")
	if err != nil || !rec.Destroyed() || rec.OrganizationID != "org-1" || rec.Reason != "" {
		t.Fatalf("Destroy of an unknown backup: %+v, %v", rec, err)
	}
	if _, _, err := s.Create(t.Context(), "org-1", "b-1"); !errors.Is(err, keys.ErrShredded) {
		t.Fatalf("Create after Destroy: %v, want ErrShredded", err)
	}
}

// Destroy racing Create: whichever wins, the backup ends shredded.
func TestDestroyRacingCreate(t *testing.T) {
	e := newEnv(t)
	s := e.store(t, nil)
	for i := range 5 {
		b := "race-" + string(rune('a'+i))
		var wg sync.WaitGroup
		var derr error
		wg.Go(func() { s.Create(t.Context(), "org-1", b) })
		wg.Go(func() { _, derr = s.Destroy(t.Context(), "org-1", b, "user:alice", "") })
		wg.Wait()
		if derr != nil {
			t.Fatalf("Destroy: %v", derr)
		}
		if _, _, err := s.Open(t.Context(), "org-1", b); !errors.Is(err, keys.ErrShredded) {
			t.Fatalf("%s: Open after racing Destroy: %v, want ErrShredded", b, err)
		}
	}
}

func TestKeyFor(t *testing.T) {
	e := newEnv(t)
	orgKey := e.newKey(t)
	if _, err := e.kms.CreateAlias(t.Context(), &kms.CreateAliasInput{AliasName: aws.String(e.prefix + "org-own"), TargetKeyId: aws.String(orgKey)}); err != nil {
		t.Fatal(err)
	}
	plainStore := e.store(t, nil)
	creating := e.store(t, func(c *keys.Config) { c.CreateOrgKeys = true; c.DefaultKeyID = "" })
	noDefault := e.store(t, func(c *keys.Config) { c.DefaultKeyID = ""; c.CreateOrgKeys = true })
	ctx := t.Context()

	if got, err := plainStore.KeyFor(ctx, "org-own"); err != nil || got != orgKey {
		t.Errorf("org with an alias: %q, %v; want its key %s", got, err, orgKey)
	}
	if got, err := plainStore.KeyFor(ctx, "org-plain"); err != nil || got != e.defaultKey {
		t.Errorf("org without an alias: %q, %v; want the default key", got, err)
	}
	created, err := creating.KeyFor(ctx, "org-new")
	if err != nil || created == "" || created == e.defaultKey || created == orgKey {
		t.Fatalf("CreateOrgKeys: %q, %v", created, err)
	}
	out, err := e.kms.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(e.prefix + "org-new")})
	if err != nil || aws.ToString(out.KeyMetadata.Arn) != created {
		t.Fatalf("alias of the created key: %v", err)
	}
	if again, err := creating.KeyFor(ctx, "org-new"); err != nil || again != created {
		t.Fatalf("second KeyFor: %q, %v; want the created key", again, err)
	}
	// Data keys of that organisation are wrapped under its own key.
	if _, rec, err := creating.Create(ctx, "org-new", "b-1"); err != nil || rec.KMSKeyID != created {
		t.Fatalf("Create under the org key: %+v, %v", rec, err)
	}
	if _, err := noDefault.KeyFor(ctx, "bad/org"); err == nil {
		t.Error("org id unfit for an alias, no default: no error")
	}
	if got, err := plainStore.KeyFor(ctx, "bad:org"); err != nil || got != e.defaultKey {
		t.Errorf("org id unfit for an alias, with default: %q, %v", got, err)
	}
	// Neither an alias, nor key creation, nor a default key: an error.
	strict := e.store(t, func(c *keys.Config) { c.DefaultKeyID = "" })
	if got, err := strict.KeyFor(ctx, "org-plain"); err == nil {
		t.Errorf("no key at all: %q, want an error", got)
	}
	if _, _, err := strict.Create(ctx, "org-plain", "b-2"); err == nil {
		t.Error("Create with no key at all: no error")
	}
	if got, err := strict.KeyFor(ctx, "org-own"); err != nil || got != orgKey {
		t.Errorf("org with an alias, no default: %q, %v", got, err)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (keys.Config{}).Validate(); err == nil || !strings.Contains(err.Error(), "KEYS_TABLE") {
		t.Errorf("Validate() = %v, want it to name KEYS_TABLE", err)
	}
	if err := (keys.Config{Table: "t", DefaultKeyID: "k", AliasPrefix: "ws191/"}).Validate(); err == nil ||
		!strings.Contains(err.Error(), "KMS_KEY_ALIAS_PREFIX") {
		t.Errorf("bad prefix: %v", err)
	}
	for _, c := range []keys.Config{{Table: "t"}, {Table: "t", CreateOrgKeys: true}, {Table: "t", DefaultKeyID: "alias/x"}} {
		if err := c.Validate(); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
	}
	if _, err := keys.New(keys.Config{Table: "t"}, nil, nil); err == nil {
		t.Error("New without clients: no error")
	}
}

func TestTableInput(t *testing.T) {
	in := keys.TableInput("ws191-keys")
	if aws.ToString(in.TableName) != "ws191-keys" || len(in.KeySchema) != 1 ||
		aws.ToString(in.KeySchema[0].AttributeName) != keys.AttrBackupID || in.KeySchema[0].KeyType != types.KeyTypeHash ||
		in.BillingMode != types.BillingModePayPerRequest {
		t.Fatalf("TableInput = %+v", in)
	}
}

func TestRecordLogValueOmitsWrappedKey(t *testing.T) {
	var buf strings.Builder
	rec := keys.Record{BackupID: "b-1", OrganizationID: "org-1", KMSKeyID: "arn:k", Wrapped: []byte("WRAPPED-BLOB")}
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("key", "record", rec)
	if strings.Contains(buf.String(), "WRAPPED") || strings.Contains(buf.String(), base64.StdEncoding.EncodeToString(rec.Wrapped)) ||
		!strings.Contains(buf.String(), `"backup_id":"b-1"`) {
		t.Fatalf("log line %s", buf.String())
	}
}
