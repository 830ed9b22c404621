package api_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wedsync/backup-replication/shared/api"
)

// concrete turns a route pattern into a request path for backup id.
func concrete(path, id string) string { return strings.ReplaceAll(path, "{id}", id) }

func TestCrossOrganizationDenied(t *testing.T) {
	e := newEnv(t, nil)
	mine := e.create("org1", createReq("org1", "contract.pdf", []byte("signed")), http.StatusCreated).Backup
	// What org2 gets on each route when it names org1's things. Every
	// route must appear here, so a new route cannot skip the question.
	want := map[api.Route]struct {
		path   string
		body   any
		status int
		code   string
	}{
		{"POST", "/backups"}:               {"/backups", createReq("org1", "x.zip", []byte("x")), 403, api.CodeForbidden},
		{"GET", "/backups"}:                {"/backups?organizationId=org1", nil, 403, api.CodeForbidden},
		{"GET", "/backups/{id}"}:           {"", nil, 404, api.CodeNotFound},
		{"DELETE", "/backups/{id}"}:        {"", nil, 404, api.CodeNotFound},
		{"POST", "/backups/{id}/complete"}: {"", map[string]any{"uploadId": "u", "parts": []any{}}, 404, api.CodeNotFound},
		{"POST", "/backups/{id}/parts"}:    {"", map[string]any{"uploadId": "u", "from": 1, "count": 1}, 404, api.CodeNotFound},
		{"GET", "/backups/{id}/download"}:  {"", nil, 404, api.CodeNotFound},
		{"POST", "/backups/{id}/verify"}:   {"", nil, 404, api.CodeNotFound},
		{"GET", "/status"}:                 {"/status", nil, 200, ""}, // scoped: checked below
		{"GET", "/providers"}:              {"/providers", nil, 200, ""},
		{"GET", "/providers/validate"}:     {"/providers/validate", nil, 200, ""}, // no tenant data
		{"GET", "/"}:                       {"/", nil, 404, api.CodeNotFound},     // public, no dashboard here
		{"GET", "/openapi.json"}:           {"/openapi.json", nil, 200, ""},       // public
	}
	for _, rt := range api.Routes() {
		w, ok := want[rt]
		if !ok {
			t.Errorf("route %s %s has no cross-organization expectation", rt.Method, rt.Path)
			continue
		}
		path := w.path
		if path == "" {
			path = concrete(rt.Path, mine.ID)
		}
		r := e.call(rt.Method, path, "org2", w.body)
		if r.Status != w.status || r.code() != w.code {
			t.Errorf("%s %s as org2: %d %s, want %d %s", rt.Method, path, r.Status, r.Body, w.status, w.code)
		}
		if w.status == 404 && strings.Contains(string(r.Body), mine.ID) {
			t.Errorf("%s %s leaks the backup: %s", rt.Method, path, r.Body)
		}
		// A backup that does not exist answers exactly the same.
		if w.path == "" {
			r2 := e.call(rt.Method, concrete(rt.Path, "01NOSUCHBACKUP0000000000000"), "org2", w.body)
			if r2.Status != r.Status || string(r2.Body) != string(r.Body) {
				t.Errorf("%s: another org's backup (%d %s) and a missing one (%d %s) differ", rt.Path, r.Status, r.Body, r2.Status, r2.Body)
			}
		}
	}
	var st api.StatusReport
	e.call("GET", "/status", "org2", nil).decode(t, &st)
	if st.OrganizationID != "org2" || st.Counted != 0 {
		t.Errorf("org2's status counts org1's backups: %+v", st)
	}
	e.call("GET", "/status", "org1", nil).decode(t, &st)
	if st.Counted != 1 || st.Counts["PENDING"] != 1 {
		t.Errorf("org1's status: %+v", st)
	}
	r := e.call("GET", "/backups", "org2", nil)
	if strings.Contains(string(r.Body), mine.ID) {
		t.Errorf("org2's listing shows org1's backup: %s", r.Body)
	}
}

