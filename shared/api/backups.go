package api

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/policy"
)

// LandingKey is the landing bucket key of a backup; provider copies use
// the same key. Both ids must be valid (ValidID).
func LandingKey(organizationID, backupID string) string {
	return "backups/" + organizationID + "/" + backupID
}

// Upload tells the client how to send a backup's bytes: one presigned PUT
// (Method, URL, Headers) or, above the multipart threshold, Multipart.
type Upload struct {
	Method    string            `json:"method,omitempty"`
	URL       string            `json:"url,omitempty"`
	Headers   map[string]string `json:"headers,omitempty"`
	Multipart *Multipart        `json:"multipart,omitempty"`
	ExpiresAt time.Time         `json:"expiresAt"`
}

// Multipart is an open multipart upload: PUT each part to its URL (exactly
// Size bytes), keep each response's ETag, then POST them to Complete.
type Multipart struct {
	UploadID  string    `json:"uploadId"`
	PartSize  int64     `json:"partSize"`
	PartCount int32     `json:"partCount"`
	Parts     []PartURL `json:"parts"`
	Complete  string    `json:"complete"`
	// More is where fresh or further part URLs come from.
	More string `json:"more"`
}

// PartURL is a presigned PUT of one part.
type PartURL struct {
	PartNumber int32             `json:"partNumber"`
	Size       int64             `json:"size"`
	URL        string            `json:"url"`
	Headers    map[string]string `json:"headers,omitempty"`
}

// BackupResponse is the answer to POST /backups.
type BackupResponse struct {
	Backup catalog.Backup `json:"backup"`
	Upload Upload         `json:"upload"`
}

func (h *Handler) createBackup(w http.ResponseWriter, r *http.Request, p Principal) *apiError {
	var req CreateBackupRequest
	if e := decodeJSON(w, r, &req); e != nil {
		return e
	}
	if e := req.validate(h.cfg.MaxSize); e != nil {
		return e
	}
	if req.OrganizationID != p.OrganizationID {
		return errorf(http.StatusForbidden, CodeForbidden, "you may only create backups for your own organization")
	}
	now := h.deps.Now().UTC()
	id := NewID(now)
	b := catalog.Backup{
		ID: id, OrganizationID: req.OrganizationID, Name: req.Name, Size: *req.Size, SHA256: req.SHA256,
		ContentType: req.ContentType, IdempotencyKey: req.IdempotencyKey, LandingKey: LandingKey(req.OrganizationID, id),
		Status: catalog.StatusPending, CreatedAt: now, UpdatedAt: now,
	}
	ctx := r.Context()
	out, created, err := h.deps.Store.CreateBackup(ctx, b)
	if err != nil {
		return h.internal(ctx, "create_backup", err, "backup_id", id)
	}
	if !created && (out.Name != b.Name || out.Size != b.Size || out.SHA256 != b.SHA256 || out.ContentType != b.ContentType) {
		return errorf(http.StatusConflict, CodeIdempotencyConflict,
			"idempotencyKey was already used for a different backup ("+out.ID+")")
	}
	status := http.StatusCreated
	if !created {
		status = http.StatusOK
	}
	if out.Status != catalog.StatusPending {
		// The bytes already landed: nothing to upload again.
		writeJSON(w, status, map[string]any{"backup": out})
		return nil
	}
	up, aerr := h.upload(r, out)
	if aerr != nil {
		return aerr
	}
	h.log.InfoContext(ctx, "backup registered", "backup_id", out.ID, "organization_id", out.OrganizationID,
		"bytes", out.Size, "created", created, "multipart", up.Multipart != nil)
	writeJSON(w, status, BackupResponse{Backup: out, Upload: up})
	return nil
}

// partLayout returns the part size and count for a multipart upload of
// size bytes: at least cfg.PartSize, whole MiB, at most MaxParts parts.
func (h *Handler) partLayout(size int64) (int64, int32) {
	ps := h.cfg.PartSize
	if min := (size + MaxParts - 1) / MaxParts; min > ps {
		ps = (min + (1 << 20) - 1) &^ ((1 << 20) - 1)
	}
	return ps, int32((size + ps - 1) / ps)
}

