package emulator

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/wedsync/backup-replication/infra/supaemu"
)

// keyLifetime is how long the keys StartSupabase mints stay valid, like the
// ten-year keys of a real project.
const keyLifetime = 10 * 365 * 24 * time.Hour

// Supabase is a Supabase Storage emulator (package supaemu) listening on a
// loopback port over plain HTTP.
type Supabase struct {
	// URL is the project URL, e.g. "http://127.0.0.1:40123"; the Storage
	// API is under URL + "/storage/v1".
	URL string
	// ServiceKey is a JWT with role service_role: it may do everything.
	ServiceKey string
	// AnonKey is a JWT with role anon: it sees and writes nothing.
	AnonKey string
	// JWTSecret signs both keys; supaemu.SignKey mints others with it.
	JWTSecret string
	// Server is the running emulator, for tests that want to look behind
	// the API.
	Server *supaemu.Server

	srv     *http.Server
	tempDir string
}

// StartSupabase starts the emulator in this process on a free 127.0.0.1
// port, keeping objects under dir; an empty dir means a new temporary
// directory, removed by Close. It returns once the port is listening.
func StartSupabase(dir string) (*Supabase, error) {
	sb := &Supabase{}
	if dir == "" {
		d, err := os.MkdirTemp("", "supaemu-")
		if err != nil {
			return nil, fmt.Errorf("supabase emulator: %w", err)
		}
		dir, sb.tempDir = d, d
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	sb.JWTSecret = hex.EncodeToString(secret)
	srv, err := supaemu.New(supaemu.Config{Dir: dir, JWTSecret: sb.JWTSecret})
	if err != nil {
		sb.removeTemp()
		return nil, fmt.Errorf("supabase emulator: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		sb.removeTemp()
		return nil, fmt.Errorf("supabase emulator: %w", err)
	}
	sb.Server = srv
	sb.URL = "http://" + ln.Addr().String()
	sb.ServiceKey = supaemu.SignKey(sb.JWTSecret, supaemu.ServiceRole, keyLifetime)
	sb.AnonKey = supaemu.SignKey(sb.JWTSecret, "anon", keyLifetime)
	sb.srv = &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	go sb.srv.Serve(ln)
	return sb, nil
}

// Close stops the server, ending requests in flight, and removes the
// temporary directory if StartSupabase made one.
func (s *Supabase) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = s.srv.Close()
	}
	s.removeTemp()
	return err
}

func (s *Supabase) removeTemp() {
	if s.tempDir != "" {
		os.RemoveAll(s.tempDir)
	}
}
