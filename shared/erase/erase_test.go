package erase_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/wedsync/backup-replication/infra/emulator"
	"github.com/wedsync/backup-replication/infra/faultproxy"
	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/erase"
	"github.com/wedsync/backup-replication/shared/erase/erasetest"
	"github.com/wedsync/backup-replication/shared/keys"
	"github.com/wedsync/backup-replication/shared/seal"
	"github.com/wedsync/backup-replication/shared/storage"
	s3p "github.com/wedsync/backup-replication/shared/storage/s3"
)

func TestMain(m *testing.M) { os.Exit(emulator.RunSharingMoto(m)) }

// eraser builds an Eraser over f, logging JSON into the returned buffer.
func eraser(t *testing.T, f *erasetest.Fleet) (*erase.Eraser, *bytes.Buffer) {
	t.Helper()
	logs := &bytes.Buffer{}
	e, err := erase.New(erase.Deps{Catalog: f.Catalog, Keys: f.Keys, Providers: f.Providers, Landing: f.Landing,
		Logger: slog.New(slog.NewJSONHandler(&syncWriter{w: logs}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return e, logs
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// byProvider indexes a receipt's copies by provider and key.
func byProvider(r *catalog.Erasure) map[string]catalog.ErasedCopy {
	out := map[string]catalog.ErasedCopy{}
	for _, c := range r.Copies {
		name := c.Provider
		if c.Provider == erase.LandingName {
			name += ":" + strings.SplitN(c.Key, "/", 2)[0]
		}
		out[name] = c
	}
	return out
}

func TestEraseEveryCopy(t *testing.T) {
	f := erasetest.New(t, emulator.SharedMoto(t), erasetest.Options{})
	ctx := t.Context()
	st := f.Put(t, "org1", []byte("guest list: the Smiths, table 4"), time.Time{}, "")
	other := f.Put(t, "org1", []byte("another backup"), time.Time{}, "")
	b := st.Backup
	// The plaintext upload is still in the landing bucket (SEAL_KEEP_PLAINTEXT).
	if _, err := f.Landing.Put(ctx, b.LandingKey, bytes.NewReader(st.Plaintext), b.Size, putOpts(b)); err != nil {
		t.Fatal(err)
	}
	e, logs := eraser(t, f)
	got, err := e.Erase(ctx, erase.Request{OrganizationID: "org1", BackupID: b.ID, By: "user-1", Reason: "requested by the organization"})
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != catalog.StatusErased || !erase.Complete(got) || got.Erasure.Key != catalog.KeyDestroyed {
		t.Fatalf("after erasure: status %s, receipt %+v", got.Status, got.Erasure)
	}
	r := byProvider(got.Erasure)
	for _, name := range []string{"supabase", "s3", "gcs", "landing:backups", "landing:sealed"} {
		c, ok := r[name]
		if !ok {
			t.Errorf("receipt lists no %s: %+v", name, got.Erasure.Copies)
			continue
		}
		if c.Outcome != catalog.ErasedDeleted || c.DeletedAt == nil || !c.VerifiedAbsent {
			t.Errorf("%s: %+v, want deleted and verified absent", name, c)
		}
	}
	if len(got.Erasure.Copies) != 5 {
		t.Errorf("receipt has %d copies, want 5", len(got.Erasure.Copies))
	}
	// No provider returns the object, and the key cannot be opened.
	for name, p := range f.Providers {
		if erasetest.Present(t, p, b.LandingKey) {
			t.Errorf("%s still holds the copy", name)
		}
		if !erasetest.Present(t, p, other.Backup.LandingKey) {
			t.Errorf("%s lost another backup's copy", name)
		}
	}
	if erasetest.Present(t, f.Landing, b.LandingKey) || erasetest.Present(t, f.Landing, b.Seal.Key) {
		t.Error("the landing bucket still holds the backup")
	}
	if _, _, err := f.Keys.Open(ctx, "org1", b.ID); !errors.Is(err, keys.ErrShredded) {
		t.Errorf("key after erasure: %v, want ErrShredded", err)
	}
	if _, _, err := f.Keys.Open(ctx, "org1", other.Backup.ID); err != nil {
		t.Errorf("another backup's key: %v", err)
	}
	reps, err := f.Catalog.Replicas(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, rep := range reps {
		if rep.State != catalog.ReplicaDeleted {
			t.Errorf("replica %s is %s, want DELETED", rep.Provider, rep.State)
		}
	}
	// The receipt is stored on the record.
	stored, err := f.Catalog.GetBackup(ctx, b.ID)
	if err != nil || stored.Erasure == nil || len(stored.Erasure.Copies) != 5 || stored.Status != catalog.StatusErased {
		t.Fatalf("stored: %+v %v", stored, err)
	}
	// Once audit line: who, org, backup, outcomes; never key material.
	line := auditLine(t, logs, b.ID)
	for _, want := range []string{`"requested_by":"user-1"`, `"organization_id":"org1"`, `gcs=deleted`, `s3=deleted`, `supabase=deleted`} {
		if !strings.Contains(line, want) {
			t.Errorf("audit line lacks %s: %s", want, line)
		}
	}
	for _, bad := range []string{"wrapped", "dataKey", "http://"} {
		if strings.Contains(logs.String(), bad) {
			t.Errorf("logs mention %q: %s", bad, logs.String())
		}
	}

	// Idempotent: erasing again returns the stored receipt, unchanged.
	again, err := e.Erase(ctx, erase.Request{OrganizationID: "org1", BackupID: b.ID, By: "user-2", Reason: "again"})
	if err != nil {
		t.Fatal(err)
	}
	j1, _ := json.Marshal(stored.Erasure)
	j2, _ := json.Marshal(again.Erasure)
	if string(j1) != string(j2) || again.Version != stored.Version {
		t.Errorf("second erasure changed the receipt:\n%s\n%s", j1, j2)
	}
}

func TestEraseOtherOrganizationRefused(t *testing.T) {
	f := erasetest.New(t, emulator.SharedMoto(t), erasetest.Options{})
	st := f.Put(t, "org1", []byte("contract"), time.Time{}, "")
	e, _ := eraser(t, f)
	for _, req := range []erase.Request{
		{OrganizationID: "org2", BackupID: st.Backup.ID, By: "user-org2"},
		{OrganizationID: "org2", BackupID: "nosuchbackup", By: "user-org2"},
	} {
		if _, err := e.Erase(t.Context(), req); !errors.Is(err, erase.ErrNotFound) {
			t.Errorf("%+v: %v, want ErrNotFound", req, err)
		}
	}
	if _, _, err := f.Keys.Open(t.Context(), "org1", st.Backup.ID); err != nil {
		t.Errorf("org1's key after org2's attempt: %v", err)
	}
	for name, p := range f.Providers {
		if !erasetest.Present(t, p, st.Backup.LandingKey) {
			t.Errorf("%s lost org1's copy", name)
		}
	}
}

func TestEraseLockedCopies(t *testing.T) {
	f := erasetest.New(t, emulator.SharedMoto(t), erasetest.Options{S3Lock: 48 * time.Hour, GCSRetention: 72 * time.Hour})
	ctx := t.Context()
	st := f.Put(t, "org1", []byte("photos of the first dance"), time.Time{}, "")
	b := st.Backup
	e, logs := eraser(t, f)
	got, err := e.Erase(ctx, erase.Request{OrganizationID: "org1", BackupID: b.ID, By: "user-1", Reason: "requested by the organization"})
	if err != nil {
		t.Fatal(err)
	}
	if !erase.Complete(got) {
		t.Fatalf("erasure with locked copies not complete: %+v", got.Erasure)
	}
	r := byProvider(got.Erasure)
	now := time.Now()
	for name, min := range map[string]time.Duration{"s3": 47 * time.Hour, "gcs": 71 * time.Hour} {
		c := r[name]
		if c.Outcome != catalog.ErasedRetained || c.RetainedUntil == nil || c.RetainedUntil.Before(now.Add(min)) || !c.Unreadable ||
			!strings.Contains(c.Detail, "retained under lock until "+c.RetainedUntil.Format(time.DateOnly)+" (unreadable)") {
			t.Errorf("%s: %+v, want retained under lock for about %s, unreadable", name, c, min)
		}
	}
	if c := r["supabase"]; c.Outcome != catalog.ErasedDeleted || !c.VerifiedAbsent {
		t.Errorf("supabase: %+v", c)
	}
	// Reading the key on S3 answers not found (a delete marker over the
	// locked version); GCS still serves its retained copy. Both are
	// ciphertext whose key is gone.
	if erasetest.Present(t, f.Providers["s3"], b.LandingKey) || !erasetest.Present(t, f.Providers["gcs"], b.LandingKey) {
		t.Error("after erasure with locks: s3 should read as absent, gcs should still hold its retained copy")
	}
	// The locked S3 version is still stored, but nothing can decrypt it.
	vs, err := f.S3.ListObjectVersions(ctx, &awss3.ListObjectVersionsInput{Bucket: aws.String(f.S3Bucket), Prefix: aws.String(b.LandingKey)})
	if err != nil || len(vs.Versions) != 1 {
		t.Fatalf("locked versions: %v %+v", err, vs)
	}
	obj, err := f.S3.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(f.S3Bucket), Key: aws.String(b.LandingKey), VersionId: vs.Versions[0].VersionId})
	if err != nil {
		t.Fatal(err)
	}
	locked, _ := io.ReadAll(obj.Body)
	obj.Body.Close()
	if !bytes.Equal(locked, st.Sealed) || bytes.Contains(locked, st.Plaintext) {
		t.Fatal("the locked copy is not the sealed bytes")
	}
	if _, _, err := f.Keys.Open(ctx, "org1", b.ID); !errors.Is(err, keys.ErrShredded) {
		t.Errorf("key after erasure: %v, want ErrShredded", err)
	}
	if !strings.Contains(auditLine(t, logs, b.ID), "s3=retained(until ") {
		t.Errorf("audit line does not say s3 is retained: %s", logs)
	}
	// The old key cannot be guessed back either: a wrong key fails.
	if _, rd, err := seal.Open(bytes.NewReader(locked), make([]byte, seal.KeySize)); err == nil {
		if _, err := io.ReadAll(rd); err == nil {
			t.Error("the locked copy opened with a zero key")
		}
	}
}

func TestEraseCarriesOnAfterAnOutage(t *testing.T) {
	f := erasetest.New(t, emulator.SharedMoto(t), erasetest.Options{SupabaseProxy: true})
	ctx := t.Context()
	st := f.Put(t, "org1", []byte("invoice 2031"), time.Time{}, "")
	e, _ := eraser(t, f)
	if err := f.SupabaseProxy.Set(faultproxy.Fault{Mode: faultproxy.Error5xx}); err != nil {
		t.Fatal(err)
	}
	first, err := e.Erase(ctx, erase.Request{OrganizationID: "org1", BackupID: st.Backup.ID, By: "user-1", Reason: "request"})
	if err != nil {
		t.Fatal(err)
	}
	r := byProvider(first.Erasure)
	if erase.Complete(first) || first.Status != catalog.StatusErased || r["supabase"].Outcome != catalog.ErasedFailed ||
		r["s3"].Outcome != catalog.ErasedDeleted || r["gcs"].Outcome != catalog.ErasedDeleted {
		t.Fatalf("during the outage: %+v", first.Erasure)
	}
	if _, _, err := f.Keys.Open(ctx, "org1", st.Backup.ID); !errors.Is(err, keys.ErrShredded) {
		t.Errorf("the key survived the outage: %v", err)
	}
	f.SupabaseProxy.Pass()
	second, err := e.Erase(ctx, erase.Request{OrganizationID: "org1", BackupID: st.Backup.ID, By: "user-1", Reason: "request"})
	if err != nil {
		t.Fatal(err)
	}
	r2 := byProvider(second.Erasure)
	if !erase.Complete(second) || r2["supabase"].Outcome != catalog.ErasedDeleted || !r2["supabase"].VerifiedAbsent {
		t.Fatalf("after the outage: %+v", second.Erasure)
	}
	if *r2["s3"].DeletedAt != *r["s3"].DeletedAt {
		t.Error("the copies finished in the first attempt were erased again")
	}
	if erasetest.Present(t, f.Providers["supabase"], st.Backup.LandingKey) {
		t.Error("supabase still holds the copy")
	}
}

// auditLine returns the audit log line of backup id.
func auditLine(t *testing.T, logs *bytes.Buffer, id string) string {
	t.Helper()
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, `"msg":"backup erased"`) && strings.Contains(l, id) {
			return l
		}
	}
	t.Fatalf("no audit line for %s in:\n%s", id, logs)
	return ""
}

func putOpts(b catalog.Backup) storage.PutOptions {
	return storage.PutOptions{SHA256: b.SHA256, ContentType: b.ContentType}
}

// TestEraseWhenListingVersionsIsRefused: a provider whose credentials may
// not list versions (403 on ListObjectVersions) still has its copy deleted,
// and the receipt says older versions were not checked.
func TestEraseWhenListingVersionsIsRefused(t *testing.T) {
	m := emulator.SharedMoto(t)
	f := erasetest.New(t, m, erasetest.Options{})
	proxy, err := faultproxy.Start(m.URL, faultproxy.Options{Flavor: faultproxy.S3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	cfg := f.S3Config("s3", f.S3Bucket)
	cfg.Endpoint = proxy.URL
	p, err := s3p.NewWithClient(cfg, awss3.NewFromConfig(f.AWS, s3p.ClientOptions(cfg)), nil)
	if err != nil {
		t.Fatal(err)
	}
	f.Providers["s3"] = p
	st := f.Put(t, "org1", []byte("table plan"), time.Time{}, "")
	if err := proxy.Set(faultproxy.Fault{Mode: faultproxy.Error5xx, Status: 403, Path: `[?&]versions`}); err != nil {
		t.Fatal(err)
	}
	e, _ := eraser(t, f)
	got, err := e.Erase(t.Context(), erase.Request{OrganizationID: "org1", BackupID: st.Backup.ID, By: "user-1", Reason: "request"})
	if err != nil {
		t.Fatal(err)
	}
	c := byProvider(got.Erasure)["s3"]
	if !erase.Complete(got) || c.Outcome != catalog.ErasedDeleted || !c.VerifiedAbsent || !strings.Contains(c.Detail, "older versions not checked") {
		t.Errorf("s3 without version listing: %+v", c)
	}
	if proxy.Injected() == 0 {
		t.Error("the version listing was never refused")
	}
	if erasetest.Present(t, p, st.Backup.LandingKey) {
		t.Error("s3 still holds the copy")
	}
}