// upload presigns the upload of b's bytes.
func (h *Handler) upload(r *http.Request, b catalog.Backup) (Upload, *apiError) {
	ctx := r.Context()
	ttl := h.cfg.UploadURLTTL
	exp := h.deps.Now().UTC().Add(ttl).Truncate(time.Second)
	if b.Size <= h.cfg.MultipartThreshold {
		ps, err := h.deps.Landing.PresignPut(ctx, b.LandingKey, b.Size, b.SHA256, b.ContentType, ttl)
		if err != nil {
			return Upload{}, h.internal(ctx, "presign_put", err, "backup_id", b.ID)
		}
		return Upload{Method: ps.Method, URL: ps.URL, Headers: ps.Headers, ExpiresAt: exp}, nil
	}
	uploadID, err := h.deps.Landing.CreateMultipart(ctx, b.LandingKey, b.ContentType)
	if err != nil {
		return Upload{}, h.internal(ctx, "create_multipart", err, "backup_id", b.ID)
	}
	partSize, n := h.partLayout(b.Size)
	count := min(n, int32(h.cfg.PartURLBatch))
	parts, aerr := h.presignParts(r, b, uploadID, 1, count)
	if aerr != nil {
		return Upload{}, aerr
	}
	return Upload{ExpiresAt: exp, Multipart: &Multipart{
		UploadID: uploadID, PartSize: partSize, PartCount: n, Parts: parts,
		Complete: "/backups/" + b.ID + "/complete", More: "/backups/" + b.ID + "/parts",
	}}, nil
}

// presignParts presigns parts from … from+count-1 of b's multipart upload.
func (h *Handler) presignParts(r *http.Request, b catalog.Backup, uploadID string, from, count int32) ([]PartURL, *apiError) {
	partSize, n := h.partLayout(b.Size)
	out := make([]PartURL, 0, count)
	for pn := from; pn < from+count && pn <= n; pn++ {
		size := partSize
		if pn == n {
			size = b.Size - int64(n-1)*partSize
		}
		ps, err := h.deps.Landing.PresignPart(r.Context(), b.LandingKey, uploadID, pn, size, h.cfg.UploadURLTTL)
		if err != nil {
			return nil, h.internal(r.Context(), "presign_part", err, "backup_id", b.ID)
		}
		out = append(out, PartURL{PartNumber: pn, Size: size, URL: ps.URL, Headers: ps.Headers})
	}
	return out, nil
}

// ownBackup loads backup {id} for p, answering 404 for a backup of another
// organization exactly as for one that does not exist.
func (h *Handler) ownBackup(r *http.Request, p Principal) (catalog.Backup, *apiError) {
	id := r.PathValue("id")
	if !ValidID(id) {
		return catalog.Backup{}, badRequest(CodeInvalidID, "backup id must be 1-64 characters of A-Z, a-z, 0-9, '_' or '-'")
	}
	b, err := h.deps.Store.GetBackup(r.Context(), id)
	if errors.Is(err, catalog.ErrNotFound) {
		return catalog.Backup{}, errNotFound
	}
	if err != nil {
		return catalog.Backup{}, h.internal(r.Context(), "get_backup", err, "backup_id", id)
	}
	if b.OrganizationID != p.OrganizationID {
		return catalog.Backup{}, errNotFound
	}
	return b, nil
}

func (h *Handler) completeUpload(w http.ResponseWriter, r *http.Request, p Principal) *apiError {
	b, aerr := h.ownBackup(r, p)
	if aerr != nil {
		return aerr
	}
	var req CompleteRequest
	if e := decodeJSON(w, r, &req); e != nil {
		return e
	}
	if b.Size <= h.cfg.MultipartThreshold {
		return errorf(http.StatusConflict, CodeNotMultipart, "this backup uploads with a single PUT; there is nothing to complete")
	}
	if !validUploadID(req.UploadID) {
		return badRequest(CodeInvalidUploadID, "uploadId must be the id returned by POST /backups")
	}
	_, n := h.partLayout(b.Size)
	if len(req.Parts) != int(n) {
		return badRequest(CodeInvalidParts, fmt.Sprintf("expected %d parts, got %d", n, len(req.Parts)))
	}
	for i, pt := range req.Parts {
		if pt.PartNumber != int32(i+1) || pt.ETag == "" || len(pt.ETag) > 128 {
			return badRequest(CodeInvalidParts, fmt.Sprintf("parts[%d] must be part number %d with its ETag", i, i+1))
		}
	}
	ctx := r.Context()
	size, err := h.deps.Landing.CompleteMultipart(ctx, b.LandingKey, req.UploadID, req.Parts)
	switch {
	case errors.Is(err, ErrUploadNotFound):
		return errorf(http.StatusConflict, CodeUploadNotFound, "no open upload with this id; it was completed, aborted or expired")
	case errors.Is(err, ErrBadParts):
		h.log.InfoContext(ctx, "multipart refused", "backup_id", b.ID, "error", err.Error())
		return errorf(http.StatusConflict, CodeUploadIncomplete, "the storage refused the parts: each must be uploaded with its ETag given in order")
	case err != nil:
		return h.internal(ctx, "complete_multipart", err, "backup_id", b.ID)
	}
	h.log.InfoContext(ctx, "multipart completed", "backup_id", b.ID, "bytes", size, "parts", n)
	writeJSON(w, http.StatusOK, map[string]any{"backup": b, "bytes": size})
	return nil
}

