package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/wedsync/backup-replication/shared/storage"
)

// MaxBodyBytes is the largest JSON request body accepted.
const MaxBodyBytes = 64 << 10

var idPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// ValidID reports whether s is a valid organization or backup id: 1–64 of
// A–Z, a–z, 0–9, '_' and '-'. Only such ids ever become part of an object key.
func ValidID(s string) bool { return idPattern.MatchString(s) }

// CreateBackupRequest is the body of POST /backups.
type CreateBackupRequest struct {
	OrganizationID string `json:"organizationId"`
	Name           string `json:"name"`
	// Size is a pointer so that a missing size is told apart from 0 B.
	Size           *int64 `json:"size"`
	SHA256         string `json:"sha256"`
	ContentType    string `json:"contentType"`
	IdempotencyKey string `json:"idempotencyKey"`
}

// CompleteRequest is the body of POST /backups/{id}/complete.
type CompleteRequest struct {
	UploadID string          `json:"uploadId"`
	Parts    []CompletedPart `json:"parts"`
}

// CompletedPart is one uploaded part: its number and the ETag S3 returned.
type CompletedPart struct {
	PartNumber int32  `json:"partNumber"`
	ETag       string `json:"etag"`
}

// PartsRequest is the body of POST /backups/{id}/parts: fresh URLs for
// parts From … From+Count-1 of an open multipart upload.
type PartsRequest struct {
	UploadID string `json:"uploadId"`
	From     int32  `json:"from"`
	Count    int32  `json:"count"`
}

// decodeJSON reads one JSON value of at most MaxBodyBytes into v, rejecting
// other media types, unknown fields and anything after the value.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) *apiError {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return errorf(http.StatusUnsupportedMediaType, CodeUnsupportedMediaType, "request body must be application/json")
		}
	}
	return decodeBody(http.MaxBytesReader(w, r.Body, MaxBodyBytes), v)
}

// decodeBody is decodeJSON's reader part, shared with the fuzz target.
func decodeBody(body io.Reader, v any) *apiError {
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	var extra json.RawMessage
	switch err := dec.Decode(&extra); {
	case err == io.EOF:
		return nil
	case err != nil && isTooLarge(err):
		return jsonError(err)
	default:
		return badRequest(CodeTrailingData, "request body must hold exactly one JSON object")
	}
}

func isTooLarge(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}

// jsonError turns a decoder error into a client error without echoing
// more of the input than a field name.
func jsonError(err error) *apiError {
	var ute *json.UnmarshalTypeError
	switch {
	case isTooLarge(err):
		return errorf(http.StatusRequestEntityTooLarge, CodeBodyTooLarge, fmt.Sprintf("request body exceeds %d bytes", MaxBodyBytes))
	case errors.Is(err, io.EOF):
		return badRequest(CodeInvalidJSON, "request body is empty")
	case errors.As(err, &ute):
		if code, ok := fieldCodes[ute.Field]; ok {
			return badRequest(code, fmt.Sprintf("%s has the wrong JSON type (%s)", ute.Field, ute.Value))
		}
		return badRequest(CodeInvalidJSON, fmt.Sprintf("field %q has the wrong JSON type", ute.Field))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// encoding/json has no typed error for this; its message is stable.
		return badRequest(CodeUnknownField, strings.TrimPrefix(err.Error(), "json: "))
	}
	return badRequest(CodeInvalidJSON, "request body is not valid JSON")
}

// fieldCodes maps JSON field names to the code of their validation error.
var fieldCodes = map[string]string{
	"organizationId": CodeInvalidOrganizationID,
	"name":           CodeInvalidName,
	"size":           CodeInvalidSize,
	"sha256":         CodeInvalidSHA256,
	"contentType":    CodeInvalidContentType,
	"idempotencyKey": CodeInvalidIdempotencyKey,
	"uploadId":       CodeInvalidUploadID,
	"parts":          CodeInvalidParts,
	"from":           CodeInvalidParts,
	"count":          CodeInvalidParts,
}

