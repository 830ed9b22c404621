package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/wedsync/backup-replication/infra/local/stack"
	"github.com/wedsync/backup-replication/shared/api"
)

// DefaultReadyFile is where the demo looks for `make dev`'s ready file
// (infra/local -ready-file), relative to the repository root, when no
// session is given: it holds the API URL, the organization and the token
// that make dev printed, the ones the dashboard is signed in with.
const DefaultReadyFile = ".build/dev-ready.json"

// session is who the demo uploads as: the API, a bearer token the local
// API accepts, and the organization in that token. The dashboard shows a
// backup only to a token of its organization, so the demo uploads as the
// dashboard's session whenever it can find it.
type session struct {
	APIURL string
	Token  string
	Org    string
	// From says where the organization came from, for the reader.
	From string
	// Minted is true when the demo made up the organization (no session of
	// make dev was found): the dashboard needs the demo's link to show it.
	Minted bool
	// Notes are what the reader should know about how it was chosen.
	Notes []string
}

// sessionFlags are the command line's ways to name the session.
type sessionFlags struct {
	APIURL, ReadyFile, Token, Org string
	apiSet                        bool
}

// findSession decides the session, first match wins:
//  1. -ready-file: make dev's ready file;
//  2. -token, else $TOKEN: the dev token make dev prints (its welcome says
//     `export API=… ORG=… TOKEN=…`), the organization read from it (a
//     $TOKEN the local stack would refuse is ignored, with a note);
//  3. the ready file at defaultReady (DefaultReadyFile under the repository
//     root; "" for none), when make dev wrote it and its API answers;
//  4. -org, else $ORG, else a new organization, with a token made for it.
//
// $API sets the API URL when -api is not given.
func findSession(f sessionFlags, getenv func(string) string, defaultReady string) (session, error) {
	if !f.apiSet {
		if v := getenv("API"); v != "" {
			f.APIURL = v
		}
	}
	if f.ReadyFile != "" {
		return readReady(f.ReadyFile)
	}
	token, from := f.Token, "-token"
	if token == "" {
		token, from = getenv("TOKEN"), "$TOKEN (from make dev)"
	}
	var notes []string
	if token != "" {
		org, err := tokenOrganization(token)
		switch {
		case err != nil && f.Token != "":
			return session{}, fmt.Errorf("%s: %w", from, err)
		case err != nil:
			// $TOKEN may belong to something else entirely: say so, go on.
			notes = append(notes, "$TOKEN is ignored: "+err.Error())
		case f.Org != "" && f.Org != org:
			return session{}, fmt.Errorf("-org %s is not the organization of %s (%s)", f.Org, from, org)
		default:
			return session{APIURL: f.APIURL, Token: token, Org: org, From: from}, nil
		}
	}
	if defaultReady != "" {
		if s, err := readReady(defaultReady); err == nil && apiAnswers(s.APIURL) {
			s.Notes = notes
			return s, nil
		}
	}
	org, from := f.Org, "-org"
	if org == "" {
		org, from = getenv("ORG"), "$ORG"
	}
	minted := org == ""
	if minted {
		org, from = api.NewID(time.Now()), "a new organization"
	} else if !api.ValidID(org) {
		return session{}, fmt.Errorf("%s %q is not an organization id", from, org)
	}
	return session{APIURL: f.APIURL, Token: stack.DevToken(org, time.Hour), Org: org, From: from, Minted: minted, Notes: notes}, nil
}

// readReady reads a ready file of `make dev` (infra/local's Ready).
func readReady(path string) (session, error) {
	var r struct {
		APIURL         string `json:"apiUrl"`
		Token          string `json:"token"`
		OrganizationID string `json:"organizationId"`
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return session{}, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return session{}, fmt.Errorf("%s: %w", path, err)
	}
	if r.APIURL == "" || r.Token == "" || !api.ValidID(r.OrganizationID) {
		return session{}, fmt.Errorf("%s: no apiUrl, token or organizationId", path)
	}
	return session{APIURL: r.APIURL, Token: r.Token, Org: r.OrganizationID, From: path}, nil
}

// defaultReadyPath is DefaultReadyFile under the repository root, or ""
// when it does not exist.
func defaultReadyPath() string {
	wd, err := os.Getwd()
	if err != nil {
		return ""
	}
	root, err := stack.FindRoot(wd)
	if err != nil {
		return ""
	}
	path := filepath.Join(root, DefaultReadyFile)
	if _, err := os.Stat(path); err != nil {
		return ""
	}
	return path
}

// apiAnswers tells a running stack from a ready file left by an earlier one.
func apiAnswers(apiURL string) bool {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(apiURL + "/status")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return true
}

// tokenOrganization checks a dev token the way the local API does (the dev
// secret, issuer and audience) and returns its organization.
func tokenOrganization(token string) (string, error) {
	auth, err := api.NewJWTAuthenticator(api.JWTConfig{Secret: []byte(stack.DevJWTSecret),
		Issuer: stack.DevJWTIssuer, Audience: stack.DevJWTAudience})
	if err != nil {
		return "", err
	}
	r, _ := http.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Authorization", "Bearer "+token)
	p, err := auth.Authenticate(r)
	if err != nil {
		return "", errors.New("not a token of the local stack (make dev prints one): " + err.Error())
	}
	return p.OrganizationID, nil
}

// dashboardLink opens the dashboard signed in as s (the token travels in
// the fragment, which the browser never sends to the server).
func (s session) dashboardLink() string { return s.APIURL + "/#token=" + s.Token }