func validUploadID(s string) bool {
	if len(s) < 1 || len(s) > 1024 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func (h *Handler) partURLs(w http.ResponseWriter, r *http.Request, p Principal) *apiError {
	b, aerr := h.ownBackup(r, p)
	if aerr != nil {
		return aerr
	}
	var req PartsRequest
	if e := decodeJSON(w, r, &req); e != nil {
		return e
	}
	if b.Size <= h.cfg.MultipartThreshold {
		return errorf(http.StatusConflict, CodeNotMultipart, "this backup uploads with a single PUT")
	}
	if b.Status != catalog.StatusPending {
		return errorf(http.StatusConflict, CodeConflict, "this backup's bytes have already landed")
	}
	if !validUploadID(req.UploadID) {
		return badRequest(CodeInvalidUploadID, "uploadId must be the id returned by POST /backups")
	}
	_, n := h.partLayout(b.Size)
	if req.From < 1 || req.From > n || req.Count < 1 || req.Count > int32(h.cfg.PartURLBatch) {
		return badRequest(CodeInvalidParts, fmt.Sprintf("from must be 1-%d and count 1-%d", n, h.cfg.PartURLBatch))
	}
	parts, aerr := h.presignParts(r, b, req.UploadID, req.From, req.Count)
	if aerr != nil {
		return aerr
	}
	exp := h.deps.Now().UTC().Add(h.cfg.UploadURLTTL).Truncate(time.Second)
	writeJSON(w, http.StatusOK, map[string]any{"parts": parts, "expiresAt": exp})
	return nil
}

func (h *Handler) listBackups(w http.ResponseWriter, r *http.Request, p Principal) *apiError {
	q := r.URL.Query()
	org := q.Get("organizationId")
	if org == "" {
		org = p.OrganizationID
	}
	if !ValidID(org) {
		return badRequest(CodeInvalidOrganizationID, "organizationId must be 1-64 characters of A-Z, a-z, 0-9, '_' or '-'")
	}
	if org != p.OrganizationID {
		return errorf(http.StatusForbidden, CodeForbidden, "you may only list your own organization's backups")
	}
	lq := catalog.ListQuery{OrganizationID: org, Limit: 50, Cursor: q.Get("cursor")}
	if s := q.Get("status"); s != "" {
		if !validStatus(catalog.Status(s)) {
			return badRequest(CodeInvalidStatus, "status must be one of PENDING, REPLICATING, PROTECTED, AT_RISK, FAILED, ERASED")
		}
		lq.Status = catalog.Status(s)
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 200 {
			return badRequest(CodeInvalidLimit, "limit must be an integer from 1 to 200")
		}
		lq.Limit = n
	}
	if len(lq.Cursor) > 2048 || !printableASCII(lq.Cursor) {
		return badRequest(CodeInvalidCursor, "cursor must be the next value of a previous page")
	}
	page, err := h.deps.Store.ListBackups(r.Context(), lq)
	if err != nil {
		if errors.Is(err, catalog.ErrInvalidCursor) {
			return badRequest(CodeInvalidCursor, "cursor must be the next value of a previous page")
		}
		return h.internal(r.Context(), "list_backups", err)
	}
	if page.Backups == nil {
		page.Backups = []catalog.Backup{}
	}
	writeJSON(w, http.StatusOK, page)
	return nil
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func validStatus(s catalog.Status) bool {
	switch s {
	case catalog.StatusPending, catalog.StatusReplicating, catalog.StatusProtected,
		catalog.StatusAtRisk, catalog.StatusFailed, catalog.StatusErased:
		return true
	}
	return false
}

// BackupDetail is the answer to GET /backups/{id}.
type BackupDetail struct {
	Backup   catalog.Backup    `json:"backup"`
	Replicas []catalog.Replica `json:"replicas"`
	Policy   policy.Result     `json:"policy"`
}

func (h *Handler) getBackup(w http.ResponseWriter, r *http.Request, p Principal) *apiError {
	b, aerr := h.ownBackup(r, p)
	if aerr != nil {
		return aerr
	}
	reps, err := h.deps.Store.Replicas(r.Context(), b.ID)
	if err != nil {
		return h.internal(r.Context(), "replicas", err, "backup_id", b.ID)
	}
	if reps == nil {
		reps = []catalog.Replica{}
	}
	writeJSON(w, http.StatusOK, BackupDetail{Backup: b, Replicas: reps, Policy: policy.Evaluate(b, reps, h.deps.Policy)})
	return nil
}
