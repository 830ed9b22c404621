package wsgateway

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/coder/websocket"
)

// The management API (POST/DELETE/GET /{stage}/@connections/{id}), in the
// shapes API Gateway answers and the AWS SDK decodes: errors carry the
// X-Amzn-ErrorType header and a JSON body.

// postToConnection sends the body to the client.
func (g *Gateway) postToConnection(w http.ResponseWriter, r *http.Request) {
	if !signed(w, r) {
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxMessage+1))
	if err != nil {
		awsError(w, http.StatusBadRequest, "BadRequestException", "could not read the body")
		return
	}
	if len(body) > MaxMessage {
		awsError(w, http.StatusRequestEntityTooLarge, "PayloadTooLargeException", "Message too long")
		return
	}
	c := g.lookup(r.PathValue("id"))
	if c == nil {
		awsError(w, http.StatusGone, "GoneException", "")
		return
	}
	if err := g.send(c, body); err != nil {
		awsError(w, http.StatusGone, "GoneException", "")
		return
	}
	w.WriteHeader(http.StatusOK)
}

// deleteConnection closes the client's socket; $disconnect follows.
func (g *Gateway) deleteConnection(w http.ResponseWriter, r *http.Request) {
	if !signed(w, r) {
		return
	}
	c := g.lookup(r.PathValue("id"))
	if c == nil {
		awsError(w, http.StatusGone, "GoneException", "")
		return
	}
	c.close(websocket.StatusNormalClosure, "Connection deleted")
	w.WriteHeader(http.StatusNoContent)
}

// getConnection describes the connection.
func (g *Gateway) getConnection(w http.ResponseWriter, r *http.Request) {
	if !signed(w, r) {
		return
	}
	c := g.lookup(r.PathValue("id"))
	if c == nil {
		awsError(w, http.StatusGone, "GoneException", "")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"connectedAt":  c.connectedAt.UTC().Format(time.RFC3339),
		"lastActiveAt": time.Unix(0, c.lastActive.Load()).UTC().Format(time.RFC3339),
		"identity":     map[string]string{"sourceIp": c.sourceIP, "userAgent": c.userAgent},
	})
}

// signed refuses requests without a SigV4 Authorization header, as the
// management API (IAM-authorized) does. The signature is not checked:
// nothing local holds real credentials.
func signed(w http.ResponseWriter, r *http.Request) bool {
	if strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") {
		return true
	}
	awsError(w, http.StatusForbidden, "ForbiddenException", "Missing Authentication Token")
	return false
}

func awsError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amzn-ErrorType", typ)
	w.WriteHeader(status)
	body := map[string]any{"message": nil}
	if msg != "" {
		body["message"] = msg
	}
	json.NewEncoder(w).Encode(body)
}
