// Command local runs the whole system on this machine (`make dev`): the
// emulators, every function under aws-lambda-rie, and the event sources.
// It prints the API URL and how to upload, and stops everything on Ctrl-C.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/wedsync/backup-replication/infra/local/stack"
	"github.com/wedsync/backup-replication/infra/local/wsgateway"
	"github.com/wedsync/backup-replication/shared/api"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:3000", "HTTP API listen address (127.0.0.1:0 picks a free port)")
	ready := flag.String("ready-file", "", "write the stack's URLs as JSON to this file once it is up")
	every := flag.Duration("schedule", 30*time.Second, "interval of scheduled invocations (health); 0 keeps the template's rate")
	visibility := flag.Duration("visibility", 2*time.Minute, "SQS visibility timeout locally (0 keeps the template's)")
	only := flag.String("functions", "", "comma-separated logical ids to run (default: every function that exists)")
	dir := flag.String("supabase-dir", "", "directory for the Supabase emulator's objects (default: temporary)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts := stack.Options{APIAddr: *addr, ScheduleInterval: *every, VisibilityTimeout: *visibility, SupabaseDir: *dir,
		WebSocket: wsgateway.New(wsgateway.Config{})}
	if *only != "" {
		opts.Functions = strings.Split(*only, ",")
	}
	if *every > 0 && *every < time.Minute {
		// Deployed, health runs each minute and probes again itself at +30 s;
		// invoked this often it does one round per invocation.
		opts.FunctionEnv = map[string]map[string]string{"HealthFunction": {"HEALTH_SINGLE_ROUND": "true"}}
	}
	s, err := stack.Start(ctx, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "local stack:", err)
		os.Exit(1)
	}
	defer s.Close()
	org := api.NewID(time.Now())
	token := stack.DevToken(org, 12*time.Hour)
	if *ready != "" {
		if err := writeReady(*ready, s, org, token); err != nil {
			fmt.Fprintln(os.Stderr, "ready file:", err)
			s.Close()
			os.Exit(1)
		}
	}
	printWelcome(s, org, token)
	<-ctx.Done()
	fmt.Fprintln(os.Stderr, "stopping the local stack…")
}

// Ready is what -ready-file holds.
type Ready struct {
	APIURL       string            `json:"apiUrl"`
	WebSocketURL string            `json:"webSocketUrl,omitempty"`
	MotoURL      string            `json:"motoUrl"`
	GCSURL       string            `json:"gcsUrl"`
	SupabaseURL  string            `json:"supabaseUrl"`
	Organization string            `json:"organizationId"`
	Token        string            `json:"token"`
	Buckets      stack.Buckets     `json:"buckets"`
	Running      []string          `json:"running"`
	Skipped      map[string]string `json:"skipped,omitempty"`
}

func writeReady(path string, s *stack.Stack, org, token string) error {
	b, err := json.MarshalIndent(Ready{
		APIURL: s.APIURL, WebSocketURL: s.WebSocketURL, MotoURL: s.Moto.URL, GCSURL: s.GCS.URL,
		SupabaseURL: s.Supabase.URL, Organization: org, Token: token, Buckets: s.Buckets,
		Running: s.Running(), Skipped: s.Skipped,
	}, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func printWelcome(s *stack.Stack, org, token string) {
	fmt.Printf(`
WedSync backup replication — local stack is up.

  HTTP API     %s
  dashboard    %s/#token=%s
  WebSocket    %s?token=…   (live progress)
  functions    %s
`, s.APIURL, s.APIURL, token, s.WebSocketURL, strings.Join(s.Running(), ", "))
	ids := make([]string, 0, len(s.Skipped))
	for id := range s.Skipped {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		fmt.Printf("  not running  %s (%s)\n", id, s.Skipped[id])
	}
	fmt.Printf(`  emulators    moto %s · fake-gcs %s · supabase %s

Upload a file (a dev token for organization %s, valid 12 h):

  export API=%s ORG=%s TOKEN=%s
  f=contract.pdf; size=$(stat -c%%s "$f"); sha=$(sha256sum "$f" | cut -d' ' -f1)
  curl -s -X POST "$API/backups" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -d "{\"organizationId\":\"$ORG\",\"name\":\"$f\",\"size\":$size,\"sha256\":\"$sha\",\"contentType\":\"application/pdf\",\"idempotencyKey\":\"$sha\"}" > created.json
  # PUT the bytes to upload.url with every header in upload.headers (they are signed into the URL):
  curl -s -X PUT --data-binary @"$f" $(jq -r '.upload.headers | to_entries[] | "-H \(.key):\(.value)"' created.json) "$(jq -r .upload.url created.json)"
  curl -s "$API/backups/$(jq -r .backup.id created.json)" -H "Authorization: Bearer $TOKEN" | jq '.backup.status, .replicas'

Restore it (decrypted, checked against its SHA-256):

  go run ./infra/restore -api "$API" -token "$TOKEN" -backup "$(jq -r .backup.id created.json)" -o restored-"$f"

Or run `+"`make demo`"+` in another terminal (it signs in as this organization). Ctrl-C stops everything.
`, s.Moto.URL, s.GCS.URL, s.Supabase.URL, org, s.APIURL, org, token)
}
