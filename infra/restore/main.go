// Command restore brings a backup back to a file, decrypting it on this
// machine: providers only hold sealed bytes (shared/seal), and the API
// never carries backup bytes (API Gateway's 10 MB / Lambda's 6 MB payload
// limits), so decryption cannot happen behind it.
//
// Through the API (users and operators):
//
//	restore -api https://api.example.com -token "$JWT" -backup ID -o FILE
//
// asks GET /backups/{id}/download for presigned URLs of the verified
// copies and the backup's data key, streams the first copy through
// seal.Open, and writes FILE (through a temporary file and a rename) only
// when the plaintext has the SHA-256 declared at upload. A copy that fails
// (unreachable, altered, truncated) is reported and the next one is tried.
//
// Without the API (operators, when it is down), from one provider's copy:
//
//	restore -from s3://bucket/backups/ORG/ID   -keys-table ws191-keys -o FILE
//	restore -from gs://bucket/backups/ORG/ID   -keys-table ws191-keys -o FILE
//	restore -from supabase://bucket/backups/ORG/ID -supabase-url https://REF.supabase.co -keys-table ws191-keys -o FILE
//
// reads the copy's clear header (organisation, backup, KMS key), unwraps
// the data key from the keys table with KMS (AWS credentials, region and
// AWS_ENDPOINT_URL from the usual AWS environment), and decrypts. S3 uses
// the same AWS environment; GCS application default credentials (or
// -gcs-credentials FILE); Supabase SUPABASE_SERVICE_KEY. With -sha256 (or
// -backups-table) the plaintext is also checked against the declared
// SHA-256; authentication of every segment holds either way.
//
// Progress goes to stderr; the exit status is 0 only when FILE was written.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
