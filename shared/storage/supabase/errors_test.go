package supabase

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/wedsync/backup-replication/shared/storage"
)

// TestClassify maps the answers SUPABASE-API.md records (and the API
// gateway's and TUS's) to kinds.
func TestClassify(t *testing.T) {
	api := func(httpStatus int, statusCode, code string) error {
		return &apiError{HTTPStatus: httpStatus, StatusCode: statusCode, Code: code}
	}
	cases := []struct {
		name string
		err  error
		want storage.Kind
	}{
		{"NoSuchKey", api(400, "404", "NoSuchKey"), storage.NotFound},
		{"NoSuchBucket", api(400, "404", "NoSuchBucket"), storage.NotFound},
		{"renderer not found", api(400, "404", "not_found"), storage.NotFound},
		{"KeyAlreadyExists", api(400, "409", "KeyAlreadyExists"), storage.Permanent},
		{"bad signature", api(400, "403", "AccessDenied"), storage.Unauthorized},
		{"signed URL token", api(400, "400", "InvalidJWT"), storage.Unauthorized},
		{"missing authorization", &apiError{HTTPStatus: 400, StatusCode: "400", Code: "InvalidRequest", noAuth: true}, storage.Unauthorized},
		{"other invalid request", api(400, "400", "InvalidRequest"), storage.Permanent},
		{"EntityTooLarge", api(400, "413", "EntityTooLarge"), storage.Permanent},
		{"InvalidRange", api(416, "416", "InvalidRange"), storage.Permanent},
		{"InvalidKey", api(400, "400", "InvalidKey"), storage.Permanent},
		{"database timeout", api(400, "544", "DatabaseTimeout"), storage.Transient},
		{"unknown code, statusCode 503", api(400, "503", "Whatever"), storage.Transient},
		{"internal", api(500, "500", "InternalError"), storage.Transient},
		{"slow down", api(429, "429", "SlowDown"), storage.Throttled},
		{"gateway 401, no code", api(401, "", ""), storage.Unauthorized},
		{"TUS 404 text", api(404, "", ""), storage.NotFound},
		{"TUS 409 text", api(409, "", ""), storage.Permanent},
		{"gateway 502 HTML", api(502, "", ""), storage.Transient},
		{"deadline", fmt.Errorf("wrapped: %w", context.DeadlineExceeded), storage.Transient},
		{"integrity", fmt.Errorf("%w: sha256 differs", storage.ErrIntegrity), storage.Integrity},
		{"unknown", fmt.Errorf("something"), storage.Permanent},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := classify(tc.err); got != tc.want {
				t.Errorf("classify(%v) = %s, want %s", tc.err, got, tc.want)
			}
		})
	}
	p := &Provider{name: "supabase"}
	err := p.fail("get", "k", &apiError{HTTPStatus: http.StatusTooManyRequests, retryAfter: 7e9})
	if storage.RetryAfterOf(err).Seconds() != 7 || !storage.Retryable(err) {
		t.Errorf("fail kept Retry-After %s, retryable %v", storage.RetryAfterOf(err), storage.Retryable(err))
	}
}

// serverKey is the Storage server's rule for object names.
var serverKey = regexp.MustCompile(`^[A-Za-z0-9_/!.*'() &$=@;:+,?-]*$`)

func TestKeyEncoding(t *testing.T) {
	cases := []struct{ key, name string }{
		{"backups/org-1/0b6c7c1e-8d5a-4c8e-9a51-3f1b2e7d9c40", "backups/org-1/0b6c7c1e-8d5a-4c8e-9a51-3f1b2e7d9c40"},
		{"with space & (parens)?", "with space & (parens)?"},
		{"bang!", "bang!21"},
		{"café", "caf!C3!A9"},
		{"100%", "100!25"},
		{`a"b#c~d\e[f]{g}|h^i` + "`", "a!22b!23c!7Ed!5Ce!5Bf!5D!7Bg!7D!7Ch!5Ei!60"},
		{"日本/語", "!E6!97!A5!E6!9C!AC/!E8!AA!9E"},
	}
	for _, tc := range cases {
		name := encodeKey(tc.key)
		if name != tc.name {
			t.Errorf("encodeKey(%q) = %q, want %q", tc.key, name, tc.name)
		}
		if !serverKey.MatchString(name) {
			t.Errorf("encodeKey(%q) = %q, which the server refuses", tc.key, name)
		}
		if back, ok := decodeKey(name); !ok || back != tc.key {
			t.Errorf("decodeKey(%q) = %q, %v, want %q", name, back, ok, tc.key)
		}
		// A prefix of a key encodes to a prefix of its name.
		for i := range len(tc.key) {
			if !strings.HasPrefix(name, encodeKey(tc.key[:i])) {
				t.Errorf("encodeKey(%q) is not a prefix of %q", tc.key[:i], name)
			}
		}
	}
	for _, bad := range []string{"a!", "a!4", "a!zz", "a!4g"} {
		if _, ok := decodeKey(bad); ok {
			t.Errorf("decodeKey(%q) accepted a name encodeKey never makes", bad)
		}
	}
}
