package emulator

import (
	"context"
	"net/http"
	"testing"
)

func TestStartMoto(t *testing.T) {
	m, err := StartMoto(t.Context())
	Require(t, err)
	defer m.Close()
	if err := m.Reset(t.Context()); err != nil {
		t.Fatalf("reset: %v", err)
	}
	cfg, err := m.AWSConfig(context.Background())
	if err != nil || cfg.BaseEndpoint == nil || *cfg.BaseEndpoint != m.URL {
		t.Fatalf("AWSConfig = %v, %v", cfg.BaseEndpoint, err)
	}
	m.Close()
	m.Close()
	if resp, err := http.Get(m.URL + "/moto-api/"); err == nil {
		resp.Body.Close()
		t.Fatalf("moto still answers after Close")
	}
}
