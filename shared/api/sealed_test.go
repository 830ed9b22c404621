package api_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/wedsync/backup-replication/shared/api"
	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/erase"
	"github.com/wedsync/backup-replication/shared/erase/erasetest"
	"github.com/wedsync/backup-replication/shared/seal"
)

// sealedEnv is an API over an erasetest fleet: its catalog, providers,
// key store and eraser.
func sealedEnv(t *testing.T, o erasetest.Options) (*env, *erasetest.Fleet) {
	t.Helper()
	f := erasetest.New(t, startMoto(t), o)
	e := newEnv(t, func(_ *api.Config, d *api.Deps) {
		er, err := erase.New(erase.Deps{Catalog: f.Catalog, Keys: f.Keys, Providers: f.Providers, Landing: f.Landing, Logger: d.Logger})
		if err != nil {
			t.Fatal(err)
		}
		d.Store, d.Providers, d.Keys, d.Eraser = f.Catalog, f.Providers, f.Keys, er
		d.Signers = map[string]api.Signer{
			"s3":  api.S3Signer(f.S3, f.S3Bucket),
			"gcs": api.GCSSigner(f.GCS.URL, "", f.GCSBucket),
		}
	})
	return e, f
}

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func TestSealedDownloadReleasesKeyToOwnerOnly(t *testing.T) {
	e, f := sealedEnv(t, erasetest.Options{})
	plain := bytes.Repeat([]byte("Guest list: Ada & Grace, table 7. "), 5000)
	st := f.Put(t, "org1", plain, time.Time{}, "")
	b := st.Backup

	r := e.call("GET", "/backups/"+b.ID+"/download", "org1", nil)
	if r.Status != 200 {
		t.Fatalf("download: %d %s", r.Status, r.Body)
	}
	var d api.Download
	r.decode(t, &d)
	if d.Sealed == nil || d.Sealed.Format != seal.Format || len(d.Sealed.DataKey) != seal.KeySize ||
		d.SHA256 != sum(plain) || d.Size != int64(len(plain)) || d.CipherSHA256 != b.Seal.CipherSHA256 || d.CipherSize != b.Seal.CipherSize {
		t.Fatalf("download answer: %+v", d)
	}
	if d.Provider != "supabase" || len(d.Alternatives) != 2 {
		t.Errorf("copies: %s then %+v, want supabase then the two others", d.Provider, d.Alternatives)
	}
	// Every URL serves the ciphertext; the released key opens it to the
	// declared plaintext.
	for _, u := range append([]api.CopyURL{{Provider: d.Provider, URL: d.URL}}, d.Alternatives...) {
		got := fetch(t, u.URL)
		if sum(got) != d.CipherSHA256 || bytes.Contains(got, []byte("Guest list")) {
			t.Fatalf("%s serves something else than the sealed bytes", u.Provider)
		}
		_, rd, err := seal.Open(bytes.NewReader(got), d.Sealed.DataKey)
		if err != nil {
			t.Fatal(err)
		}
		out, err := io.ReadAll(rd)
		if err != nil || sum(out) != d.SHA256 {
			t.Fatalf("%s: decrypted %d bytes, %v", u.Provider, len(out), err)
		}
	}
	logs := e.logs.String()
	if !strings.Contains(logs, `"msg":"data key released"`) || !strings.Contains(logs, `"subject":"user-org1"`) {
		t.Errorf("no audited key release in the logs:\n%s", logs)
	}
	if strings.Contains(logs, base64.StdEncoding.EncodeToString(d.Sealed.DataKey)) {
		t.Error("the logs hold the data key")
	}

	// Another organization gets exactly what a missing backup gets, and no key.
	r2 := e.call("GET", "/backups/"+b.ID+"/download", "org2", nil)
	if r2.Status != 404 || r2.code() != api.CodeNotFound || bytes.Contains(r2.Body, []byte("dataKey")) {
		t.Errorf("org2: %d %s", r2.Status, r2.Body)
	}
	if n := strings.Count(e.logs.String(), `"msg":"data key released"`); n != 1 {
		t.Errorf("%d key releases logged, want 1", n)
	}
}

