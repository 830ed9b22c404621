package faultproxy

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// writeError answers r as the flavor's provider answers an internal error
// (throttle false) or a request to slow down (throttle true). status 0
// means the provider's usual status; retryAfter > 0 sets Retry-After in
// whole seconds (at least 1).
func writeError(w http.ResponseWriter, r *http.Request, f Flavor, throttle bool, status int, retryAfter time.Duration) {
	ctype, body, def := errorBody(f, throttle, status)
	if status == 0 {
		status = def
		ctype, body, _ = errorBody(f, throttle, status)
	}
	h := w.Header()
	h.Set("Content-Type", ctype)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Connection", "close") // the request body may be unread
	if retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(max(1, int((retryAfter+time.Second-1)/time.Second))))
	}
	if f == S3 {
		h.Set("x-amz-request-id", requestID())
	}
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}

// errorBody returns the content type, body and default status of the
// flavor's answer for status (0: its default).
func errorBody(f Flavor, throttle bool, status int) (ctype string, body []byte, def int) {
	switch f {
	case S3:
		// S3 asks clients to slow down with 503 SlowDown, and reports
		// internal trouble as 500 InternalError or 503 ServiceUnavailable.
		code, msg, def := "ServiceUnavailable", "Please reduce your request rate.", http.StatusServiceUnavailable
		switch {
		case throttle:
			code, msg = "SlowDown", "Please reduce your request rate."
		case status == http.StatusInternalServerError:
			code, msg = "InternalError", "We encountered an internal error. Please try again."
		case status != 0 && status != http.StatusServiceUnavailable:
			code, msg = http.StatusText(status), "The service is unavailable."
		}
		x := fmt.Sprintf("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code><Message>%s</Message>"+
			"<RequestId>%s</RequestId><HostId>%s</HostId></Error>", code, msg, requestID(), requestID())
		return "application/xml", []byte(x), def
	case GCS:
		def, reason, msg, domain := http.StatusServiceUnavailable, "backendError",
			"We encountered an internal error. Please try again.", "global"
		if throttle {
			def, reason, domain = http.StatusTooManyRequests, "rateLimitExceeded", "usageLimits"
			msg = "The rate of change requests to the object exceeds the rate limit. Please reduce the rate of create, update, and delete requests."
		}
		code := status
		if code == 0 {
			code = def
		}
		b, _ := json.Marshal(map[string]any{"error": map[string]any{
			"code": code, "message": msg,
			"errors": []map[string]string{{"message": msg, "domain": domain, "reason": reason}},
		}})
		return "application/json; charset=UTF-8", b, def
	case Supabase:
		// The Storage server's error shape: statusCode as a string, its
		// own code vocabulary (src/internal/errors/codes.ts).
		def, code, name, msg := http.StatusServiceUnavailable, "InternalError", "internal", "Internal Server Error"
		if throttle {
			def, code, name, msg = http.StatusTooManyRequests, "SlowDown", "too_many_requests", "Too many requests, please slow down"
		}
		sc := status
		if sc == 0 {
			sc = def
		}
		b, _ := json.Marshal(map[string]string{"statusCode": strconv.Itoa(sc), "code": code, "error": name, "message": msg})
		return "application/json; charset=utf-8", b, def
	}
	def = http.StatusServiceUnavailable
	msg := "injected fault: service unavailable\n"
	if throttle {
		def, msg = http.StatusTooManyRequests, "injected fault: too many requests\n"
	}
	return "text/plain; charset=utf-8", []byte(msg), def
}

func requestID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}
