package api_test

import (
	"bytes"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/wedsync/backup-replication/infra/emulator"
	"github.com/wedsync/backup-replication/shared/api"
	"github.com/wedsync/backup-replication/shared/config"
	"github.com/wedsync/backup-replication/shared/erase/erasetest"
	"github.com/wedsync/backup-replication/shared/seal"
)

// TestWireSealedDownloadAndErasure builds the API from variables only, with
// KEYS_TABLE and KMS_KEY_ID set, and downloads, decrypts and erases a
// sealed backup through it.
func TestWireSealedDownloadAndErasure(t *testing.T) {
	f := erasetest.New(t, startMoto(t), erasetest.Options{})
	st := f.Put(t, "org1", []byte("the seating plan, sealed"), time.Time{}, "")
	vars := map[string]string{
		"AWS_REGION": emulator.MotoRegion, "AWS_ENDPOINT_URL": f.MotoURL, "LANDING_BUCKET": f.LandingBucket,
		"BACKUPS_TABLE": f.CatalogTables.BackupsTable, "REPLICAS_TABLE": f.CatalogTables.ReplicasTable,
		"SUPABASE_URL": f.SupabaseURL, "SUPABASE_BUCKET": "backups", "SUPABASE_SERVICE_KEY": f.Supabase.ServiceKey,
		"S3_REPLICA_BUCKET": f.S3Bucket, "S3_REPLICA_ACCESS_KEY_ID": emulator.MotoAccessKeyID,
		"S3_REPLICA_SECRET_ACCESS_KEY": emulator.MotoSecretAccessKey, "GCS_BUCKET": f.GCSBucket, "GCS_ENDPOINT": f.GCS.URL,
		"API_JWT_SECRET": string(testSecret), "API_JWT_ISSUER": testIssuer,
		"KEYS_TABLE": f.KeysConfig.Table, "KMS_KEY_ID": f.KeysConfig.DefaultKeyID,
	}
	cfg, err := config.LoadAPI(config.Map(vars))
	if err != nil {
		t.Fatal(err)
	}
	apiEnv, err := api.LoadEnv(config.Map(vars))
	if err != nil || apiEnv.Keys == nil || apiEnv.Keys.Table != vars["KEYS_TABLE"] {
		t.Fatalf("LoadEnv: %+v %v", apiEnv, err)
	}
	logs := &bytes.Buffer{}
	h, err := api.Wire(t.Context(), cfg, apiEnv, f.AWS, slog.New(slog.NewJSONHandler(&lockedWriter{w: logs}, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, srv: httptest.NewServer(h), h: h, logs: logs}
	t.Cleanup(e.srv.Close)

	var d api.Download
	if r := e.call("GET", "/backups/"+st.Backup.ID+"/download", "org1", nil); r.Status != 200 {
		t.Fatalf("download: %d %s", r.Status, r.Body)
	} else {
		r.decode(t, &d)
	}
	_, rd, err := seal.Open(bytes.NewReader(fetch(t, d.URL)), d.Sealed.DataKey)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(rd); err != nil || !bytes.Equal(got, st.Plaintext) {
		t.Fatalf("decrypted %q, %v", got, err)
	}
	r := e.call("DELETE", "/backups/"+st.Backup.ID, "org1", nil)
	var out api.ErasureResponse
	r.decode(t, &out)
	if r.Status != 200 || !out.Complete || len(out.Erasure.Copies) != 5 {
		t.Fatalf("DELETE: %d %s", r.Status, r.Body)
	}
	for name, p := range f.Providers {
		if erasetest.Present(t, p, st.Backup.LandingKey) {
			t.Errorf("%s still holds the copy", name)
		}
	}
	if erasetest.Present(t, f.Landing, st.Backup.Seal.Key) {
		t.Error("the landing bucket still holds the sealed object")
	}
}
