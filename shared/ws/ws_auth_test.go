package ws_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"

	"github.com/wedsync/backup-replication/shared/api"
	"github.com/wedsync/backup-replication/shared/ws"
)

// connectionOrg returns the organization the only open connection of w was
// recorded under.
func (w *wired) connectionOrg(t *testing.T) string {
	t.Helper()
	ids := w.gw.Connections()
	if len(ids) != 1 {
		t.Fatalf("%d connections open, want 1", len(ids))
	}
	store, err := ws.NewDynamo(w.db, w.conn, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := store.Connection(t.Context(), ids[0])
	if err != nil {
		t.Fatalf("the open connection is not recorded: %v", err)
	}
	return c.OrganizationID
}

// TestDevModeTrustsTheOrganizationHeader: with API_AUTH_MODE=dev, a socket
// opened with X-Dev-Organization is accepted as that organization (as the
// HTTP API accepts the header), and one without it is refused with 401.
func TestDevModeTrustsTheOrganizationHeader(t *testing.T) {
	w, err := wire(t, map[string]string{"API_AUTH_MODE": "dev"})
	if err != nil {
		t.Fatal(err)
	}
	if _, resp, err := websocket.Dial(t.Context(), w.gw.URL(), nil); err == nil || resp == nil || resp.StatusCode != 401 {
		t.Fatalf("dev mode without the header: %v (response %v), want 401", err, resp)
	}
	org := api.NewID(time.Now())
	h := http.Header{}
	h.Set(api.DevOrganizationHeader, org)
	c, _, err := websocket.Dial(t.Context(), w.gw.URL(), &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		t.Fatalf("dev mode with %s: %v", api.DevOrganizationHeader, err)
	}
	defer c.CloseNow()
	if got := w.connectionOrg(t); got != org {
		t.Errorf("connection recorded for organization %q, want %q", got, org)
	}
	if r := exchange(t, c, `{"action":"subscribe","backupId":"*"}`); r.Type != "subscribed" {
		t.Errorf("subscribe in dev mode: %+v", r)
	}
}

// TestWiredSocketVerifiesJWKSTokens: with API_JWT_JWKS_URL only (Supabase
// Auth with asymmetric keys), a socket opened with an ES256 token of the
// issuer's key is accepted as the token's organization; an HS256 token
// signed with the published key's coordinates is refused.
func TestWiredSocketVerifiesJWKSTokens(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := key.PublicKey.Bytes()
	b64 := base64.RawURLEncoding.EncodeToString
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"keys": []any{map[string]any{"kty": "EC", "kid": "ec-1", "alg": "ES256",
			"crv": "P-256", "use": "sig", "x": b64(raw[1:33]), "y": b64(raw[33:])}}})
	}))
	defer jwks.Close()
	w, err := wire(t, map[string]string{"API_JWT_JWKS_URL": jwks.URL + "/auth/v1/.well-known/jwks.json"})
	if err != nil {
		t.Fatal(err)
	}
	claims := func(org string) jwt.MapClaims {
		return jwt.MapClaims{"iss": testIssuer, "aud": testAudience, "sub": "user-1", "exp": time.Now().Add(time.Hour).Unix(),
			"app_metadata": map[string]any{"org_id": org}}
	}
	forged := jwt.NewWithClaims(jwt.SigningMethodHS256, claims(api.NewID(time.Now())))
	forged.Header["kid"] = "ec-1"
	bad, _ := forged.SignedString(raw)
	if _, resp, err := websocket.Dial(t.Context(), w.gw.URL()+"?token="+bad, nil); err == nil || resp == nil || resp.StatusCode != 401 {
		t.Fatalf("HS256 keyed with the public key: %v (response %v), want 401", err, resp)
	}
	org := api.NewID(time.Now())
	good := jwt.NewWithClaims(jwt.SigningMethodES256, claims(org))
	good.Header["kid"] = "ec-1"
	tok, err := good.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	c, _, err := websocket.Dial(t.Context(), w.gw.URL()+"?token="+tok, nil)
	if err != nil {
		t.Fatalf("ES256 token of the issuer's key: %v", err)
	}
	defer c.CloseNow()
	if got := w.connectionOrg(t); got != org {
		t.Errorf("connection recorded for organization %q, want %q", got, org)
	}
}
