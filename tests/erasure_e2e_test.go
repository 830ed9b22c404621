package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wedsync/backup-replication/infra/local/apiclient"
	"github.com/wedsync/backup-replication/shared/api"
	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/keys"
)

// TestErasureEndToEnd follows one backup through the local stack's HTTP
// API from upload to erasure (issue 8 §2, §3, §5):
//   - a 3 MiB upload (several 1 MiB sealed segments) reaches PROTECTED, and
//     the real restore command (infra/restore, API mode) writes the
//     declared SHA-256;
//   - with one byte of the first download copy flipped on its emulator,
//     restore reports that copy failed and still writes the declared bytes
//     from another copy, and verify reports the altered copy;
//   - DELETE from another organization is refused with 404 and erases
//     nothing;
//   - the organization's DELETE answers 200 with a complete receipt naming
//     supabase, s3, gcs and both landing objects, each proved absent; the
//     backup reads ERASED, its download answers 410, its data key is
//     shredded, no emulator holds any of its objects, and restore refuses.
func TestErasureEndToEnd(t *testing.T) {
	t.Parallel()
	e := sharedStack(t)
	c, org := orgClient(e)
	ctx := t.Context()

	// The command builds while the backup goes through the pipeline.
	restoreBin, root := make(chan string, 1), repoRoot(t)
	go func() { restoreBin <- buildRestore(t, root) }()

	// 1. Upload with the plaintext marker, to PROTECTED.
	x := register(t, c, org, 801, 3<<20+4321, "")
	if err := x.upload(ctx, c); err != nil {
		t.Fatal(err)
	}
	protected, err := waitStatus(t, c, x.ID, 10*time.Minute, apiclient.Protected)
	if err != nil {
		t.Fatalf("%v (replicas: %s)", err, replicaSummary(protected))
	}
	if protected.Backup.Seal == nil {
		t.Fatal("PROTECTED without a seal")
	}
	sealed := *protected.Backup.Seal
	reps := replicasByProvider(t, protected)
	for _, p := range replicaProviders {
		if r, ok := reps[p]; !ok || r.State != catalog.ReplicaVerified {
			t.Fatalf("PROTECTED without a verified %s copy: %s", p, replicaSummary(protected))
		}
	}

	// 2. Restore through the API with the real command.
	bin := <-restoreBin
	if bin == "" {
		t.FailNow()
	}
	dir := t.TempDir()
	restoreOK := func(name string) string {
		t.Helper()
		out := filepath.Join(dir, name)
		code, stdout, stderr := runRestore(ctx, bin, "-api", e.APIURL, "-token", c.Token, "-backup", x.ID, "-o", out)
		if code != 0 {
			t.Fatalf("restore %s: exit %d\nstdout: %s\nstderr: %s", name, code, stdout, stderr)
		}
		if sum, n := fileDigest(t, out); sum != x.SHA || n != x.Data.size {
			t.Fatalf("restore %s wrote %d bytes sha256 %s, declared %d bytes %s\nstderr: %s", name, n, sum, x.Data.size, x.SHA, stderr)
		}
		return stderr
	}
	restoreOK("first.bin")

	// 3. One flipped byte on the copy the API offers first: restore falls
	// over to a good copy and says which failed; verify reports it.
	first := downloadBytes(t, c, x)
	orig := readAll(t, e, first, reps[first].Key)
	flipped := bytes.Clone(orig)
	flipped[len(flipped)/2] ^= 0x01
	if err := e.overwrite(ctx, first, reps[first].Key, flipped); err != nil {
		t.Fatalf("alter the %s copy: %v", first, err)
	}
	stderr := restoreOK("after-flip.bin")
	t.Logf("restore with the %s copy altered:\n%s", first, stderr)
	if !strings.Contains(stderr, "the copy on "+first+" failed") {
		t.Errorf("restore fell over silently; stderr lacks %q:\n%s", "the copy on "+first+" failed", stderr)
	}
	if strings.Contains(stderr, "X-Amz-Signature") || strings.Contains(stderr, "token=") {
		t.Errorf("restore's stderr shows a presigned URL:\n%s", stderr)
	}
	report := verifyBackup(t, c, x.ID)
	for _, p := range replicaProviders {
		ck, ok := report[p]
		switch {
		case !ok:
			t.Errorf("verify does not report the %s copy", p)
		case p == first && (ck.OK || ck.Error != api.VerifyMismatch || !ck.MarkedFailed):
			t.Errorf("verify of the %s copy with a flipped byte: %+v, want %s and marked failed", p, ck, api.VerifyMismatch)
		case p != first && (!ck.OK || ck.SHA256 != sealed.CipherSHA256):
			t.Errorf("verify of the intact %s copy: %+v", p, ck)
		}
	}

	// 4. Another organization cannot erase it.
	intruder, _ := orgClient(e)
	var ae *apiclient.Error
	if err := intruder.Do(ctx, http.MethodDelete, "/backups/"+x.ID, nil, nil); !asAPIError(err, &ae) || ae.Status != http.StatusNotFound {
		t.Errorf("DELETE from another organization: %v, want 404", err)
	}
	if d, err := c.Backup(ctx, x.ID); err != nil || d.Backup.Status == catalog.StatusErased {
		t.Fatalf("after another organization's DELETE the backup reads %s (%v)", d.Backup.Status, err)
	}
	good := otherThan(first, replicaProviders...)
	if f, err := e.readCopy(ctx, good, reps[good].Key, nil); err != nil || f.SHA256 != sealed.CipherSHA256 {
		t.Fatalf("after another organization's DELETE the %s copy reads %+v (%v)", good, f, err)
	}

	// 5. The organization erases it.
	status, receipt := deleteBackup(t, e.APIURL, c.Token, x.ID)
	if status != http.StatusOK || !receipt.Complete || receipt.Status != catalog.StatusErased || receipt.BackupID != x.ID {
		t.Fatalf("DELETE: %d, complete %v, status %s, backup %s; want 200, complete, ERASED\nreceipt: %s",
			status, receipt.Complete, receipt.Status, receipt.BackupID, jsonText(receipt))
	}
	checkReceipt(t, receipt.Erasure, reps, x.Key, sealed.Key)
	for _, ec := range receipt.Erasure.Copies {
		t.Logf("receipt: %s %s: %s, verified absent %v, unreadable %v", ec.Provider, ec.Key, ec.Outcome, ec.VerifiedAbsent, ec.Unreadable)
	}

	erased, err := waitStatus(t, c, x.ID, 30*time.Second, func(d api.BackupDetail) bool { return d.Backup.Status == catalog.StatusErased })
	if err != nil {
		t.Errorf("after DELETE the backup reads %s: %v", erased.Backup.Status, err)
	}
	if err := c.Do(ctx, http.MethodGet, "/backups/"+x.ID+"/download", nil, nil); !asAPIError(err, &ae) ||
		ae.Status != http.StatusGone || ae.Code != api.CodeErased {
		t.Errorf("download after DELETE: %v, want 410 %s", err, api.CodeErased)
	}
	if _, _, err := e.Keys.Open(ctx, org, x.ID); !errors.Is(err, keys.ErrShredded) {
		t.Errorf("the data key after DELETE: %v, want shredded", err)
	}
	objects := map[string][]string{"landing": {x.Key, sealed.Key}}
	for _, p := range replicaProviders {
		objects[p] = []string{reps[p].Key}
	}
	for where, ks := range objects {
		for _, key := range ks {
			if err := e.absent(ctx, where, key); err != nil {
				t.Errorf("after DELETE: %v", err)
			}
		}
	}
	out := filepath.Join(dir, "after-erase.bin")
	if code, _, stderr := runRestore(ctx, bin, "-api", e.APIURL, "-token", c.Token, "-backup", x.ID, "-o", out); code == 0 ||
		!strings.Contains(stderr, "410") {
		t.Errorf("restore after DELETE: exit %d, want a failure quoting 410:\n%s", code, stderr)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("restore after DELETE left %s (%v)", out, err)
	}
	e.requireNoCrash(t)
}

