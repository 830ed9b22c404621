// Package api is the backup service's HTTPS API as a plain net/http
// handler: intake (presigned uploads to the landing bucket), listing,
// status, download links to verified copies (with the data key of a sealed
// backup), on-demand verification and erasure.
// The same handler serves on Lambda (through aws-lambda-go-api-proxy) and
// locally.
//
// Every request except GET /, GET /openapi.json is authenticated and scoped
// to the caller's organization: another organization's backup answers 404,
// as if it did not exist. Errors are JSON {"error":{"code","message"}} with
// the stable codes declared in errors.go; a dependency's own error text is
// logged, never returned.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/policy"
	"github.com/wedsync/backup-replication/shared/storage"
)

// Limits and defaults.
const (
	DefaultMaxSize            int64 = 5 << 40   // 5 TiB, S3's largest object
	DefaultMultipartThreshold int64 = 100 << 20 // 100 MiB
	DefaultPartSize           int64 = 16 << 20  // 16 MiB
	MinPartSize               int64 = 8 << 20   // 8 MiB (S3 allows 5 MiB; we keep part counts low)
	MaxPartSize               int64 = 5 << 30   // S3's largest part
	MaxParts                        = 10000     // S3's most parts per upload
	DefaultPartURLBatch             = 1000      // part URLs per response
	DefaultUploadURLTTL             = 15 * time.Minute
	DefaultDownloadURLTTL           = 5 * time.Minute
	DefaultVerifyTimeout            = 25 * time.Second // under API Gateway's 30 s
	DefaultStatusScanLimit          = 5000
	DefaultProbeTimeout             = 20 * time.Second
)

// Config is the API's behaviour; zero fields take the defaults.
type Config struct {
	// MaxSize is the largest backup accepted, in bytes.
	MaxSize int64
	// MultipartThreshold: backups larger than this upload in parts.
	MultipartThreshold int64
	// PartSize is the smallest part size; it grows for large backups so
	// that no upload needs more than MaxParts parts.
	PartSize int64
	// PartURLBatch is how many part URLs one response carries; the rest
	// (and fresh ones, once they expire) come from POST /backups/{id}/parts.
	PartURLBatch int
	// UploadURLTTL and DownloadURLTTL bound presigned URLs' lives.
	UploadURLTTL   time.Duration
	DownloadURLTTL time.Duration
	// VerifyTimeout bounds POST /backups/{id}/verify.
	VerifyTimeout time.Duration
	// StatusScanLimit bounds how many backups GET /status counts.
	StatusScanLimit int
}

// WithDefaults returns c with zero fields set to the defaults.
func (c Config) WithDefaults() Config {
	def := func(v *int64, d int64) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.MaxSize, DefaultMaxSize)
	def(&c.MultipartThreshold, DefaultMultipartThreshold)
	def(&c.PartSize, DefaultPartSize)
	if c.PartURLBatch == 0 {
		c.PartURLBatch = DefaultPartURLBatch
	}
	if c.UploadURLTTL == 0 {
		c.UploadURLTTL = DefaultUploadURLTTL
	}
	if c.DownloadURLTTL == 0 {
		c.DownloadURLTTL = DefaultDownloadURLTTL
	}
	if c.VerifyTimeout == 0 {
		c.VerifyTimeout = DefaultVerifyTimeout
	}
	if c.StatusScanLimit == 0 {
		c.StatusScanLimit = DefaultStatusScanLimit
	}
	return c
}

// Validate reports every problem of c (after defaults) at once.
func (c Config) Validate() error {
	c = c.WithDefaults()
	var errs []error
	if c.MaxSize < 0 || c.MaxSize > DefaultMaxSize {
		errs = append(errs, fmt.Errorf("API_MAX_SIZE must be between 0 and %d", DefaultMaxSize))
	}
	if c.PartSize < MinPartSize || c.PartSize > MaxPartSize {
		errs = append(errs, fmt.Errorf("API_PART_SIZE must be between %d and %d", MinPartSize, MaxPartSize))
	}
	if c.MultipartThreshold < c.PartSize {
		errs = append(errs, errors.New("API_MULTIPART_THRESHOLD must be at least the part size"))
	}
	if c.PartURLBatch < 1 || c.PartURLBatch > MaxParts {
		errs = append(errs, fmt.Errorf("part URL batch must be between 1 and %d", MaxParts))
	}
	if c.UploadURLTTL < time.Minute || c.UploadURLTTL > time.Hour {
		errs = append(errs, errors.New("API_UPLOAD_URL_TTL must be between 1m and 1h"))
	}
	if c.DownloadURLTTL < time.Minute || c.DownloadURLTTL > time.Hour {
		errs = append(errs, errors.New("API_DOWNLOAD_URL_TTL must be between 1m and 1h"))
	}
	return errors.Join(errs...)
}

// Deps are what the handler talks to.
type Deps struct {
	// Store is the catalog. Required.
	Store catalog.Store
	// Landing presigns uploads into the landing bucket. Required.
	Landing Landing
	// Auth finds the caller. Required.
	Auth Authenticator
	// Providers are the replica providers by name.
	Providers map[string]storage.Provider
	// Signers, by provider name, make download URLs for providers that do
	// not implement Signer themselves (found with storage.As).
	Signers map[string]Signer
	// Policy is the 3-2-1 table; its order is the download order.
	Policy policy.Table
	// Health reports providers' states; nil reports "unknown".
	Health HealthSource
	// Keys releases a sealed backup's data key to its organization with
	// its download (keys.Store); nil: sealed backups answer 501.
	Keys KeyOpener
	// Eraser erases backups for DELETE /backups/{id} (erase.Eraser); nil:
	// 501.
	Eraser Eraser
	// Dashboard serves GET /; nil answers 404.
	Dashboard http.Handler
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives JSON logs (default slog.Default()).
	Logger *slog.Logger
}

