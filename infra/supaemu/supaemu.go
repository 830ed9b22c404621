// Package supaemu emulates the part of the Supabase Storage REST API that
// storage-go v0.8.1 and our Supabase provider use, so that both can be tested
// on a laptop and in CI without a Supabase project. It follows the open
// source Storage server (github.com/supabase/storage) and what
// shared/SUPABASE-API.md records of it: routes under /storage/v1, JSON error
// bodies whose statusCode carries the real code while the HTTP status is
// 400, HS256 JWT authentication with row-level security reduced to "the
// service role may do everything, other roles see nothing and write
// nothing", and TUS resumable uploads (through tusd) with hosted Supabase's
// 6 MiB chunks and multipart-style ETags.
//
// Object bytes stream to files under Config.Dir; the index is in memory, so
// a Server forgets its buckets when it stops. Memory stays flat in object
// size.
//
// Not emulated: image transformations, public-bucket routes, signed upload
// URLs, the S3 protocol, allowed_mime_types, and row-level security
// policies other than the rule above.
package supaemu

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
)

// Config describes an emulator.
type Config struct {
	// Dir holds object files and TUS uploads. Required; the caller owns it.
	Dir string
	// JWTSecret is the project's JWT secret: keys and signed URL tokens are
	// HS256 JWTs signed with it. Required.
	JWTSecret string
	// ChunkSize is the exact size every TUS PATCH but the last must have.
	// 0 means DefaultChunkSize; negative disables the check.
	ChunkSize int64
	// PartSize is the part size behind the "<hash>-<parts>" ETags of TUS
	// uploads. 0 means DefaultChunkSize (hosted Supabase's TUS parts).
	PartSize int64
	// MaxFileSize is the project's upload limit in bytes; 0 means none.
	MaxFileSize int64
	// Logger receives one line per request at debug level; nil discards.
	Logger *slog.Logger
}

// Server is the emulator, an http.Handler rooted at "/" that serves
// "/storage/v1/...". It is safe for concurrent use.
type Server struct {
	cfg   Config
	store *store
	tus   *resumable
	mux   *http.ServeMux
}

// New builds an emulator storing its objects under cfg.Dir.
func New(cfg Config) (*Server, error) {
	var errs []error
	if cfg.Dir == "" {
		errs = append(errs, errors.New("supaemu: Config.Dir is required"))
	}
	if cfg.JWTSecret == "" {
		errs = append(errs, errors.New("supaemu: Config.JWTSecret is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.ChunkSize == 0 {
		cfg.ChunkSize = DefaultChunkSize
	}
	if cfg.PartSize <= 0 {
		cfg.PartSize = DefaultChunkSize
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	st, err := newStore(cfg.Dir)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, store: st, mux: http.NewServeMux()}
	if s.tus, err = newResumable(s); err != nil {
		return nil, err
	}
	s.routes()
	return s, nil
}

func (s *Server) routes() {
	const v1 = "/storage/v1"
	m := s.mux
	m.HandleFunc("POST "+v1+"/bucket", s.authed(s.createBucket))
	m.HandleFunc("GET "+v1+"/bucket", s.authed(s.listBuckets))
	m.HandleFunc("GET "+v1+"/bucket/{id}", s.authed(s.getBucket))
	m.HandleFunc("PUT "+v1+"/bucket/{id}", s.authed(s.updateBucket))
	m.HandleFunc("DELETE "+v1+"/bucket/{id}", s.authed(s.deleteBucket))
	m.HandleFunc("POST "+v1+"/bucket/{id}/empty", s.authed(s.emptyBucket))

	m.HandleFunc("POST "+v1+"/object/list/{bucket}", s.authed(s.listObjects))
	m.HandleFunc("POST "+v1+"/object/move", s.authed(s.moveOrCopy(true)))
	m.HandleFunc("POST "+v1+"/object/copy", s.authed(s.moveOrCopy(false)))
	m.HandleFunc("POST "+v1+"/object/sign/{bucket}/{key...}", s.authed(s.sign))
	m.HandleFunc("GET "+v1+"/object/sign/{bucket}/{key...}", s.signedDownload)
	m.HandleFunc("GET "+v1+"/object/info/authenticated/{bucket}/{key...}", s.authed(s.info))
	m.HandleFunc("GET "+v1+"/object/info/{bucket}/{key...}", s.lenient(s.info))
	m.HandleFunc("GET "+v1+"/object/authenticated/{bucket}/{key...}", s.authed(s.download))
	m.HandleFunc("DELETE "+v1+"/object/{bucket}", s.authed(s.deleteMany))
	m.HandleFunc("POST "+v1+"/object/{bucket}/{key...}", s.authed(s.upload))
	m.HandleFunc("PUT "+v1+"/object/{bucket}/{key...}", s.authed(s.upload))
	m.HandleFunc("GET "+v1+"/object/{bucket}/{key...}", s.authed(s.download)) // and HEAD
	m.HandleFunc("DELETE "+v1+"/object/{bucket}/{key...}", s.authed(s.deleteOne))

	m.Handle(TUSPath, s.tus)
	m.Handle(TUSPath+"/", s.tus)
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.cfg.Logger.Debug("supaemu request", "method", r.Method, "path", r.URL.Path)
	s.mux.ServeHTTP(w, r)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