// checkReceipt checks an erasure receipt: the key destroyed, one entry per
// provider copy (at its replica's key) and both landing objects, each
// deleted or found absent, proved absent by a read-back, and (but the
// plaintext upload, which no key protects) unreadable.
func checkReceipt(t *testing.T, r catalog.Erasure, reps map[string]catalog.Replica, uploadKey, sealedKey string) {
	t.Helper()
	if r.Key != catalog.KeyDestroyed || r.KeyDestroyedAt == nil || r.CompletedAt == nil {
		t.Errorf("receipt: key %q destroyed at %v, completed at %v; want destroyed and complete", r.Key, r.KeyDestroyedAt, r.CompletedAt)
	}
	want := map[string]string{"landing " + uploadKey: catalog.ErasedAbsent, "landing " + sealedKey: catalog.ErasedDeleted}
	for _, p := range replicaProviders {
		want[p+" "+reps[p].Key] = catalog.ErasedDeleted
	}
	seen := map[string]bool{}
	for _, c := range r.Copies {
		id := c.Provider + " " + c.Key
		seen[id] = true
		outcome, listed := want[id]
		if !listed {
			// Another configured provider (a standby) with nothing stored.
			if (c.Outcome != catalog.ErasedAbsent && c.Outcome != catalog.ErasedDeleted) || !c.VerifiedAbsent {
				t.Errorf("receipt entry %s: %+v", id, c)
			}
			continue
		}
		if c.Outcome != outcome || !c.VerifiedAbsent {
			t.Errorf("receipt entry %s: outcome %q, verified absent %v (%s); want %q, verified absent", id, c.Outcome,
				c.VerifiedAbsent, c.Detail, outcome)
		}
		if outcome == catalog.ErasedDeleted && c.DeletedAt == nil {
			t.Errorf("receipt entry %s: deleted without a time", id)
		}
		if id != "landing "+uploadKey && !c.Unreadable {
			t.Errorf("receipt entry %s: not marked unreadable although the key is destroyed", id)
		}
	}
	for id := range want {
		if !seen[id] {
			t.Errorf("the receipt does not name %s; it lists %s", id, jsonText(r.Copies))
		}
	}
}

