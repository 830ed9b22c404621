package api

import (
	"encoding/json"
	"net/http"
)

// Error codes. They are part of the API: clients match on them, so they
// never change meaning. Messages are for people and may be reworded.
const (
	CodeInvalidJSON           = "invalid_json"
	CodeBodyTooLarge          = "body_too_large"
	CodeUnknownField          = "unknown_field"
	CodeTrailingData          = "trailing_data"
	CodeUnsupportedMediaType  = "unsupported_media_type"
	CodeInvalidOrganizationID = "invalid_organization_id"
	CodeInvalidName           = "invalid_name"
	CodeInvalidSize           = "invalid_size"
	CodeInvalidSHA256         = "invalid_sha256"
	CodeInvalidContentType    = "invalid_content_type"
	CodeInvalidIdempotencyKey = "invalid_idempotency_key"
	CodeInvalidID             = "invalid_id"
	CodeInvalidStatus         = "invalid_status"
	CodeInvalidLimit          = "invalid_limit"
	CodeInvalidCursor         = "invalid_cursor"
	CodeInvalidUploadID       = "invalid_upload_id"
	CodeInvalidParts          = "invalid_parts"
	CodeUnauthenticated       = "unauthenticated"
	CodeForbidden             = "forbidden"
	CodeNotFound              = "not_found"
	CodeRouteNotFound         = "route_not_found"
	CodeMethodNotAllowed      = "method_not_allowed"
	CodeIdempotencyConflict   = "idempotency_key_reused"
	CodeNotMultipart          = "not_multipart"
	CodeUploadNotFound        = "upload_not_found"
	CodeUploadIncomplete      = "upload_incomplete"
	CodeNotLanded             = "not_landed"
	CodeNoVerifiedCopy        = "no_verified_copy"
	CodeNoDownloadableCopy    = "no_downloadable_copy"
	CodeConflict              = "conflict"
	CodeErased                = "erased"
	CodeNotConfigured         = "not_configured"
	CodeUnavailable           = "unavailable"
	CodeInternal              = "internal"
)

// apiError is an error with an HTTP status, a stable code and a message a
// person can act on. Handlers return it; nothing else reaches a body.
type apiError struct {
	Status  int          `json:"-"`
	Code    string       `json:"code"`
	Message string       `json:"message"`
	Fields  []fieldError `json:"fields,omitempty"`
}

// fieldError names one invalid request field.
type fieldError struct {
	Field   string `json:"field"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Error implements error.
func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func errorf(status int, code, msg string) *apiError {
	return &apiError{Status: status, Code: code, Message: msg}
}

func badRequest(code, msg string) *apiError { return errorf(http.StatusBadRequest, code, msg) }

var (
	errNotFound = errorf(http.StatusNotFound, CodeNotFound, "no such backup")
	errInternal = errorf(http.StatusInternalServerError, CodeInternal, "internal error; it has been logged")
)

// writeJSON answers with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(true)
	enc.Encode(v)
}

// writeError answers with e as {"error": {...}}.
func writeError(w http.ResponseWriter, e *apiError) {
	writeJSON(w, e.Status, map[string]*apiError{"error": e})
}
