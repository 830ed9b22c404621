package api

import (
	"context"
	_ "embed"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/policy"
	"github.com/wedsync/backup-replication/shared/storage"
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

// ProbeReport is one provider's canary round trip in GET /providers/validate.
type ProbeReport struct {
	Provider string `json:"provider"`
	OK       bool   `json:"ok"`
	// Step is the step that failed (put, get, verify, delete) and Kind its
	// error kind; the error text itself is logged, not returned.
	Step      string `json:"step,omitempty"`
	Kind      string `json:"kind,omitempty"`
	LatencyMs int64  `json:"latencyMs"`
}

// validateProviders runs storage.Probe (write, read back, delete a canary)
// on every configured provider at once.
func (h *Handler) validateProviders(w http.ResponseWriter, r *http.Request, _ Principal) *apiError {
	ctx, cancel := context.WithTimeout(r.Context(), DefaultProbeTimeout)
	defer cancel()
	names := make([]string, 0, len(h.deps.Providers))
	for n := range h.deps.Providers {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]ProbeReport, len(names))
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := storage.Probe(ctx, h.deps.Providers[n])
			out[i] = ProbeReport{Provider: n, OK: res.OK, Step: res.Step, Kind: res.Kind, LatencyMs: res.Latency.Milliseconds()}
			if err != nil {
				h.log.WarnContext(ctx, "provider probe failed", "provider", n, "op", "probe", "step", res.Step,
					"duration_ms", res.Latency.Milliseconds(), "error", err.Error())
			}
		}()
	}
	wg.Wait()
	ok := true
	for _, p := range out {
		ok = ok && p.OK
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": ok, "providers": out})
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
