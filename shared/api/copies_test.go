package api_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/wedsync/backup-replication/infra/emulator"
	"github.com/wedsync/backup-replication/shared/api"
	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/secret"
	"github.com/wedsync/backup-replication/shared/storage"
	"github.com/wedsync/backup-replication/shared/storage/gcs"
	s3p "github.com/wedsync/backup-replication/shared/storage/s3"
	"github.com/wedsync/backup-replication/shared/storage/supabase"
)

// fleet is the three production providers, each on its emulator, with the
// clients a test needs to change their copies behind the system's back.
type fleet struct {
	providers map[string]storage.Provider
	signers   map[string]api.Signer
	s3        *awss3.Client
	s3Bucket  string
	gcs       *emulator.GCS
	gcsBucket string
}

func newFleet(t *testing.T) *fleet {
	t.Helper()
	m := startMoto(t)
	ctx := t.Context()
	f := &fleet{providers: map[string]storage.Provider{}, signers: map[string]api.Signer{}}

	sb, err := emulator.StartSupabase(t.TempDir())
	emulator.Require(t, err)
	t.Cleanup(func() { sb.Close() })
	sp, err := supabase.New(supabase.Config{URL: sb.URL, ServiceKey: secret.Secret(sb.ServiceKey), Bucket: "backups"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := sp.EnsureBucket(ctx); err != nil {
		t.Fatal(err)
	}
	f.providers["supabase"] = sp
	f.signers["supabase"] = api.SupabaseSigner(sb.URL, secret.Secret(sb.ServiceKey), "backups", nil)

	f.s3Bucket = fmt.Sprintf("api-replica-%d", seq.Add(1))
	cfg := s3p.Config{Bucket: f.s3Bucket, Region: emulator.MotoRegion, Endpoint: m.URL, UsePathStyle: true,
		AccessKeyID: emulator.MotoAccessKeyID, SecretAccessKey: secret.Secret(emulator.MotoSecretAccessKey)}
	awsCfg, _ := m.AWSConfig(ctx)
	f.s3 = awss3.NewFromConfig(awsCfg, s3p.ClientOptions(cfg))
	if _, err := f.s3.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(f.s3Bucket)}); err != nil {
		t.Fatal(err)
	}
	p3, err := s3p.NewWithClient(cfg, f.s3, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.providers["s3"] = p3
	f.signers["s3"] = api.S3Signer(f.s3, f.s3Bucket)

	f.gcs, err = emulator.StartGCS()
	emulator.Require(t, err)
	t.Cleanup(func() { f.gcs.Close() })
	f.gcsBucket = "offsite"
	if err := f.gcs.CreateBucket(f.gcsBucket); err != nil {
		t.Fatal(err)
	}
	gp, err := gcs.New(ctx, gcs.Config{Bucket: f.gcsBucket, Endpoint: f.gcs.URL}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gp.Close() })
	f.providers["gcs"] = gp
	f.signers["gcs"] = api.GCSSigner(f.gcs.URL, "", f.gcsBucket)
	return f
}

// landAndReplicate does what the landing upload and the replicate function
// do: it puts data on each named provider through the provider and
// records a VERIFIED replica, then marks the backup landed with status.
func (e *env) landAndReplicate(f *fleet, b catalog.Backup, data []byte, status catalog.Status, on ...string) {
	e.t.Helper()
	ctx := e.t.Context()
	now := time.Now().UTC()
	for _, name := range on {
		if _, err := f.providers[name].Put(ctx, b.LandingKey, bytes.NewReader(data), int64(len(data)),
			storage.PutOptions{SHA256: b.SHA256, ContentType: b.ContentType}); err != nil {
			e.t.Fatalf("put on %s: %v", name, err)
		}
		if _, err := e.store.PutReplica(ctx, catalog.Replica{BackupID: b.ID, Provider: name, State: catalog.ReplicaVerified,
			Key: b.LandingKey, Bytes: int64(len(data)), VerifiedSHA256: b.SHA256, Evidence: "sha256-readback",
			Attempts: 1, StartedAt: &now, VerifiedAt: &now, UpdatedAt: now}); err != nil {
			e.t.Fatal(err)
		}
	}
	cur, err := e.store.GetBackup(ctx, b.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	cur.Status, cur.LandedAt = status, &now
	if _, err := e.store.UpdateBackup(ctx, cur); err != nil {
		e.t.Fatal(err)
	}
}

// health is a HealthSource with fixed answers: the health function's
// records, as the API sees them.
type health map[string]api.ProviderHealth

func (h health) ProviderHealth(context.Context) (map[string]api.ProviderHealth, error) { return h, nil }

// fetch GETs a download URL as a browser would, with no credentials.
func fetch(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET download URL: %d %s", resp.StatusCode, b)
	}
	return b
}

