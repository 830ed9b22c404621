package supabase

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/wedsync/backup-replication/shared/secret"
)

// DefaultName is the provider name of the primary copy.
const DefaultName = "supabase"

// ChunkSize is the size of every TUS PATCH but the last. Supabase requires
// exactly 6 MiB, so it is not configurable; each upload in flight buffers
// one chunk.
const ChunkSize = 6 << 20

// DefaultTUSThreshold is the size above which objects go by TUS when
// Config.TUSThreshold is 0: Supabase recommends its standard upload for
// objects up to 6 MB and resumable uploads above.
const DefaultTUSThreshold = ChunkSize

// DefaultHTTPTimeout bounds one request without a streaming body, one TUS
// chunk, and the wait for response headers, when Config.HTTPTimeout is 0.
const DefaultHTTPTimeout = 60 * time.Second

// Config is what the Supabase provider needs. The environment loader fills
// it; this package reads no environment variable itself.
type Config struct {
	// Name is the provider's name in logs, breakers and the catalog
	// ("supabase", or e.g. "supabase-standby"). Empty means DefaultName.
	Name string
	// URL is the project URL, "https://<ref>.supabase.co" (a trailing
	// "/storage/v1" is accepted too). Required.
	URL string
	// ServiceKey is the project's service_role key (a JWT, or a secret
	// key), sent as both apikey and bearer token. Required.
	ServiceKey secret.Secret
	// Bucket holds the copies; it should be private. Required.
	Bucket string
	// TUSThreshold is the largest object sent in one request; larger ones
	// go by TUS in ChunkSize chunks. 0 means DefaultTUSThreshold.
	TUSThreshold int64
	// HTTPTimeout bounds each request without a streaming body, each TUS
	// chunk, and each wait for response headers; streams are bounded by the
	// caller's context only. 0 means DefaultHTTPTimeout.
	HTTPTimeout time.Duration
}

// Validate reports every problem with c at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("supabase config %q: %s: %s", c.name(), field, fmt.Sprintf(format, args...)))
	}
	if c.URL == "" {
		bad("URL", "required (the project URL, https://<ref>.supabase.co)")
	} else if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("URL", "%q is not an http(s) URL", c.URL)
	}
	if c.ServiceKey.IsZero() {
		bad("ServiceKey", "required (the project's service_role key)")
	}
	if c.Bucket == "" {
		bad("Bucket", "required")
	} else if strings.Contains(c.Bucket, "/") {
		bad("Bucket", "%q contains a slash", c.Bucket)
	}
	if c.TUSThreshold < 0 {
		bad("TUSThreshold", "%d is negative", c.TUSThreshold)
	}
	if c.HTTPTimeout < 0 {
		bad("HTTPTimeout", "%s is negative", c.HTTPTimeout)
	}
	return errors.Join(errs...)
}

// LogValue shows the configuration without the key.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("name", c.name()),
		slog.String("url", c.URL),
		slog.String("bucket", c.Bucket),
		slog.Any("service_key", c.ServiceKey),
		slog.Int64("tus_threshold", c.tusThreshold()),
		slog.Duration("http_timeout", c.httpTimeout()),
	)
}

func (c Config) name() string {
	if c.Name == "" {
		return DefaultName
	}
	return c.Name
}

func (c Config) tusThreshold() int64 {
	if c.TUSThreshold == 0 {
		return DefaultTUSThreshold
	}
	return c.TUSThreshold
}

func (c Config) httpTimeout() time.Duration {
	if c.HTTPTimeout == 0 {
		return DefaultHTTPTimeout
	}
	return c.HTTPTimeout
}

// storageURL is the Storage API's base, ".../storage/v1", without a
// trailing slash.
func (c Config) storageURL() string {
	u := strings.TrimRight(c.URL, "/")
	if !strings.HasSuffix(u, "/storage/v1") {
		u += "/storage/v1"
	}
	return u
}
