// Command supaemu serves the Supabase Storage emulator (infra/supaemu) as a
// process of its own on a loopback port, so that the benchmark measures the
// provider's process alone. It prints "READY <url>" on stdout once it
// listens, and stops on SIGTERM or SIGINT. The JWT secret comes from the
// environment variable SUPAEMU_JWT_SECRET, never from the command line.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/wedsync/backup-replication/infra/supaemu"
)

func main() {
	dir := flag.String("dir", "", "directory for object files and TUS uploads (required)")
	addr := flag.String("addr", "127.0.0.1:0", "listen address (loopback)")
	flag.Parse()
	if err := run(*dir, *addr, os.Getenv("SUPAEMU_JWT_SECRET")); err != nil {
		fmt.Fprintln(os.Stderr, "supaemu:", err)
		os.Exit(1)
	}
}

func run(dir, addr, secret string) error {
	srv, err := supaemu.New(supaemu.Config{Dir: dir, JWTSecret: secret})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if hs.Shutdown(sctx) != nil {
			hs.Close()
		}
	}()
	fmt.Printf("READY http://%s\n", ln.Addr())
	if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