func TestDownloadPicksVerifiedCopyInPolicyOrder(t *testing.T) {
	f := newFleet(t)
	h := health{}
	e := newEnv(t, func(_ *api.Config, d *api.Deps) { d.Providers, d.Signers, d.Health = f.providers, f.signers, h })
	data := []byte("Ceremony 14:00, photos 15:30, dinner 18:00 — the timeline of the Okafor–Lindqvist wedding")

	download := func(id string) (api.Download, reply) {
		r := e.call("GET", "/backups/"+id+"/download", "org1", nil)
		var d api.Download
		if r.Status == 200 {
			r.decode(t, &d)
		}
		return d, r
	}
	all := e.create("org1", createReq("org1", "timeline.pdf", data), http.StatusCreated).Backup
	e.landAndReplicate(f, all, data, catalog.StatusProtected, "gcs", "s3", "supabase")
	cases := []struct {
		name string
		down []string
		want string
	}{
		{"all verified: the primary", nil, "supabase"},
		{"primary down: the secondary", []string{"supabase"}, "s3"},
		{"primary and secondary down: offsite", []string{"supabase", "s3"}, "gcs"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clear(h)
			for _, n := range tc.down {
				h[n] = api.ProviderHealth{State: api.HealthDown}
			}
			d, r := download(all.ID)
			if r.Status != 200 || d.Provider != tc.want || d.SHA256 != all.SHA256 || d.ExpiresAt.IsZero() {
				t.Fatalf("download: %d %s, want %s", r.Status, r.Body, tc.want)
			}
			if got := fetch(t, d.URL); !bytes.Equal(got, data) {
				t.Fatalf("%s served %q", d.Provider, got)
			}
		})
	}
	clear(h)
	t.Run("skips a copy that is not verified", func(t *testing.T) {
		b := e.create("org1", createReq("org1", "guests.csv", data[:40]), http.StatusCreated).Backup
		e.landAndReplicate(f, b, data[:40], catalog.StatusAtRisk, "gcs")
		e.store.PutReplica(t.Context(), catalog.Replica{BackupID: b.ID, Provider: "supabase", State: catalog.ReplicaCopying, Key: b.LandingKey})
		if d, r := download(b.ID); r.Status != 200 || d.Provider != "gcs" || !bytes.Equal(fetch(t, d.URL), data[:40]) {
			t.Fatalf("download: %d %s, want gcs", r.Status, r.Body)
		}
	})
	t.Run("no verified copy", func(t *testing.T) {
		b := e.create("org1", createReq("org1", "invoice.pdf", []byte("inv")), http.StatusCreated).Backup
		if _, r := download(b.ID); r.Status != 409 || r.code() != api.CodeNoVerifiedCopy {
			t.Fatalf("download: %d %s", r.Status, r.Body)
		}
	})
	t.Run("verified copies only where nothing can sign", func(t *testing.T) {
		e2 := newEnv(t, func(_ *api.Config, d *api.Deps) {
			d.Providers = f.providers
			d.Signers = map[string]api.Signer{"supabase": f.signers["supabase"]}
		})
		b := e2.create("org1", createReq("org1", "vows.txt", []byte("vows")), http.StatusCreated).Backup
		e2.landAndReplicate(f, b, []byte("vows"), catalog.StatusAtRisk, "s3", "gcs")
		if r := e2.call("GET", "/backups/"+b.ID+"/download", "org1", nil); r.Status != 409 || r.code() != api.CodeNoDownloadableCopy {
			t.Fatalf("download: %d %s", r.Status, r.Body)
		}
	})
	if bytes.Contains(e.logs.Bytes(), []byte("X-Amz-Signature")) || bytes.Contains(e.logs.Bytes(), []byte("token=")) {
		t.Error("a signed URL appears in the logs")
	}
}

