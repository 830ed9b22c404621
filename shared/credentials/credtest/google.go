package credtest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Google plays three Google endpoints on one loopback server, as far as a
// service-account key rotation needs them (there is no emulator of Google
// IAM):
//
//   - the OAuth token endpoint (POST /token): a JWT-bearer assertion signed
//     with a service account's key gets an access token, while that key
//     exists; a deleted key gets 400 invalid_grant, as from Google;
//   - the IAM API's service-account keys (iam.googleapis.com/v1 REST shape):
//     create (POST …/keys, returning privateKeyData, a base64 key file whose
//     token_uri is this server), list (GET …/keys), get and delete
//     (…/keys/{id}); callers authenticate with an access token of the same
//     service account (roles/iam.serviceAccountKeyAdmin on itself);
//   - Cloud Storage, by proxy to an emulator (fake-gcs-server): a request
//     with a bearer token passes only while the key that obtained the token
//     exists, otherwise 401 "Invalid Credentials". Unlike Google, tokens die
//     with their key at once: the harder case for whoever holds them.
type Google struct {
	// URL is the server's base URL: the storage endpoint for providers,
	// IAMEndpoint for rotators, URL+"/token" in every key file.
	URL string

	srv      *httptest.Server
	mu       sync.Mutex
	accounts map[string]*account // by email
	tokens   map[string]keyRef   // access token -> key
	log      []Request
}

type account struct {
	project string
	keys    map[string]*saKey // by key id
}

type saKey struct {
	pub     *rsa.PublicKey
	created time.Time
}

type keyRef struct{ email, id string }

// NewGoogle starts the fake with Cloud Storage proxied to storageUpstream
// (an emulator's base URL).
func NewGoogle(storageUpstream string) (*Google, error) {
	u, err := url.Parse(storageUpstream)
	if err != nil {
		return nil, err
	}
	g := &Google{accounts: map[string]*account{}, tokens: map[string]keyRef{}}
	storage := httputil.NewSingleHostReverseProxy(u)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", g.token)
	keys := "/v1/projects/{project}/serviceAccounts/{email}/keys"
	mux.HandleFunc("POST "+keys, g.iam(g.createKey))
	mux.HandleFunc("GET "+keys, g.iam(g.listKeys))
	mux.HandleFunc("GET "+keys+"/{id}", g.iam(g.getKey))
	mux.HandleFunc("DELETE "+keys+"/{id}", g.iam(g.deleteKey))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { g.storage(w, r, storage) })
	g.srv = httptest.NewServer(mux)
	g.URL = g.srv.URL
	return g, nil
}

// IAMEndpoint is the base URL to give a rotator instead of
// https://iam.googleapis.com/.
func (g *Google) IAMEndpoint() string { return g.URL + "/" }

// Close stops the server.
func (g *Google) Close() { g.srv.Close() }

// ServiceAccount creates the service account email in project with one
// key, and returns that key's file (the JSON a secret holds).
func (g *Google) ServiceAccount(project, email string) (string, error) {
	g.mu.Lock()
	if g.accounts[email] == nil {
		g.accounts[email] = &account{project: project, keys: map[string]*saKey{}}
	}
	g.mu.Unlock()
	file, _, err := g.newKey(email)
	return file, err
}

// Keys lists the ids of email's keys, sorted.
func (g *Google) Keys(email string) []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []string
	if a := g.accounts[email]; a != nil {
		for id := range a.keys {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// DeleteKey deletes one of email's keys, as an administrator would.
func (g *Google) DeleteKey(email, id string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if a := g.accounts[email]; a != nil {
		delete(a.keys, id)
	}
}

// Requests returns the storage requests seen so far; Credential is the id
// of the key behind the bearer token ("?" for an unknown token).
func (g *Google) Requests() []Request {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]Request(nil), g.log...)
}

// newKey adds a key to email and returns its file and id.
func (g *Google) newKey(email string) (string, string, error) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return "", "", err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return "", "", err
	}
	idb := make([]byte, 20)
	rand.Read(idb)
	id := hex.EncodeToString(idb)
	g.mu.Lock()
	defer g.mu.Unlock()
	a := g.accounts[email]
	if a == nil {
		return "", "", fmt.Errorf("no service account %s", email)
	}
	a.keys[id] = &saKey{pub: &priv.PublicKey, created: time.Now().UTC()}
	file, _ := json.Marshal(map[string]string{
		"type": "service_account", "project_id": a.project, "private_key_id": id,
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": email, "client_id": "1" + id[:12], "token_uri": g.URL + "/token",
		"auth_uri": "https://accounts.google.com/o/oauth2/auth",
	})
	return string(file), id, nil
}

// token answers the JWT-bearer grant.
func (g *Google) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "unsupported_grant_type"})
		return
	}
	var ref keyRef
	_, err := jwt.Parse(r.PostForm.Get("assertion"), func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		iss, _ := t.Claims.GetIssuer()
		g.mu.Lock()
		defer g.mu.Unlock()
		if a := g.accounts[iss]; a != nil && a.keys[kid] != nil {
			ref = keyRef{iss, kid}
			return a.keys[kid].pub, nil
		}
		return nil, errors.New("no such key")
	}, jwt.WithValidMethods([]string{"RS256"}), jwt.WithExpirationRequired())
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant", "error_description": "Invalid JWT Signature."})
		return
	}
	b := make([]byte, 24)
	rand.Read(b)
	tok := "ya29.fake-" + hex.EncodeToString(b)
	g.mu.Lock()
	g.tokens[tok] = ref
	g.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": 3599})
}

