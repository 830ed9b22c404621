package faultproxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// ControlState is what the control endpoint answers: the fault in force and
// the counters.
type ControlState struct {
	Fault Fault `json:"fault"`
	Stats Stats `json:"stats"`
}

// control serves the control endpoint: GET reads, POST or PUT sets a fault
// (a JSON Fault; unknown fields are refused), DELETE passes everything.
func (p *Proxy) control(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
	case http.MethodPost, http.MethodPut:
		var f Fault
		dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&f); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body is not a fault: " + err.Error()})
			return
		}
		if err := p.Set(f); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
	case http.MethodDelete:
		p.Pass()
	default:
		w.Header().Set("Allow", "GET, POST, PUT, DELETE")
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "method not allowed"})
		return
	}
	writeJSON(w, http.StatusOK, ControlState{Fault: p.Fault(), Stats: p.Stats()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// Server is a Proxy listening on a loopback port.
type Server struct {
	// URL is the proxy's base URL, e.g. "http://127.0.0.1:40123": give it
	// to clients instead of the emulator's.
	URL string
	*Proxy
	srv *http.Server
}

// Start serves a proxy to target (see New) on a free 127.0.0.1 port and
// returns once it is listening.
func Start(target string, opts Options) (*Server, error) {
	p, err := New(target, opts)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: %w", err)
	}
	s := &Server{URL: "http://" + ln.Addr().String(), Proxy: p,
		srv: &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}}
	go s.srv.Serve(ln)
	return s, nil
}

// Close ends every stall and stops the server, dropping open connections.
func (s *Server) Close() error {
	s.Proxy.Close()
	err := s.srv.Close()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}
