package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wedsync/backup-replication/infra/local/stack"
	"github.com/wedsync/backup-replication/shared/api"
)

// writeReady writes a ready file as make dev (infra/local -ready-file) does.
func writeReady(t *testing.T, apiURL, org, token string) string {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"apiUrl": apiURL, "organizationId": org, "token": token,
		"webSocketUrl": "ws://127.0.0.1:1/local", "running": []string{"ApiFunction"}})
	path := filepath.Join(t.TempDir(), "ready.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestDemoUploadsAsTheDashboardsOrganization: the dashboard shows the
// backups of the organization in the token make dev printed, so the demo
// uploads as that organization whenever it can find make dev's session.
func TestDemoUploadsAsTheDashboardsOrganization(t *testing.T) {
	devOrg := api.NewID(time.Now())
	devToken := stack.DevToken(devOrg, 12*time.Hour)
	// A running API, for the default ready file (a file left by a stopped
	// make dev points at an API that no longer answers).
	running := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusUnauthorized) }))
	defer running.Close()
	stopped := httptest.NewServer(http.NotFoundHandler())
	stopped.Close()
	liveReady := writeReady(t, running.URL, devOrg, devToken)
	staleReady := writeReady(t, stopped.URL, api.NewID(time.Now()), stack.DevToken(api.NewID(time.Now()), time.Hour))

	cases := []struct {
		name     string
		flags    sessionFlags
		env      map[string]string
		ready    string // the default ready file
		wantOrg  string // "" with wantNew: a new organization
		wantAPI  string
		wantNew  bool
		wantFrom string
	}{
		{name: "TOKEN exported from make dev's welcome", env: map[string]string{"TOKEN": devToken, "API": "http://127.0.0.1:3999"},
			wantOrg: devOrg, wantAPI: "http://127.0.0.1:3999", wantFrom: "$TOKEN"},
		{name: "-token", flags: sessionFlags{APIURL: "http://127.0.0.1:3000", Token: devToken}, wantOrg: devOrg,
			wantAPI: "http://127.0.0.1:3000", wantFrom: "-token"},
		{name: "-token wins over TOKEN", flags: sessionFlags{Token: devToken},
			env: map[string]string{"TOKEN": stack.DevToken(api.NewID(time.Now()), time.Hour)}, wantOrg: devOrg, wantFrom: "-token"},
		{name: "-ready-file", flags: sessionFlags{ReadyFile: liveReady}, wantOrg: devOrg, wantAPI: running.URL, wantFrom: liveReady},
		{name: "make dev's ready file at the default place", ready: liveReady, wantOrg: devOrg, wantAPI: running.URL, wantFrom: liveReady},
		{name: "TOKEN wins over the default ready file", ready: staleReady, env: map[string]string{"TOKEN": devToken},
			wantOrg: devOrg, wantFrom: "$TOKEN"},
		{name: "a ready file of a stopped make dev is ignored", ready: staleReady, flags: sessionFlags{APIURL: "http://127.0.0.1:3000"},
			wantNew: true, wantAPI: "http://127.0.0.1:3000"},
		{name: "a $TOKEN of something else is ignored", env: map[string]string{"TOKEN": "ghp_0123456789", "ORG": devOrg},
			wantOrg: devOrg, wantFrom: "$ORG"},
		{name: "ORG without a token", env: map[string]string{"ORG": devOrg}, wantOrg: devOrg, wantFrom: "$ORG"},
		{name: "nothing: a new organization", flags: sessionFlags{APIURL: "http://127.0.0.1:3000"}, wantNew: true,
			wantAPI: "http://127.0.0.1:3000"},
		{name: "-api wins over API", flags: sessionFlags{APIURL: "http://127.0.0.1:4000", apiSet: true, Token: devToken},
			env: map[string]string{"API": "http://127.0.0.1:3999"}, wantOrg: devOrg, wantAPI: "http://127.0.0.1:4000"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := findSession(c.flags, func(k string) string { return c.env[k] }, c.ready)
			if err != nil {
				t.Fatal(err)
			}
			if c.wantNew {
				if !s.Minted || !api.ValidID(s.Org) || s.Org == devOrg {
					t.Errorf("session %+v, want a new organization", s)
				}
			} else if s.Minted || s.Org != c.wantOrg {
				t.Errorf("organization %s (minted %v), want %s", s.Org, s.Minted, c.wantOrg)
			}
			if c.wantAPI != "" && s.APIURL != c.wantAPI {
				t.Errorf("API %s, want %s", s.APIURL, c.wantAPI)
			}
			if !strings.Contains(s.From, c.wantFrom) {
				t.Errorf("from %q, want it to name %q", s.From, c.wantFrom)
			}
			// The token the demo uploads with names the organization it reports.
			if got, err := tokenOrganization(s.Token); err != nil || got != s.Org {
				t.Errorf("the token's organization is %s (%v), the session's %s", got, err, s.Org)
			}
		})
	}
}

func TestDemoRefusesAMismatchedSession(t *testing.T) {
	org := api.NewID(time.Now())
	other := api.NewID(time.Now().Add(time.Second))
	foreign := "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
	cases := []struct {
		name  string
		flags sessionFlags
		env   map[string]string
		want  string
	}{
		{name: "-org is not the token's", flags: sessionFlags{Token: stack.DevToken(org, time.Hour), Org: other}, want: "is not the organization"},
		{name: "a -token of another system", flags: sessionFlags{Token: foreign}, want: "not a token of the local stack"},
		{name: "an organization that is no id", flags: sessionFlags{Org: "acme/weddings"}, want: "not an organization id"},
		{name: "a missing ready file", flags: sessionFlags{ReadyFile: filepath.Join(t.TempDir(), "none.json")}, want: "none.json"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := findSession(c.flags, func(k string) string { return c.env[k] }, "")
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("session %+v, error %v; want an error naming %q", s, err, c.want)
			}
		})
	}
}