// Handler is the API. Build it with New.
type Handler struct {
	cfg  Config
	deps Deps
	mux  *http.ServeMux
	log  *slog.Logger
}

// route is one row of the route table: the OpenAPI description and the
// route tests enumerate it.
type route struct {
	Method string
	Path   string // ServeMux / OpenAPI path syntax: /backups/{id}
	Public bool   // served without authentication
	Handle func(h *Handler, w http.ResponseWriter, r *http.Request, p Principal) *apiError
}

// routes is the API's route table.
var routes = []route{
	{"GET", "/", true, (*Handler).dashboard},
	{"GET", "/openapi.json", true, (*Handler).openAPI},
	{"POST", "/backups", false, (*Handler).createBackup},
	{"GET", "/backups", false, (*Handler).listBackups},
	{"GET", "/backups/{id}", false, (*Handler).getBackup},
	{"DELETE", "/backups/{id}", false, (*Handler).deleteBackup},
	{"POST", "/backups/{id}/complete", false, (*Handler).completeUpload},
	{"POST", "/backups/{id}/parts", false, (*Handler).partURLs},
	{"GET", "/backups/{id}/download", false, (*Handler).download},
	{"POST", "/backups/{id}/verify", false, (*Handler).verify},
	{"GET", "/status", false, (*Handler).status},
	{"GET", "/providers", false, (*Handler).providers},
	{"GET", "/providers/validate", false, (*Handler).validateProviders},
}

// Route is a method and path the API serves.
type Route struct{ Method, Path string }

// Routes lists every route the API serves, in table order.
func Routes() []Route {
	out := make([]Route, len(routes))
	for i, rt := range routes {
		out[i] = Route{rt.Method, rt.Path}
	}
	return out
}

// New checks cfg and deps and returns the API handler.
func New(cfg Config, deps Deps) (*Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var errs []error
	if deps.Store == nil {
		errs = append(errs, errors.New("api: Deps.Store is required"))
	}
	if deps.Landing == nil {
		errs = append(errs, errors.New("api: Deps.Landing is required"))
	}
	if deps.Auth == nil {
		errs = append(errs, errors.New("api: Deps.Auth is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	h := &Handler{cfg: cfg.WithDefaults(), deps: deps, mux: http.NewServeMux(), log: deps.Logger}
	allowed := map[string][]string{}
	for _, rt := range routes {
		h.mux.Handle(rt.Method+" "+muxPath(rt.Path), h.wrap(rt))
		allowed[rt.Path] = append(allowed[rt.Path], rt.Method)
	}
	for path, methods := range allowed {
		if path == "/" {
			continue // the catch-all below answers other methods on / with 404
		}
		h.mux.Handle(path, methodNotAllowed(methods))
	}
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, errorf(http.StatusNotFound, CodeRouteNotFound, "no such route"))
	})
	return h, nil
}

// muxPath maps "/" to the exact-match pattern "/{$}".
func muxPath(p string) string {
	if p == "/" {
		return "/{$}"
	}
	return p
}

func methodNotAllowed(methods []string) http.Handler {
	allow := ""
	for i, m := range methods {
		if i > 0 {
			allow += ", "
		}
		allow += m
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		writeError(w, errorf(http.StatusMethodNotAllowed, CodeMethodNotAllowed, "method not allowed; allowed: "+allow))
	})
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// wrap authenticates, runs a route and writes its error, logging one line
// per request (never the query string, tokens or URLs it hands out).
func (h *Handler) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		var p Principal
		var aerr *apiError
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				h.log.ErrorContext(r.Context(), "api panic", "op", rt.Method+" "+rt.Path, "panic", fmt.Sprint(v))
				if sw.status == 0 {
					writeError(sw, errInternal)
				}
			}
			h.log.InfoContext(r.Context(), "api request", "op", rt.Method+" "+rt.Path, "status", sw.status,
				"organization_id", p.OrganizationID, "backup_id", r.PathValue("id"),
				"duration_ms", time.Since(start).Milliseconds())
		}()
		if !rt.Public {
			var err error
			if p, err = h.deps.Auth.Authenticate(r); err != nil {
				h.log.InfoContext(r.Context(), "api unauthenticated", "op", rt.Method+" "+rt.Path, "error", err.Error())
				sw.Header().Set("WWW-Authenticate", `Bearer realm="backups"`)
				writeError(sw, errorf(http.StatusUnauthorized, CodeUnauthenticated, "a valid bearer token with an organization is required"))
				return
			}
		}
		if aerr = rt.Handle(h, sw, r, p); aerr != nil {
			writeError(sw, aerr)
		}
	})
}

// internal logs a dependency error and returns the generic 500.
func (h *Handler) internal(ctx context.Context, op string, err error, attrs ...any) *apiError {
	h.log.ErrorContext(ctx, "api dependency failed", append([]any{"op", op, "error", err.Error()}, attrs...)...)
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return errorf(http.StatusServiceUnavailable, CodeUnavailable, "a dependency did not answer in time; retry")
	}
	return errInternal
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

// WriteHeader records the first status written.
func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

// Write records an implicit 200.
func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