func TestVerifySealedComparesCipherHash(t *testing.T) {
	e, f := sealedEnv(t, erasetest.Options{})
	st := f.Put(t, "org1", []byte("seating plan, v3"), time.Time{}, "")
	b := st.Backup
	verify := func() map[string]api.CopyCheck {
		t.Helper()
		r := e.call("POST", "/backups/"+b.ID+"/verify", "org1", nil)
		if r.Status != 200 {
			t.Fatalf("verify: %d %s", r.Status, r.Body)
		}
		var rep api.VerifyReport
		r.decode(t, &rep)
		if rep.CipherSHA256 != b.Seal.CipherSHA256 || rep.SHA256 != b.SHA256 {
			t.Errorf("report digests: %+v", rep)
		}
		m := map[string]api.CopyCheck{}
		for _, c := range rep.Copies {
			m[c.Provider] = c
		}
		return m
	}
	for name, c := range verify() {
		if !c.OK || c.SHA256 != b.Seal.CipherSHA256 || c.Bytes != b.Seal.CipherSize {
			t.Errorf("intact sealed copy on %s: %+v", name, c)
		}
	}
	// One flipped byte in the S3 copy's ciphertext.
	bad := bytes.Clone(st.Sealed)
	bad[len(bad)-5] ^= 1
	if _, err := f.S3.PutObject(t.Context(), &awss3.PutObjectInput{Bucket: aws.String(f.S3Bucket), Key: aws.String(b.LandingKey),
		Body: bytes.NewReader(bad), ContentLength: aws.Int64(int64(len(bad)))}); err != nil {
		t.Fatal(err)
	}
	got := verify()
	if c := got["s3"]; c.OK || c.Error != api.VerifyMismatch || !c.MarkedFailed {
		t.Errorf("flipped s3 copy: %+v", c)
	}
	if !got["supabase"].OK || !got["gcs"].OK {
		t.Errorf("intact copies: %+v", got)
	}
	// Downloads now skip the damaged copy.
	var d api.Download
	e.call("GET", "/backups/"+b.ID+"/download", "org1", nil).decode(t, &d)
	for _, u := range append(d.Alternatives, api.CopyURL{Provider: d.Provider}) {
		if u.Provider == "s3" {
			t.Errorf("download offers the damaged s3 copy: %+v", d)
		}
	}
}

func TestDeleteErasesEveryCopy(t *testing.T) {
	e, f := sealedEnv(t, erasetest.Options{S3Lock: 24 * time.Hour})
	st := f.Put(t, "org1", []byte("our vows"), time.Time{}, "")
	b := st.Backup

	// Another organization cannot erase it: it reads as missing.
	if r := e.call("DELETE", "/backups/"+b.ID, "org2", nil); r.Status != 404 || r.code() != api.CodeNotFound {
		t.Fatalf("DELETE as org2: %d %s", r.Status, r.Body)
	}
	if r := e.call("GET", "/backups/"+b.ID+"/download", "org1", nil); r.Status != 200 {
		t.Fatalf("download after org2's DELETE: %d %s", r.Status, r.Body)
	}

	r := e.call("DELETE", "/backups/"+b.ID, "org1", nil)
	if r.Status != 200 {
		t.Fatalf("DELETE: %d %s", r.Status, r.Body)
	}
	var out api.ErasureResponse
	r.decode(t, &out)
	if !out.Complete || out.Status != catalog.StatusErased || out.Erasure.Key != catalog.KeyDestroyed ||
		out.Erasure.RequestedBy != "user-org1" || len(out.Erasure.Copies) != 5 {
		t.Fatalf("receipt: %s", r.Body)
	}
	for _, c := range out.Erasure.Copies {
		want := catalog.ErasedDeleted
		if c.Provider == "s3" {
			want = catalog.ErasedRetained
		}
		if c.Provider == erase.LandingName && strings.HasPrefix(c.Key, "backups/") {
			want = catalog.ErasedAbsent // the seal step removed the plaintext
		}
		if c.Outcome != want || !c.Unreadable && c.Provider != erase.LandingName {
			t.Errorf("%s %s: %+v, want %s", c.Provider, c.Key, c, want)
		}
	}
	if !strings.Contains(string(r.Body), `"retainedUntil"`) || !strings.Contains(string(r.Body), "retained under lock until ") {
		t.Errorf("the receipt does not say until when s3 retains the copy: %s", r.Body)
	}
	for name, p := range f.Providers {
		if erasetest.Present(t, p, b.LandingKey) {
			t.Errorf("%s still returns the object", name)
		}
	}
	var detail api.BackupDetail
	e.call("GET", "/backups/"+b.ID, "org1", nil).decode(t, &detail)
	if detail.Backup.Status != catalog.StatusErased || detail.Backup.Erasure == nil || len(detail.Backup.Erasure.Copies) != 5 {
		t.Errorf("backup after DELETE: %+v", detail.Backup)
	}
	if r := e.call("GET", "/backups/"+b.ID+"/download", "org1", nil); r.Status != http.StatusGone || r.code() != api.CodeErased {
		t.Errorf("download after DELETE: %d %s", r.Status, r.Body)
	}
	again := e.call("DELETE", "/backups/"+b.ID, "org1", nil)
	if again.Status != 200 || string(again.Body) != string(r.Body) {
		t.Errorf("second DELETE: %d %s\nfirst: %s", again.Status, again.Body, r.Body)
	}
	if !strings.Contains(e.logs.String(), `"msg":"backup erased"`) {
		t.Error("no audit line")
	}
}

func TestSealedWithoutKeysOrEraserNotConfigured(t *testing.T) {
	f := erasetest.New(t, startMoto(t), erasetest.Options{})
	e := newEnv(t, func(_ *api.Config, d *api.Deps) { d.Store, d.Providers = f.Catalog, f.Providers })
	st := f.Put(t, "org1", []byte("menu"), time.Time{}, "")
	for _, m := range []string{"GET", "DELETE"} {
		path := "/backups/" + st.Backup.ID
		if m == "GET" {
			path += "/download"
		}
		if r := e.call(m, path, "org1", nil); r.Status != http.StatusNotImplemented || r.code() != api.CodeNotConfigured {
			t.Errorf("%s %s: %d %s", m, path, r.Status, r.Body)
		}
	}
}
