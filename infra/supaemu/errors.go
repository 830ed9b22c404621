package supaemu

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// apiError is an error as the Storage server renders it: a JSON body whose
// statusCode (a string) carries the real code, sent with HTTP 400 for every
// 4xx except where the server sets its own status (416 for ranges), and
// with the real status for 5xx.
type apiError struct {
	status  int    // the code in the body
	http    int    // the HTTP status sent; 0 means 400 (500 for status 500)
	error   string // the "error" field
	message string
	code    string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

// httpStatus is the status line the server sends for e.
func (e *apiError) httpStatus() int {
	switch {
	case e.http != 0:
		return e.http
	case e.status >= 500:
		return e.status
	}
	return http.StatusBadRequest
}

// write sends e. HEAD responses carry the headers but no body, as the real
// server's do.
func (e *apiError) write(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	if e.status == http.StatusNotFound {
		w.Header().Set("Cache-Control", "no-store")
	}
	w.WriteHeader(e.httpStatus())
	if r.Method == http.MethodHead {
		return
	}
	json.NewEncoder(w).Encode(map[string]string{
		"statusCode": strconv.Itoa(e.status),
		"error":      e.error,
		"message":    e.message,
		"code":       e.code,
	})
}

// The errors the emulator answers with, spelled as the Storage server
// spells them (src/internal/errors/codes.ts and SUPABASE-API.md).
func errNoSuchKey() *apiError {
	return &apiError{status: 404, error: "not_found", message: "Object not found", code: "NoSuchKey"}
}

func errNoSuchBucket() *apiError {
	return &apiError{status: 404, error: "Bucket not found", message: "Bucket not found", code: "NoSuchBucket"}
}

func errKeyAlreadyExists() *apiError {
	return &apiError{status: 409, error: "Duplicate", message: "The resource already exists", code: "KeyAlreadyExists"}
}

func errBucketAlreadyExists() *apiError {
	return &apiError{status: 409, error: "Duplicate", message: "The resource already exists", code: "BucketAlreadyExists"}
}

func errBucketNotEmpty() *apiError {
	return &apiError{status: 409, error: "ResourceNotEmpty", message: "The bucket you tried to delete is not empty", code: "ResourceNotEmpty"}
}

func errAccessDenied(message string) *apiError {
	return &apiError{status: 403, error: "Unauthorized", message: message, code: "AccessDenied"}
}

// errRLS is what a non-service role gets when it writes: no row-level
// security policy lets it.
func errRLS() *apiError { return errAccessDenied("new row violates row-level security policy") }

func errMissingAuthorization() *apiError {
	return &apiError{status: 400, error: "Error", message: "headers must have required property 'authorization'", code: "InvalidRequest"}
}

func errInvalidJWT(message string) *apiError {
	return &apiError{status: 400, error: "InvalidJWT", message: message, code: "InvalidJWT"}
}

func errInvalidSignature(message string) *apiError {
	return &apiError{status: 400, error: "InvalidSignature", message: message, code: "InvalidSignature"}
}

func errInvalidRange() *apiError {
	return &apiError{status: 416, http: http.StatusRequestedRangeNotSatisfiable, error: "invalid_range", message: "invalid range provided", code: "InvalidRange"}
}

func errInvalidKey(key string) *apiError {
	return &apiError{status: 400, error: "InvalidKey", message: "Invalid key: " + key, code: "InvalidKey"}
}

func errInvalidRequest(message string) *apiError {
	return &apiError{status: 400, error: "InvalidRequest", message: message, code: "InvalidRequest"}
}

func errEntityTooLarge() *apiError {
	return &apiError{status: 413, error: "Payload too large", message: "The object exceeded the maximum allowed size", code: "EntityTooLarge"}
}

func errInternal() *apiError {
	return &apiError{status: 500, error: "Internal", message: "Internal Server Error", code: "InternalError"}
}
