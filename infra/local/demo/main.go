// Command demo uploads a sample wedding archive to a running local stack
// (`make dev`) and shows each provider's copy until the backup is
// PROTECTED (`make demo`).
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/wedsync/backup-replication/infra/local/apiclient"
	"github.com/wedsync/backup-replication/infra/local/stack"
	"github.com/wedsync/backup-replication/shared/api"
)

func main() {
	apiURL := flag.String("api", "http://127.0.0.1:3000", "the local stack's HTTP API")
	ready := flag.String("ready-file", "", "read the API URL and token from a `make dev` -ready-file instead")
	org := flag.String("org", "", "organization id (default: a new one)")
	photos := flag.Int("photos", 6, "generated photos in the archive")
	timeout := flag.Duration("timeout", 3*time.Minute, "how long to wait for PROTECTED")
	flag.Parse()
	if err := run(*apiURL, *ready, *org, *photos, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(apiURL, readyFile, org string, photos int, timeout time.Duration) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	token := ""
	if readyFile != "" {
		var r struct{ APIURL, Token, OrganizationID string }
		b, err := os.ReadFile(readyFile)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &r); err != nil {
			return fmt.Errorf("%s: %w", readyFile, err)
		}
		apiURL, token, org = r.APIURL, r.Token, r.OrganizationID
	}
	if org == "" {
		org = api.NewID(time.Now())
	}
	if token == "" {
		token = stack.DevToken(org, time.Hour)
	}
	c := apiclient.New(apiURL, token)

	couple := "Charlotte Evans & Sam O'Connor"
	fmt.Printf("Building a sample wedding archive for %s…\n", couple)
	data, err := weddingArchive(couple, photos, uint64(time.Now().UnixNano()))
	if err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	size := int64(len(data))
	fmt.Printf("  contract.pdf, guests.csv (120 guests), timeline.txt, %d photos: %s, sha256 %s…\n", photos, human(size), hex.EncodeToString(sum[:])[:16])

	created, err := c.CreateBackup(ctx, api.CreateBackupRequest{
		OrganizationID: org, Name: "evans-oconnor-wedding.tar.gz", Size: &size,
		SHA256: hex.EncodeToString(sum[:]), ContentType: "application/gzip",
		IdempotencyKey: "demo-" + hex.EncodeToString(sum[:8]),
	})
	if err != nil {
		var ae *apiclient.Error
		if !errors.As(err, &ae) {
			return fmt.Errorf("is `make dev` running at %s? %w", apiURL, err)
		}
		return fmt.Errorf("POST /backups: %w", err)
	}
	id := created.Backup.ID
	fmt.Printf("Registered backup %s; uploading to the landing bucket…\n", id)
	if err := c.Upload(ctx, created.Upload, bytes.NewReader(data), size); err != nil {
		return err
	}
	fmt.Println("Uploaded. Replicating to every provider (3-2-1: three copies, two systems, one off AWS):")
	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	d, err := c.Wait(wctx, id, 500*time.Millisecond, apiclient.Protected, func(d api.BackupDetail) {
		var parts []string
		for _, r := range d.Replicas {
			parts = append(parts, fmt.Sprintf("%s %s", r.Provider, r.State))
		}
		if len(parts) == 0 {
			parts = append(parts, "no copies yet")
		}
		fmt.Printf("  %6.1fs  %-11s %s\n", time.Since(start).Seconds(), d.Backup.Status, strings.Join(parts, " · "))
	})
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("backup %s did not reach PROTECTED within %s (last status %s%s); check the stack's log",
			id, timeout, d.Backup.Status, reason(d))
	case err != nil:
		return err
	}
	fmt.Printf("PROTECTED in %.1fs: %d verified copies in %d failure domains, %d off AWS.\n",
		time.Since(start).Seconds(), d.Policy.Verified, d.Policy.Domains, d.Policy.Offsite)
	return nil
}

func reason(d api.BackupDetail) string {
	if d.Policy.Reason != "" {
		return ": " + d.Policy.Reason
	}
	return ""
}

func human(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