// absent reports an error unless key is gone from where: reading it
// fails and listing its folder does not show it.
func (e *sharedEnv) absent(ctx context.Context, where, key string) error {
	if rc, err := e.Open[where](ctx, key); err == nil {
		rc.Close()
		return fmt.Errorf("%s still serves %s", where, key)
	}
	listed, err := e.listKeys(ctx, where, path.Dir(key)+"/")
	if err != nil {
		return fmt.Errorf("list %s on %s: %w", path.Dir(key), where, err)
	}
	for _, k := range listed {
		if strings.HasPrefix(k, key) { // also "<key> (unfinished upload)"
			return fmt.Errorf("%s still lists %s", where, k)
		}
	}
	return nil
}

// deleteBackup sends DELETE /backups/{id} and returns the status and the
// decoded receipt (apiclient hides the difference between 200 and 202).
func deleteBackup(t *testing.T, baseURL, token, id string) (int, api.ErasureResponse) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodDelete, strings.TrimRight(baseURL, "/")+"/backups/"+id, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("DELETE /backups/%s: %v", id, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var r api.ErasureResponse
	if resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(body, &r); err != nil {
			t.Fatalf("DELETE /backups/%s answered %d with no receipt: %v: %.300s", id, resp.StatusCode, err, body)
		}
	} else {
		t.Logf("DELETE /backups/%s answered %d: %.300s", id, resp.StatusCode, body)
	}
	return resp.StatusCode, r
}

// buildRestore builds infra/restore into a temporary directory and returns
// the binary's path ("" after reporting a failure).
// It may run on a goroutine of its own.
func buildRestore(t *testing.T, root string) string {
	bin := filepath.Join(t.TempDir(), "restore")
	cmd := exec.CommandContext(t.Context(), "go", "build", "-o", bin, "./infra/restore")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("go build ./infra/restore: %v\n%s", err, out)
		return ""
	}
	return bin
}

// runRestore runs the restore command and returns its exit status, stdout
// and stderr.
func runRestore(ctx context.Context, bin string, args ...string) (int, string, string) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "RESTORE_TOKEN=") })
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, stdout.String(), stderr.String()
	case errors.As(err, &exit):
		return exit.ExitCode(), stdout.String(), stderr.String()
	}
	return -1, stdout.String(), stderr.String() + "\n" + err.Error()
}

// fileDigest is the SHA-256 and size of a file (empty when unreadable).
func fileDigest(t *testing.T, name string) (string, int64) {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Errorf("open %s: %v", name, err)
		return "", 0
	}
	defer f.Close()
	sum, n, err := hashStream(f)
	if err != nil {
		t.Errorf("read %s: %v", name, err)
	}
	return sum, n
}
