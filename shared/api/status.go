package api

import (
	"context"
	_ "embed"
	"net/http"
	"sort"
	"time"

	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/policy"
	"github.com/wedsync/backup-replication/shared/validate"
)

// StatusReport is the answer to GET /status: the caller's organization's
// backups counted by status, the oldest of them AT_RISK, and every
// provider's state.
type StatusReport struct {
	OrganizationID string                 `json:"organizationId"`
	Counts         map[catalog.Status]int `json:"counts"`
	Counted        int                    `json:"counted"`
	// Complete is false when there were more than the scan limit of
	// backups and the counts cover only the first ones.
	Complete     bool              `json:"complete"`
	OldestAtRisk *catalog.Backup   `json:"oldestAtRisk,omitempty"`
	Providers    []ProviderSummary `json:"providers"`
	At           time.Time         `json:"at"`
}

// ProviderSummary is one provider as GET /providers and GET /status show
// it: its row in the policy table, whether it is configured here, whether
// downloads can use it, and its health.
type ProviderSummary struct {
	Name   string      `json:"name"`
	Role   policy.Role `json:"role"`
	Cloud  string      `json:"cloud"`
	Domain string      `json:"domain"`
	// FailureDomain is "cloud/domain": copies count once per failure domain.
	FailureDomain string         `json:"failureDomain"`
	Order         int            `json:"order"`
	Configured    bool           `json:"configured"`
	Downloadable  bool           `json:"downloadable"`
	Health        ProviderHealth `json:"health"`
}

func (h *Handler) providerSummaries(r *http.Request) []ProviderSummary {
	health := h.health(r.Context())
	var out []ProviderSummary
	seen := map[string]bool{}
	for _, pp := range h.deps.Policy.DownloadOrder() {
		seen[pp.Name] = true
		_, configured := h.deps.Providers[pp.Name]
		_, signs := h.signer(pp.Name)
		out = append(out, ProviderSummary{Name: pp.Name, Role: pp.Role, Cloud: pp.Cloud, Domain: pp.Domain,
			FailureDomain: pp.FailureDomain(), Order: pp.Order, Configured: configured, Downloadable: signs && configured,
			Health: healthOf(health, pp.Name)})
	}
	// Configured providers missing from the table hold copies that do not
	// count; show them so that the mistake is visible.
	var extra []string
	for name := range h.deps.Providers {
		if !seen[name] {
			extra = append(extra, name)
		}
	}
	sort.Strings(extra)
	for _, name := range extra {
		_, signs := h.signer(name)
		out = append(out, ProviderSummary{Name: name, Role: "unlisted", Configured: true, Downloadable: signs,
			Health: healthOf(health, name)})
	}
	if out == nil {
		out = []ProviderSummary{}
	}
	return out
}

func (h *Handler) providers(w http.ResponseWriter, r *http.Request, p Principal) *apiError {
	writeJSON(w, http.StatusOK, map[string]any{"providers": h.providerSummaries(r)})
	return nil
}

// ProbeReport is one provider's canary round trip in GET /providers/validate
// (validate.Result): provider, ok, the step that failed (put, get, verify,
// delete) and its error kind, a message for a person saying what to look
// at, latencyMs and at. The error text itself is logged, not returned.
type ProbeReport = validate.Result

// validateProviders runs the canary (write, read back, delete) on every
// configured provider at once (validate.Check).
func (h *Handler) validateProviders(w http.ResponseWriter, r *http.Request, _ Principal) *apiError {
	ctx, cancel := context.WithTimeout(r.Context(), DefaultProbeTimeout)
	defer cancel()
	out := validate.Check(ctx, h.deps.Providers)
	for _, p := range out {
		if p.Err != nil {
			h.log.WarnContext(ctx, "provider probe failed", "provider", p.Provider, "op", "probe", "step", p.Step,
				"kind", p.Kind, "duration_ms", p.LatencyMs, "error", p.Err.Error())
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": validate.AllOK(out), "providers": out})
	return nil
}

func (h *Handler) status(w http.ResponseWriter, r *http.Request, p Principal) *apiError {
	ctx := r.Context()
	rep := StatusReport{OrganizationID: p.OrganizationID, Counts: map[catalog.Status]int{}, Complete: true}
	for _, s := range []catalog.Status{catalog.StatusPending, catalog.StatusReplicating, catalog.StatusProtected,
		catalog.StatusAtRisk, catalog.StatusFailed, catalog.StatusErased} {
		rep.Counts[s] = 0
	}
	q := catalog.ListQuery{OrganizationID: p.OrganizationID, Limit: 200}
	for {
		page, err := h.deps.Store.ListBackups(ctx, q)
		if err != nil {
			return h.internal(ctx, "list_backups", err)
		}
		for i := range page.Backups {
			b := page.Backups[i]
			rep.Counts[b.Status]++
			rep.Counted++
			if b.Status == catalog.StatusAtRisk && (rep.OldestAtRisk == nil || b.CreatedAt.Before(rep.OldestAtRisk.CreatedAt)) {
				rep.OldestAtRisk = &b
			}
		}
		if page.Next == "" {
			break
		}
		if rep.Counted >= h.cfg.StatusScanLimit {
			rep.Complete = false
			break
		}
		q.Cursor = page.Next
	}
	rep.Providers = h.providerSummaries(r)
	rep.At = h.deps.Now().UTC()
	writeJSON(w, http.StatusOK, rep)
	return nil
}

func (h *Handler) dashboard(w http.ResponseWriter, r *http.Request, _ Principal) *apiError {
	if h.deps.Dashboard == nil {
		return errorf(http.StatusNotFound, CodeNotFound, "no dashboard is configured")
	}
	h.deps.Dashboard.ServeHTTP(w, r)
	return nil
}

// OpenAPISpec is the OpenAPI 3 description of this API, served at
// GET /openapi.json.
//
//go:embed openapi.json
var OpenAPISpec []byte

func (h *Handler) openAPI(w http.ResponseWriter, r *http.Request, _ Principal) *apiError {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Write(OpenAPISpec)
	return nil
}