func TestVerifyDetectsAlteredCopy(t *testing.T) {
	f := newFleet(t)
	h := health{}
	e := newEnv(t, func(_ *api.Config, d *api.Deps) { d.Providers, d.Signers, d.Health = f.providers, f.signers, h })
	data := bytes.Repeat([]byte("Signed contract, page after page. "), 2000)
	b := e.create("org1", createReq("org1", "contract.pdf", data), http.StatusCreated).Backup
	e.landAndReplicate(f, b, data, catalog.StatusProtected, "supabase", "s3", "gcs")

	verify := func() api.VerifyReport {
		t.Helper()
		r := e.call("POST", "/backups/"+b.ID+"/verify", "org1", nil)
		if r.Status != 200 {
			t.Fatalf("verify: %d %s", r.Status, r.Body)
		}
		var rep api.VerifyReport
		r.decode(t, &rep)
		return rep
	}
	byProvider := func(rep api.VerifyReport) map[string]api.CopyCheck {
		m := map[string]api.CopyCheck{}
		for _, c := range rep.Copies {
			m[c.Provider] = c
		}
		return m
	}
	rep := verify()
	want := hex.EncodeToString(func() []byte { s := sha256.Sum256(data); return s[:] }())
	for _, name := range []string{"supabase", "s3", "gcs"} {
		c := byProvider(rep)[name]
		if !c.OK || c.SHA256 != want || c.Bytes != int64(len(data)) {
			t.Fatalf("intact copy on %s: %+v", name, c)
		}
	}
	if rep.Policy.Status != catalog.StatusProtected {
		t.Fatalf("policy after clean verify: %+v", rep.Policy)
	}

	// Someone flips a byte of the S3 copy directly in the bucket, and the
	// GCS copy disappears.
	altered := bytes.Clone(data)
	altered[1000] ^= 0x20
	if _, err := f.s3.PutObject(t.Context(), &awss3.PutObjectInput{Bucket: aws.String(f.s3Bucket), Key: aws.String(b.LandingKey),
		Body: bytes.NewReader(altered), ContentLength: aws.Int64(int64(len(altered))), ContentType: aws.String("application/zip")}); err != nil {
		t.Fatal(err)
	}
	if err := f.gcs.Server.Client().Bucket(f.gcsBucket).Object(b.LandingKey).Delete(t.Context()); err != nil {
		t.Fatal(err)
	}
	rep = verify()
	got := byProvider(rep)
	if c := got["supabase"]; !c.OK {
		t.Errorf("supabase copy: %+v", c)
	}
	if c := got["s3"]; c.OK || c.Error != api.VerifyMismatch || !c.MarkedFailed || c.SHA256 == want || c.Bytes != int64(len(data)) {
		t.Errorf("altered s3 copy: %+v", c)
	}
	if c := got["gcs"]; c.OK || c.Error != api.VerifyMissing || !c.MarkedFailed {
		t.Errorf("deleted gcs copy: %+v", c)
	}
	if rep.Policy.Status != catalog.StatusAtRisk {
		t.Errorf("policy after damage: %+v", rep.Policy)
	}
	var detail api.BackupDetail
	e.call("GET", "/backups/"+b.ID, "org1", nil).decode(t, &detail)
	if detail.Backup.Status != catalog.StatusAtRisk || detail.Backup.StatusReason == "" {
		t.Errorf("backup after damage: %+v", detail.Backup)
	}
	for _, r := range detail.Replicas {
		failed := r.Provider == "s3" || r.Provider == "gcs"
		if failed != (r.State == catalog.ReplicaFailed) || (failed && r.LastErrorKind != "integrity") {
			t.Errorf("replica %s: state %s, last error %q (%s)", r.Provider, r.State, r.LastError, r.LastErrorKind)
		}
	}
	// Downloads now avoid the damaged copies, and /status shows the risk.
	if r := e.call("GET", "/backups/"+b.ID+"/download", "org1", nil); r.Status != 200 || !bytes.Contains(r.Body, []byte(`"provider":"supabase"`)) {
		t.Errorf("download after damage: %d %s", r.Status, r.Body)
	}
	h["supabase"] = api.ProviderHealth{State: api.HealthDown}
	if r := e.call("GET", "/backups/"+b.ID+"/download", "org1", nil); r.Status != 409 || r.code() != api.CodeNoDownloadableCopy {
		t.Errorf("download with the only intact copy on a provider that is down: %d %s", r.Status, r.Body)
	}
	var st api.StatusReport
	e.call("GET", "/status", "org1", nil).decode(t, &st)
	if st.Counts[catalog.StatusAtRisk] != 1 || st.OldestAtRisk == nil || st.OldestAtRisk.ID != b.ID {
		t.Errorf("status: %+v", st)
	}
	if r := e.call("POST", "/backups/"+e.create("org1", createReq("org1", "new.zip", []byte("n")), 201).Backup.ID+"/verify", "org1", nil); r.Status != 409 || r.code() != api.CodeNotLanded {
		t.Errorf("verify before landing: %d %s", r.Status, r.Body)
	}
}

func TestValidateProviders(t *testing.T) {
	f := newFleet(t)
	e := newEnv(t, func(_ *api.Config, d *api.Deps) { d.Providers = f.providers })
	r := e.call("GET", "/providers/validate", "org1", nil)
	var out struct {
		OK        bool
		Providers []api.ProbeReport
	}
	r.decode(t, &out)
	if r.Status != 200 || !out.OK || len(out.Providers) != 3 {
		t.Fatalf("validate: %d %s", r.Status, r.Body)
	}
	// A provider whose bucket is gone fails at the first step, by kind.
	gone, err := gcs.New(t.Context(), gcs.Config{Bucket: "no-such-bucket", Endpoint: f.gcs.URL}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer gone.Close()
	e2 := newEnv(t, func(_ *api.Config, d *api.Deps) { d.Providers = map[string]storage.Provider{"gcs": gone} })
	e2.call("GET", "/providers/validate", "org1", nil).decode(t, &out)
	if out.OK || len(out.Providers) != 1 || out.Providers[0].OK || out.Providers[0].Step != "put" || out.Providers[0].Kind == "" {
		t.Fatalf("validate with a missing bucket: %+v", out)
	}
	if m := out.Providers[0].Message; !strings.Contains(m, "bucket does not exist") {
		t.Errorf("validate with a missing bucket: message %q does not say what to look at", m)
	}
}
