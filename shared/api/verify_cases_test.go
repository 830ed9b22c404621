package api_test

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/wedsync/backup-replication/shared/api"
	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/storage"
	"github.com/wedsync/backup-replication/shared/storage/gcs"
)

// TestVerifyTellsDamageFromOutage: re-reading copies, a truncated copy is
// a size mismatch and is marked FAILED; a copy on a provider that cannot
// be reached is a read failure (transient) and stays VERIFIED; a copy on a
// provider this API has no client for is reported as not configured and
// left alone; an ERASED backup cannot be verified; and a backup of another
// organisation is 404.
func TestVerifyTellsDamageFromOutage(t *testing.T) {
	f := newFleet(t)
	unreachable, err := gcs.New(t.Context(), gcs.Config{Bucket: "offsite", Endpoint: "http://127.0.0.1:1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unreachable.Close() })
	providers := map[string]storage.Provider{"supabase": f.providers["supabase"], "s3": f.providers["s3"], "gcs": unreachable}
	e := newEnv(t, func(c *api.Config, d *api.Deps) {
		d.Providers, d.Signers, d.Health = providers, f.signers, health{}
		c.VerifyTimeout = 20 * time.Second
	})
	data := bytes.Repeat([]byte("Menu tasting notes; "), 500)
	b := e.create("org1", createReq("org1", "menu.txt", data), http.StatusCreated).Backup
	e.landAndReplicate(f, b, data, catalog.StatusProtected, "supabase", "s3", "gcs")
	now := time.Now().UTC()
	if _, err := e.store.PutReplica(t.Context(), catalog.Replica{BackupID: b.ID, Provider: "s3-standby", State: catalog.ReplicaVerified,
		Key: b.LandingKey, Bytes: int64(len(data)), VerifiedSHA256: b.SHA256, VerifiedAt: &now}); err != nil {
		t.Fatal(err)
	}
	truncated := data[:len(data)-7]
	if _, err := f.s3.PutObject(t.Context(), &awss3.PutObjectInput{Bucket: aws.String(f.s3Bucket), Key: aws.String(b.LandingKey),
		Body: bytes.NewReader(truncated), ContentLength: aws.Int64(int64(len(truncated)))}); err != nil {
		t.Fatal(err)
	}

	r := e.call("POST", "/backups/"+b.ID+"/verify", "org1", nil)
	var rep api.VerifyReport
	r.decode(t, &rep)
	if r.Status != 200 {
		t.Fatalf("verify: %d %s", r.Status, r.Body)
	}
	got := map[string]api.CopyCheck{}
	for _, c := range rep.Copies {
		got[c.Provider] = c
	}
	cases := []struct {
		provider, err, kind string
		ok, marked          bool
		state               catalog.ReplicaState
	}{
		{"supabase", "", "", true, false, catalog.ReplicaVerified},
		{"s3", api.VerifySizeMismatch, "", false, true, catalog.ReplicaFailed},
		{"gcs", api.VerifyReadFailed, storage.Transient.String(), false, false, catalog.ReplicaVerified},
		{"s3-standby", api.VerifyNotConfigured, "", false, false, catalog.ReplicaVerified},
	}
	for _, c := range cases {
		t.Run(c.provider, func(t *testing.T) {
			g, ok := got[c.provider]
			if !ok || g.OK != c.ok || g.Error != c.err || g.Kind != c.kind || g.MarkedFailed != c.marked {
				t.Fatalf("check %+v, want ok=%v error=%q kind=%q marked=%v", g, c.ok, c.err, c.kind, c.marked)
			}
			stored, err := e.store.GetReplica(t.Context(), b.ID, c.provider)
			if err != nil || stored.State != c.state {
				t.Fatalf("stored replica state %s (%v), want %s", stored.State, err, c.state)
			}
		})
	}
	if got["s3"].Bytes != int64(len(truncated)) {
		t.Errorf("size mismatch reports %d bytes, want %d read", got["s3"].Bytes, len(truncated))
	}

	if r := e.call("POST", "/backups/"+b.ID+"/verify", "org2", nil); r.Status != 404 || r.code() != api.CodeNotFound {
		t.Errorf("verify as another organisation: %d %s, want 404", r.Status, r.Body)
	}
	cur, _ := e.store.GetBackup(t.Context(), b.ID)
	cur.Status = catalog.StatusErased
	if _, err := e.store.UpdateBackup(t.Context(), cur); err != nil {
		t.Fatal(err)
	}
	if r := e.call("POST", "/backups/"+b.ID+"/verify", "org1", nil); r.Status != 409 || r.code() != api.CodeNotLanded {
		t.Errorf("verify of an erased backup: %d %s, want 409 not_landed", r.Status, r.Body)
	}
}