// caller returns the live key behind a request's bearer token.
func (g *Google) caller(r *http.Request) (keyRef, bool, bool) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return keyRef{}, false, false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	ref, known := g.tokens[tok]
	a := g.accounts[ref.email]
	return ref, true, known && a != nil && a.keys[ref.id] != nil
}

func (g *Google) storage(w http.ResponseWriter, r *http.Request, proxy http.Handler) {
	ref, has, live := g.caller(r)
	rec := Request{Method: r.Method, Path: r.URL.Path, Credential: ref.id}
	if has && ref.id == "" {
		rec.Credential = "?"
	}
	if has && !live {
		rec.Refused, rec.Status = true, http.StatusUnauthorized
		g.record(rec)
		w.Header().Set("WWW-Authenticate", `Bearer realm="https://accounts.google.com/", error="invalid_token"`)
		writeJSON(w, http.StatusUnauthorized, map[string]any{"error": map[string]any{"code": 401,
			"message": "Invalid Credentials", "errors": []map[string]string{{"message": "Invalid Credentials",
				"domain": "global", "reason": "authError", "locationType": "header", "location": "Authorization"}}}})
		return
	}
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	proxy.ServeHTTP(sw, r)
	rec.Status = sw.status
	g.record(rec)
}

func (g *Google) record(r Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.log = append(g.log, r)
}

// iam authenticates an IAM call: a live token of the service account named
// in the path.
func (g *Google) iam(h func(w http.ResponseWriter, r *http.Request, email string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ref, _, live := g.caller(r)
		if !live {
			writeJSON(w, http.StatusUnauthorized, googleError(401, "UNAUTHENTICATED",
				"Request had invalid authentication credentials. Expected OAuth 2 access token."))
			return
		}
		email := r.PathValue("email")
		g.mu.Lock()
		_, exists := g.accounts[email]
		g.mu.Unlock()
		if !exists || ref.email != email {
			writeJSON(w, http.StatusForbidden, googleError(403, "PERMISSION_DENIED",
				"Permission 'iam.serviceAccountKeys.create' denied on resource (or it may not exist)."))
			return
		}
		h(w, r, email)
	}
}

func (g *Google) keyJSON(email, id string, k *saKey) map[string]any {
	g.mu.Lock()
	project := g.accounts[email].project
	g.mu.Unlock()
	return map[string]any{
		"name":           "projects/" + project + "/serviceAccounts/" + email + "/keys/" + id,
		"validAfterTime": k.created.Format(time.RFC3339), "validBeforeTime": "9999-12-31T23:59:59Z",
		"keyAlgorithm": "KEY_ALG_RSA_2048", "keyOrigin": "GOOGLE_PROVIDED", "keyType": "USER_MANAGED",
	}
}

func (g *Google) createKey(w http.ResponseWriter, r *http.Request, email string) {
	file, id, err := g.newKey(email)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, googleError(500, "INTERNAL", "key generation failed"))
		return
	}
	g.mu.Lock()
	k := g.accounts[email].keys[id]
	g.mu.Unlock()
	out := g.keyJSON(email, id, k)
	out["privateKeyType"] = "TYPE_GOOGLE_CREDENTIALS_FILE"
	out["privateKeyData"] = base64.StdEncoding.EncodeToString([]byte(file))
	writeJSON(w, http.StatusOK, out)
}

func (g *Google) listKeys(w http.ResponseWriter, r *http.Request, email string) {
	var keys []map[string]any
	for _, id := range g.Keys(email) {
		g.mu.Lock()
		k := g.accounts[email].keys[id]
		g.mu.Unlock()
		if k != nil {
			keys = append(keys, g.keyJSON(email, id, k))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"keys": keys})
}

func (g *Google) getKey(w http.ResponseWriter, r *http.Request, email string) {
	g.mu.Lock()
	k := g.accounts[email].keys[r.PathValue("id")]
	g.mu.Unlock()
	if k == nil {
		writeJSON(w, http.StatusNotFound, googleError(404, "NOT_FOUND", "Service account key does not exist."))
		return
	}
	writeJSON(w, http.StatusOK, g.keyJSON(email, r.PathValue("id"), k))
}

func (g *Google) deleteKey(w http.ResponseWriter, r *http.Request, email string) {
	id := r.PathValue("id")
	g.mu.Lock()
	_, ok := g.accounts[email].keys[id]
	delete(g.accounts[email].keys, id)
	g.mu.Unlock()
	if !ok {
		writeJSON(w, http.StatusNotFound, googleError(404, "NOT_FOUND", "Service account key does not exist."))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{})
}

func googleError(code int, status, msg string) map[string]any {
	return map[string]any{"error": map[string]any{"code": code, "message": msg, "status": status}}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
