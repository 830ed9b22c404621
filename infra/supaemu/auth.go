package supaemu

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"time"
)

// ServiceRole is the role claim of a service key: it bypasses row-level
// security, as on a real project.
const ServiceRole = "service_role"

// SignKey mints an HS256 JWT with the given role claim, signed with secret,
// in the shape of a Supabase project key ({"iss":"supabase","role":…,
// "iat":…,"exp":…}). ttl is added to now for "exp": a negative ttl gives a key
// that has already expired; ttl 0 gives a key without "exp".
func SignKey(secret, role string, ttl time.Duration) string {
	now := time.Now()
	claims := map[string]any{"iss": "supabase", "role": role, "iat": now.Unix()}
	if ttl != 0 {
		claims["exp"] = now.Add(ttl).Unix()
	}
	return signJWT(secret, claims)
}

func signJWT(secret string, claims map[string]any) string {
	header := b64(mustJSON(map[string]string{"alg": "HS256", "typ": "JWT"}))
	payload := b64(mustJSON(claims))
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(header + "." + payload))
	return header + "." + payload + "." + b64(mac.Sum(nil))
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only maps of strings and numbers are marshalled here
	}
	return b
}

// verifyJWT checks an HS256 token as the server's jose library does and
// returns its claims, or the message the server puts in its error body.
func verifyJWT(secret, token string) (map[string]any, string) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, "Invalid Compact JWS"
	}
	hb, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	pb, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	sig, err3 := base64.RawURLEncoding.DecodeString(parts[2])
	var header map[string]any
	if err1 != nil || err2 != nil || err3 != nil || json.Unmarshal(hb, &header) != nil {
		return nil, "Invalid Compact JWS"
	}
	if header["alg"] != "HS256" {
		return nil, `"alg" (Algorithm) Header Parameter value not allowed`
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(parts[0] + "." + parts[1]))
	if !hmac.Equal(sig, mac.Sum(nil)) {
		return nil, "signature verification failed"
	}
	var claims map[string]any
	if json.Unmarshal(pb, &claims) != nil || claims == nil {
		return nil, "JWT Claims Set must be a top-level JSON object"
	}
	now := float64(time.Now().Unix())
	if exp, ok := claims["exp"].(float64); ok && exp <= now {
		return nil, `"exp" claim timestamp check failed`
	}
	if nbf, ok := claims["nbf"].(float64); ok && nbf > now {
		return nil, `"nbf" claim timestamp check failed`
	}
	return claims, ""
}

var bearer = regexp.MustCompile(`(?i)^Bearer\s+`)

type roleKey struct{}

// roleOf is the role the request authenticated as, and whether it did.
func roleOf(r *http.Request) (string, bool) {
	role, ok := r.Context().Value(roleKey{}).(string)
	return role, ok
}

// authenticated reports whether the request carried a valid token.
func authenticated(r *http.Request) bool {
	_, ok := roleOf(r)
	return ok
}

// isService reports whether the request may bypass row-level security.
func isService(r *http.Request) bool {
	role, _ := roleOf(r)
	return role == ServiceRole
}

// authenticate checks the Authorization header and, on success, returns the
// request carrying the token's role.
func (s *Server) authenticate(r *http.Request) (*http.Request, *apiError) {
	h, ok := r.Header["Authorization"]
	if !ok || len(h) == 0 {
		return nil, errMissingAuthorization()
	}
	claims, msg := verifyJWT(s.cfg.JWTSecret, bearer.ReplaceAllString(h[0], ""))
	if msg != "" {
		return nil, errAccessDenied(msg)
	}
	role, _ := claims["role"].(string)
	if role == "" {
		role = "anon"
	}
	return r.WithContext(context.WithValue(r.Context(), roleKey{}, role)), nil
}

// authed wraps a route that requires a valid token.
func (s *Server) authed(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ar, err := s.authenticate(r)
		if err != nil {
			err.write(w, r)
			return
		}
		h(w, ar)
	}
}

// lenient wraps a route configured with allowInvalidJwt on the real server:
// a missing or bad token makes the request anonymous instead of failing it.
func (s *Server) lenient(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if ar, err := s.authenticate(r); err == nil {
			r = ar
		}
		h(w, r)
	}
}
