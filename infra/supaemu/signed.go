package supaemu

import (
	"encoding/json"
	"net/http"
	"time"
)

// signedURLScope is the scope claim of download tokens.
const signedURLScope = "download"

// sign handles POST /object/sign/{bucket}/{key...} with {"expiresIn": s}.
func (s *Server) sign(w http.ResponseWriter, r *http.Request) {
	var body struct {
		ExpiresIn *float64 `json:"expiresIn"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.ExpiresIn == nil || *body.ExpiresIn < 1 {
		errInvalidRequest("body must have required property 'expiresIn' of at least 1").write(w, r)
		return
	}
	bucketID, name := r.PathValue("bucket"), r.PathValue("key")
	if !isService(r) {
		errNoSuchKey().write(w, r)
		return
	}
	if _, aerr := s.store.stat(bucketID, name); aerr != nil {
		aerr.write(w, r)
		return
	}
	url := bucketID + "/" + name
	now := time.Now()
	token := signJWT(s.cfg.JWTSecret, map[string]any{"url": url, "scope": signedURLScope,
		"iat": now.Unix(), "exp": now.Add(time.Duration(*body.ExpiresIn * float64(time.Second))).Unix()})
	// The path is the decoded one, as the server returns it: the client
	// escapes it before use.
	writeJSON(w, http.StatusOK, map[string]string{"signedURL": "/object/sign/" + url + "?token=" + token})
}

// signedDownload handles GET /object/sign/{bucket}/{key...}?token=…, which
// needs no Authorization header: the token is the authority.
func (s *Server) signedDownload(w http.ResponseWriter, r *http.Request) {
	token := r.URL.Query().Get("token")
	if token == "" {
		errInvalidRequest("querystring must have required property 'token'").write(w, r)
		return
	}
	claims, msg := verifyJWT(s.cfg.JWTSecret, token)
	if msg != "" {
		errInvalidJWT(msg).write(w, r)
		return
	}
	bucketID, name := r.PathValue("bucket"), r.PathValue("key")
	if claims["scope"] != signedURLScope {
		errInvalidSignature("Token is not scoped for download").write(w, r)
		return
	}
	if claims["url"] != bucketID+"/"+name {
		errInvalidSignature("Invalid signature").write(w, r)
		return
	}
	o, f, aerr := s.store.open(bucketID, name)
	if aerr != nil {
		aerr.write(w, r)
		return
	}
	defer f.Close()
	exp, _ := claims["exp"].(float64)
	serveObject(w, r, o, f, time.Unix(int64(exp), 0).UTC().Format(http.TimeFormat))
}
