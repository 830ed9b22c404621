// Command demo uploads a sample wedding archive to a running local stack
// (`make dev`) and shows each provider's copy until the backup is
// PROTECTED (`make demo`).
//
// The dashboard lists the backups of the organization its token names, the
// token make dev prints; so the demo uploads as that organization when it
// finds make dev's session ($TOKEN or -token, -ready-file, or make dev's
// ready file at .build/dev-ready.json), and otherwise prints a dashboard
// link signed in as the organization it used (see findSession).
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/wedsync/backup-replication/infra/local/apiclient"
	"github.com/wedsync/backup-replication/shared/api"
)

func main() {
	var f sessionFlags
	flag.StringVar(&f.APIURL, "api", "http://127.0.0.1:3000", "the local stack's HTTP API (default $API, else this)")
	flag.StringVar(&f.ReadyFile, "ready-file", "", "read the API URL, organization and token from a `make dev` -ready-file")
	flag.StringVar(&f.Token, "token", "", "upload with this dev token, the one make dev prints (default $TOKEN)")
	flag.StringVar(&f.Org, "org", "", "organization id when there is no token (default $ORG, else a new one)")
	photos := flag.Int("photos", 6, "generated photos in the archive")
	timeout := flag.Duration("timeout", 3*time.Minute, "how long to wait for PROTECTED")
	flag.Parse()
	flag.Visit(func(fl *flag.Flag) { f.apiSet = f.apiSet || fl.Name == "api" })
	s, err := findSession(f, os.Getenv, defaultReadyPath())
	if err == nil {
		err = run(s, *photos, *timeout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(s session, photos int, timeout time.Duration) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	apiURL, org := s.APIURL, s.Org
	c := apiclient.New(apiURL, s.Token)
	for _, n := range s.Notes {
		fmt.Fprintln(os.Stderr, "demo:", n)
	}
	fmt.Printf("Uploading to %s as organization %s (%s).\n", apiURL, org, s.From)

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
	printDashboard(s)
	return nil
}

// printDashboard says where to see the backup: the dashboard shows the
// backups of the organization its token names.
func printDashboard(s session) {
	if !s.Minted {
		fmt.Printf("\nOn the dashboard (%s/) under \"Recent backups\", for organization %s (%s).\n", s.APIURL, s.Org, s.From)
		return
	}
	fmt.Printf(`
This demo uploaded as a new organization (%s): no session of make dev was found
(TOKEN, -token, -ready-file or %s). To see the backup on the dashboard, open
  %s
or run the demo as make dev's organization: export TOKEN from make dev's welcome, then make demo.
`, s.Org, DefaultReadyFile, s.dashboardLink())
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
