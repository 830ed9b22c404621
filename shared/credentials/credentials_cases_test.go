package credentials_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/wedsync/backup-replication/infra/emulator"
	"github.com/wedsync/backup-replication/shared/credentials"
	"github.com/wedsync/backup-replication/shared/credentials/credtest"
	"github.com/wedsync/backup-replication/shared/secret"
	"github.com/wedsync/backup-replication/shared/storage"
	"github.com/wedsync/backup-replication/shared/storage/s3"
	"github.com/wedsync/backup-replication/shared/storage/supabase"
)

// bucketSetup is newS3Setup's world with the bucket's name kept, for
// server-side copies within it.
type bucketSetup struct {
	*s3Setup
	bucket string
}

func newBucketSetup(t *testing.T) *bucketSetup {
	t.Helper()
	w := newWorld(t)
	bucket := w.Bucket()
	user, key1 := w.User(bucket)
	rec, err := credtest.S3Recorder(side.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rec.Close)
	s := &s3Setup{w: w, user: user, key1: key1, arn: w.Secret(key1.Secret()), rec: rec, logs: &credtest.Logs{}}
	s.loader = w.loader(nil)
	s.p, err = credentials.Provider(t.Context(), "s3", s.arn, s.loader, credentials.S3(s3.Config{Name: "s3",
		Bucket: bucket, Region: emulator.MotoRegion, Endpoint: rec.URL, UsePathStyle: true}, side.Admin(), nil), s.logs.Logger())
	if err != nil {
		t.Fatal(err)
	}
	return &bucketSetup{s3Setup: s, bucket: bucket}
}

// rotate makes a new key current and deletes the one in use, as a
// rotation with immediate retirement does; it returns the new key.
func (b *bucketSetup) rotate(old credentials.S3Creds) credentials.S3Creds {
	next := b.w.NewKey(b.user)
	b.w.Promote(b.arn, b.w.Stage(b.arn, next.Secret(), credentials.StagePending))
	b.w.DeleteKey(b.user, old.AccessKeyID)
	return next
}

// refusedThenAccepted checks the requests after mark: the first refused
// with old, the rest signed with next and accepted.
func (b *bucketSetup) refusedThenAccepted(t *testing.T, mark int, old, next credentials.S3Creds) {
	t.Helper()
	after := since(b.rec.Requests(), mark)
	if len(after) < 2 || after[0].Credential != old.AccessKeyID || after[0].Status != 403 {
		t.Fatalf("want the first request refused with the retired key:%s", describe(after))
	}
	for _, r := range after[1:] {
		if r.Credential != next.AccessKeyID || r.Status >= 400 {
			t.Fatalf("after the refusal every request should use the new key and succeed:%s", describe(after))
		}
	}
}

// memSource is a landing object that can be reopened at any offset.
type memSource []byte

func (m memSource) Open(_ context.Context, off int64) (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(m[off:])), nil
}
func (m memSource) Size() int64 { return int64(len(m)) }

// TestAbilitiesSurviveRotation: a server-side copy, a resumable upload and
// a listing each started with a key that was just retired are refused
// once, then done with the new key, and their results are complete: the
// copy exists with the source's size, the upload is stored, the listing
// names every object exactly once.
func TestAbilitiesSurviveRotation(t *testing.T) {
	b := newBucketSetup(t)
	ctx := t.Context()
	src := credtest.RandomBytes(3000)
	if _, err := b.p.Put(ctx, "landing/src.bin", bytes.NewReader(src), int64(len(src)), storage.PutOptions{SHA256: sha(string(src))}); err != nil {
		t.Fatal(err)
	}

	key2 := b.rotate(b.key1)
	copier, ok := storage.As[storage.Copier](b.p)
	if !ok {
		t.Fatal("no Copier through the credentials layer")
	}
	mark := len(b.rec.Requests())
	info, err := copier.Copy(ctx, storage.Locator{Endpoint: b.rec.URL, Bucket: b.bucket, Key: "landing/src.bin", Size: int64(len(src))},
		"copies/dst.bin", storage.PutOptions{SHA256: sha(string(src))})
	if err != nil || info.Size != int64(len(src)) {
		t.Fatalf("Copy after rotation: %+v, %v", info, err)
	}
	b.refusedThenAccepted(t, mark, b.key1, key2)

	key3 := b.rotate(key2)
	resumer, ok := storage.As[storage.Resumer](b.p)
	if !ok {
		t.Fatal("no Resumer through the credentials layer")
	}
	var states []string
	data := credtest.RandomBytes(5000)
	mark = len(b.rec.Requests())
	if _, err := resumer.PutResumable(ctx, "resumed/up.bin", memSource(data), storage.PutOptions{SHA256: sha(string(data))}, "",
		func(s string) error { states = append(states, s); return nil }); err != nil {
		t.Fatalf("PutResumable after rotation: %v", err)
	}
	b.refusedThenAccepted(t, mark, key2, key3)
	if st, err := b.p.Stat(ctx, "resumed/up.bin"); err != nil || st.Size != int64(len(data)) {
		t.Fatalf("the resumable upload is not stored: %+v, %v", st, err)
	}
	if len(states) > 0 && states[len(states)-1] != "" {
		t.Errorf("the caller's last saved state is %q, want cleared", states[len(states)-1])
	}

	key4 := b.rotate(key3)
	mark = len(b.rec.Requests())
	var listed []string
	if err := b.p.List(ctx, "", func(o storage.ObjectInfo) error { listed = append(listed, o.Key); return nil }); err != nil {
		t.Fatalf("List after rotation: %v", err)
	}
	b.refusedThenAccepted(t, mark, key3, key4)
	slices.Sort(listed)
	if want := []string{"copies/dst.bin", "landing/src.bin", "resumed/up.bin"}; !slices.Equal(listed, want) {
		t.Fatalf("List = %v, want %v, each once", listed, want)
	}
	if b.p.Name() != "s3" {
		t.Errorf("Name() = %q", b.p.Name())
	}
}