func TestUnauthenticated(t *testing.T) {
	e := newEnv(t, nil)
	tokens := map[string]string{
		"no token":         "",
		"not a JWT":        "Bearer abc.def.ghi",
		"basic auth":       "Basic dXNlcjpwYXNz",
		"expired":          "Bearer " + token(t, "org1", func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Hour).Unix() }),
		"no expiry":        "Bearer " + token(t, "org1", func(c jwt.MapClaims) { delete(c, "exp") }),
		"not yet valid":    "Bearer " + token(t, "org1", func(c jwt.MapClaims) { c["nbf"] = time.Now().Add(time.Hour).Unix() }),
		"wrong issuer":     "Bearer " + token(t, "org1", func(c jwt.MapClaims) { c["iss"] = "https://evil.example" }),
		"wrong audience":   "Bearer " + token(t, "org1", func(c jwt.MapClaims) { c["aud"] = "anon" }),
		"no organization":  "Bearer " + token(t, "org1", func(c jwt.MapClaims) { delete(c, "app_metadata") }),
		"bad organization": "Bearer " + token(t, "org1", func(c jwt.MapClaims) { c["app_metadata"] = map[string]any{"org_id": "../org2"} }),
		"user_metadata org": "Bearer " + token(t, "org1", func(c jwt.MapClaims) {
			delete(c, "app_metadata")
			c["user_metadata"] = map[string]any{"org_id": "org1"}
		}),
		"wrong secret": "Bearer " + func() string {
			s, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": testIssuer, "aud": testAudience, "exp": time.Now().Add(time.Hour).Unix(),
				"app_metadata": map[string]any{"org_id": "org1"}}).SignedString([]byte("another-secret-another-secret-another"))
			return s
		}(),
		"alg none": "Bearer " + func() string {
			s, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"iss": testIssuer, "aud": testAudience, "exp": time.Now().Add(time.Hour).Unix(),
				"app_metadata": map[string]any{"org_id": "org1"}}).SignedString(jwt.UnsafeAllowNoneSignatureType)
			return s
		}(),
		"HS512": "Bearer " + func() string {
			s, _ := jwt.NewWithClaims(jwt.SigningMethodHS512, jwt.MapClaims{"iss": testIssuer, "aud": testAudience, "exp": time.Now().Add(time.Hour).Unix(),
				"app_metadata": map[string]any{"org_id": "org1"}}).SignedString(testSecret)
			return s
		}(),
	}
	for _, rt := range api.Routes() {
		for name, auth := range tokens {
			req, _ := http.NewRequest(rt.Method, e.srv.URL+concrete(rt.Path, "01ABC"), strings.NewReader("{}"))
			req.Header.Set("Content-Type", "application/json")
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			public := rt.Path == "/" || rt.Path == "/openapi.json"
			if public && resp.StatusCode == http.StatusUnauthorized {
				t.Errorf("%s %s (%s): public route answered 401", rt.Method, rt.Path, name)
			}
			if !public && resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s %s (%s): %d, want 401", rt.Method, rt.Path, name, resp.StatusCode)
			}
		}
	}
	if strings.Contains(e.logs.String(), tokens["expired"][7:]) {
		t.Error("a token appears in the logs")
	}
	// The fallback claim works.
	tok := token(t, "org9", func(c jwt.MapClaims) { delete(c, "app_metadata"); c["organization_id"] = "org9" })
	req, _ := http.NewRequest("GET", e.srv.URL+"/backups", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("organization_id claim: %d", resp.StatusCode)
	}
}

func TestDevAuthenticator(t *testing.T) {
	e := newEnv(t, func(_ *api.Config, d *api.Deps) { d.Auth = api.DevAuthenticator{} })
	req, _ := http.NewRequest("GET", e.srv.URL+"/backups", nil)
	req.Header.Set(api.DevOrganizationHeader, "org1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("dev auth with header: %d", resp.StatusCode)
	}
	if r := e.call("GET", "/backups", "", nil); r.Status != 401 {
		t.Fatalf("dev auth without header: %d", r.Status)
	}
}

func TestJWTConfigValidate(t *testing.T) {
	_, err := api.NewJWTAuthenticator(api.JWTConfig{Secret: []byte("short")})
	for _, want := range []string{"API_JWT_SECRET", "API_JWT_ISSUER", "API_JWT_AUDIENCE"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %s", err, want)
		}
	}
}
