package replicate

import (
	"regexp"
	"strings"
)

// maxErrorText bounds an error message kept in the catalog.
const maxErrorText = 500

var (
	// Query strings of URLs carry signatures and tokens (presigned URLs,
	// signed Supabase URLs): keep the URL, drop its query.
	urlQuery = regexp.MustCompile(`(https?://[^\s"'?]+)\?[^\s"']*`)
	// Bearer tokens, JWTs and key=value secrets that SDKs sometimes echo.
	bearer  = regexp.MustCompile(`(?i)(bearer|basic)\s+[A-Za-z0-9._~+/=-]+`)
	jwt     = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*`)
	keyPair = regexp.MustCompile(`(?i)((?:api[_-]?key|apikey|token|secret|password|signature|x-amz-security-token|authorization)["']?\s*[:=]\s*["']?)[^\s"'&,;]+`)
)

// Redact removes anything that looks like a credential from an error
// message and bounds its length, so it can go into the catalog, a log line
// or a progress event.
func Redact(msg string) string {
	msg = urlQuery.ReplaceAllString(msg, "$1?REDACTED")
	msg = bearer.ReplaceAllString(msg, "$1 REDACTED")
	msg = jwt.ReplaceAllString(msg, "REDACTED")
	msg = keyPair.ReplaceAllString(msg, "${1}REDACTED")
	msg = strings.ToValidUTF8(msg, "?")
	return clipTo(msg, maxErrorText)
}