// TestListStopsWithTheCallersError: an error returned by the caller's
// function ends the listing and comes back unchanged, not classified.
func TestListStopsWithTheCallersError(t *testing.T) {
	b := newBucketSetup(t)
	ctx := t.Context()
	for _, k := range []string{"a/1", "a/2", "a/3"} {
		if _, err := b.p.Put(ctx, k, strings.NewReader("x"), 1, storage.PutOptions{SHA256: sha("x")}); err != nil {
			t.Fatal(err)
		}
	}
	stop := errors.New("enough")
	calls := 0
	// A prefix without "/": moto under IAM enforcement miscomputes the
	// signature of an encoded "/" in the query.
	err := b.p.List(ctx, "a", func(storage.ObjectInfo) error { calls++; return stop })
	if err != stop || calls != 1 {
		t.Fatalf("List = %v after %d calls, want the caller's own error after 1", err, calls)
	}
}

// TestProviderRefusesToStartWithoutUsableCredentials: a missing loader,
// build or secret id, a secret that does not exist, a secret of the wrong
// shape and a Supabase secret with no project URL anywhere all fail at
// start, naming the provider where it applies, never the secret's value.
func TestProviderRefusesToStartWithoutUsableCredentials(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	loader := w.loader(nil)
	s3Build := credentials.S3(s3.Config{Name: "s3", Bucket: "b", Region: emulator.MotoRegion, Endpoint: side.URL(), UsePathStyle: true}, side.Admin(), nil)
	const leaked = "do-not-print-this-value"
	cases := []struct {
		name   string
		loader *credentials.Loader
		id     string
		build  credentials.Build
		want   string
	}{
		{"no loader", nil, "x", s3Build, "needs a loader"},
		{"no build", loader, "x", nil, "needs a loader"},
		{"no secret id", loader, "", s3Build, "needs a loader"},
		{"secret missing", loader, "arn:aws:secretsmanager:" + emulator.MotoRegion + ":123456789012:secret:absent-" + credtest.RandomHex(3), s3Build, "provider s3"},
		{"not an s3 secret", loader, w.Secret(`{"serviceKey":"` + leaked + `"}`), s3Build, "neither accessKeyId"},
		{"supabase without a url", loader, w.Secret(credentials.SupabaseCreds{ServiceKey: leaked}.Secret()),
			credentials.Supabase(supabase.Config{Name: "supabase", Bucket: "primary"}, nil), "no project URL"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := credentials.Provider(ctx, "s3", c.id, c.loader, c.build, nil)
			if err == nil || p != nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Provider = %v, %v; want an error saying %q", p, err, c.want)
			}
			if strings.Contains(err.Error(), leaked) {
				t.Fatalf("the error quotes the secret: %v", err)
			}
		})
	}
}

// TestS3RoleSecret: a secret naming a role (no key pair) builds a provider
// that assumes the role with the function's own credentials and can then
// read and write the bucket the role is allowed.
func TestS3RoleSecret(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	bucket := w.Bucket()
	arn := w.Secret(credentials.S3Creds{RoleARN: w.Role(bucket), ExternalID: "wedsync"}.Secret())
	p, err := credentials.Provider(ctx, "s3", arn, w.loader(nil), credentials.S3(s3.Config{Name: "s3", Bucket: bucket,
		Region: emulator.MotoRegion, Endpoint: side.URL(), UsePathStyle: true}, side.Admin(), nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := credtest.RoundTrip(ctx, p, "role/object.bin", credtest.RandomBytes(1500)); err != nil {
		t.Fatalf("through the assumed role: %v", err)
	}
}

// TestCredentialsNeverPrint: a GCS key and a secret version logged through
// slog show which account, key or version they are, never key material.
func TestCredentialsNeverPrint(t *testing.T) {
	const pem = "-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBg\\n-----END PRIVATE KEY-----\\n"
	file := secret.Secret(`{"type":"service_account","client_email":"replicator@p.iam.gserviceaccount.com","private_key_id":"k123","private_key":"` + pem + `"}`)
	c, err := credentials.ParseGCS(file)
	if err != nil {
		t.Fatal(err)
	}
	if c.Secret() != file {
		t.Error("GCSCreds.Secret() is not the key file it was read from")
	}
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	log.Info("gcs", "creds", c)
	log.Info("version", "v", credentials.Version{SecretID: "arn:x", VersionID: "v-1", Stage: credentials.StageCurrent, Value: file})
	out := buf.String()
	for _, want := range []string{"replicator@p.iam.gserviceaccount.com", "k123", "v-1", credentials.StageCurrent} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q: %s", want, out)
		}
	}
	if strings.Contains(out, "PRIVATE KEY") || strings.Contains(out, "MIIEvQ") {
		t.Fatalf("key material in the log: %s", out)
	}
	var line map[string]any
	if err := json.Unmarshal(bytes.SplitN(buf.Bytes(), []byte("\n"), 2)[0], &line); err != nil {
		t.Fatalf("log line is not JSON: %v", err)
	}
}