// validate checks every field of a create request and returns all problems
// at once, the first one as the error's code. maxSize is the largest
// backup accepted.
func (req *CreateBackupRequest) validate(maxSize int64) *apiError {
	var fe []fieldError
	add := func(field, code, msg string) { fe = append(fe, fieldError{field, code, msg}) }
	if !ValidID(req.OrganizationID) {
		add("organizationId", CodeInvalidOrganizationID, "organizationId must be 1-64 characters of A-Z, a-z, 0-9, '_' or '-'")
	}
	if msg := nameProblem(req.Name); msg != "" {
		add("name", CodeInvalidName, msg)
	}
	switch {
	case req.Size == nil:
		add("size", CodeInvalidSize, "size is required (bytes, 0 or more)")
	case *req.Size < 0 || *req.Size > maxSize:
		add("size", CodeInvalidSize, fmt.Sprintf("size must be between 0 and %d bytes", maxSize))
	}
	if !storage.ValidSHA256(req.SHA256) {
		add("sha256", CodeInvalidSHA256, "sha256 must be 64 lowercase hex characters")
	}
	if ct, msg := canonicalContentType(req.ContentType); msg != "" {
		add("contentType", CodeInvalidContentType, msg)
	} else {
		req.ContentType = ct
	}
	if !validIdempotencyKey(req.IdempotencyKey) {
		add("idempotencyKey", CodeInvalidIdempotencyKey, "idempotencyKey must be 1-128 printable ASCII characters without spaces")
	}
	if len(fe) == 0 {
		return nil
	}
	return &apiError{Status: http.StatusBadRequest, Code: fe[0].Code, Message: fe[0].Message, Fields: fe}
}

// nameProblem says what is wrong with a backup's display name, or "".
func nameProblem(name string) string {
	switch {
	case name == "":
		return "name is required"
	case !utf8.ValidString(name) || strings.ContainsRune(name, utf8.RuneError):
		// encoding/json turns invalid UTF-8 into U+FFFD, so refuse that too.
		return "name must be valid UTF-8"
	case utf8.RuneCountInString(name) > 255:
		return "name must be at most 255 characters"
	case strings.ContainsAny(name, `/\`):
		return "name must not contain path separators"
	case strings.Contains(name, ".."):
		return "name must not contain '..'"
	case strings.TrimSpace(name) == "" || strings.TrimSpace(name) != name:
		return "name must not begin or end with white space"
	}
	for _, r := range name {
		if unicode.IsControl(r) || isBidiControl(r) {
			return "name must not contain control characters"
		}
	}
	return ""
}

// isBidiControl reports the invisible direction marks that make a name
// display differently from what it is ("invoice\u202Efdp.exe").
func isBidiControl(r rune) bool {
	return r == 0x061C || r == 0x200E || r == 0x200F || (r >= 0x202A && r <= 0x202E) || (r >= 0x2066 && r <= 0x2069)
}

var (
	// Top-level media types a backup may declare. multipart/* and message/*
	// are not archives; application/x-www-form-urlencoded is refused too,
	// because some servers treat such a PUT body as a form.
	allowedTopTypes = map[string]bool{"application": true, "text": true, "image": true, "audio": true, "video": true, "font": true, "model": true}
	subtypePattern  = regexp.MustCompile(`^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$`)
	charsetPattern  = regexp.MustCompile(`^[a-z0-9][a-z0-9_.:-]{0,39}$`)
)

// canonicalContentType parses a media type and returns it in canonical
// form, or a message saying why it is refused. Only a charset parameter is
// allowed.
func canonicalContentType(ct string) (string, string) {
	if ct == "" {
		return "", "contentType is required, e.g. application/zip"
	}
	if len(ct) > 255 {
		return "", "contentType must be at most 255 characters"
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return "", "contentType is not a valid media type"
	}
	top, sub, _ := strings.Cut(mt, "/")
	if !allowedTopTypes[top] || !subtypePattern.MatchString(sub) || mt == "application/x-www-form-urlencoded" {
		return "", fmt.Sprintf("contentType %q is not accepted for backups", mt)
	}
	for k, v := range params {
		if k != "charset" || !charsetPattern.MatchString(strings.ToLower(v)) {
			return "", "contentType may carry only a charset parameter"
		}
		params[k] = strings.ToLower(v)
	}
	return mime.FormatMediaType(mt, params), ""
}

func validIdempotencyKey(k string) bool {
	if len(k) < 1 || len(k) > 128 {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return false
		}
	}
	return true
}
