package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/wedsync/backup-replication/shared/seal"
)

// options are the command line.
type options struct {
	api, token, backup, out string
	from, keysTable         string
	backupsTable, sha256    string
	supabaseURL             string
	gcsEndpoint, gcsCreds   string
	s3Endpoint, region      string
}

// run is the command: it parses args, restores, and returns the exit
// status. getenv reads the few secrets taken from the environment.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.api, "api", "", "API base URL (API mode)")
	fs.StringVar(&o.token, "token", "", "bearer token for the API (default: $RESTORE_TOKEN)")
	fs.StringVar(&o.backup, "backup", "", "backup id (API mode)")
	fs.StringVar(&o.out, "o", "", "file to write the restored backup to (required)")
	fs.StringVar(&o.from, "from", "", "one provider copy: s3://bucket/key, gs://bucket/key or supabase://bucket/key (operator mode)")
	fs.StringVar(&o.keysTable, "keys-table", "", "DynamoDB keys table holding the wrapped data keys (operator mode)")
	fs.StringVar(&o.backupsTable, "backups-table", "", "DynamoDB backups table, to check the declared SHA-256 (operator mode, optional)")
	fs.StringVar(&o.sha256, "sha256", "", "expected plaintext SHA-256 in hex (operator mode, optional)")
	fs.StringVar(&o.supabaseURL, "supabase-url", "", "Supabase project URL for supabase:// (key: $SUPABASE_SERVICE_KEY)")
	fs.StringVar(&o.gcsEndpoint, "gcs-endpoint", "", "GCS endpoint for gs:// (emulators; default Google)")
	fs.StringVar(&o.gcsCreds, "gcs-credentials", "", "service-account JSON file for gs:// (default: application default credentials)")
	fs.StringVar(&o.s3Endpoint, "s3-endpoint", "", "S3 endpoint for s3:// (default: AWS, or $AWS_ENDPOINT_URL)")
	fs.StringVar(&o.region, "region", "", "AWS region (default: the AWS environment's)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if o.token == "" {
		o.token = getenv("RESTORE_TOKEN")
	}
	var err error
	switch {
	case o.out == "":
		err = errors.New("-o FILE is required")
	case o.from != "" && o.api != "":
		err = errors.New("give either -api (with -token and -backup) or -from, not both")
	case o.from != "":
		if o.keysTable == "" {
			err = errors.New("-from needs -keys-table")
			break
		}
		err = restoreFrom(ctx, o, getenv, stderr)
	case o.api != "":
		if o.token == "" || o.backup == "" {
			err = errors.New("-api needs -token (or $RESTORE_TOKEN) and -backup")
			break
		}
		err = restoreFromAPI(ctx, o, stderr)
	default:
		err = errors.New("give -api URL -token T -backup ID, or -from URL -keys-table T")
	}
	if err != nil {
		fmt.Fprintln(stderr, "restore:", err)
		return 1
	}
	fmt.Fprintln(stdout, o.out)
	return 0
}

// output is a temporary file beside the destination that becomes it only
// when Commit is called.
type output struct {
	dst string
	f   *os.File
}

func newOutput(dst string) (*output, error) {
	f, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".restore-*")
	if err != nil {
		return nil, err
	}
	return &output{dst: dst, f: f}, nil
}

// reset empties the file for another attempt.
func (o *output) reset() error {
	if err := o.f.Truncate(0); err != nil {
		return err
	}
	_, err := o.f.Seek(0, io.SeekStart)
	return err
}

// commit syncs the file and renames it over the destination.
func (o *output) commit() error {
	if err := o.f.Sync(); err != nil {
		return err
	}
	if err := o.f.Close(); err != nil {
		return err
	}
	return os.Rename(o.f.Name(), o.dst)
}

// discard removes the temporary file (after a commit it is gone already).
func (o *output) discard() {
	o.f.Close()
	os.Remove(o.f.Name())
}

// decrypt streams sealed bytes from src through seal.Open with key into
// w, and returns the plaintext's SHA-256 and size. Every failure of the
// ciphertext (altered, truncated, wrong key) is an error.
func decrypt(src io.Reader, key []byte, w io.Writer) (string, int64, seal.Header, error) {
	h, plain, err := seal.Open(src, key)
	if err != nil {
		return "", 0, h, err
	}
	sum := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, sum), plain)
	if err != nil {
		return "", n, h, err
	}
	if n != h.PlaintextSize {
		return "", n, h, fmt.Errorf("decrypted %d bytes, the header says %d", n, h.PlaintextSize)
	}
	return hex.EncodeToString(sum.Sum(nil)), n, h, nil
}

// plainCopy copies an unsealed copy into w and returns its SHA-256.
func plainCopy(src io.Reader, w io.Writer) (string, int64, error) {
	sum := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, sum), src)
	return hex.EncodeToString(sum.Sum(nil)), n, err
}

// sameHex compares two hex digests, ignoring case.
func sameHex(a, b string) bool { return strings.EqualFold(a, b) && a != "" }
