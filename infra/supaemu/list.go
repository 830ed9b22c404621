package supaemu

import (
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"time"
)

// listRequest is the body of POST /object/list/{bucket}.
type listRequest struct {
	Prefix *string `json:"prefix"`
	Limit  int     `json:"limit"`
	Offset int     `json:"offset"`
	Search string  `json:"search"`
	SortBy struct {
		Column string `json:"column"`
		Order  string `json:"order"`
	} `json:"sortBy"`
}

// maxListLimit is where storage.search caps a page.
const maxListLimit = 1500

// search lists one level under prefix the way storage.search does with its
// default name sort (migrations/tenant/0063): the prefix is taken as a
// folder ("a" means "a/"); search narrows names by their start; matching and
// order are by lower-case name; an object deeper down shows as one folder
// entry (name only, every other field null) at the place of its first
// object; names are relative to the prefix. Other sort columns are served
// in name order too.
func (s *store) search(bucketID string, req listRequest) []map[string]any {
	prefix := ""
	if req.Prefix != nil {
		prefix = *req.Prefix
	}
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	limit := req.Limit
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, maxListLimit)
	match := strings.ToLower(prefix + req.Search)

	s.mu.RLock()
	var hits []*object
	if b := s.buckets[bucketID]; b != nil { // a missing bucket lists nothing, as storage.search does
		for name, o := range b.objects {
			if strings.HasPrefix(strings.ToLower(name), match) {
				hits = append(hits, o)
			}
		}
	}
	s.mu.RUnlock()
	desc := strings.EqualFold(req.SortBy.Order, "desc")
	sort.Slice(hits, func(i, j int) bool {
		return (strings.ToLower(hits[i].Name) < strings.ToLower(hits[j].Name)) != desc
	})

	out := []map[string]any{}
	skipped, lastFolder := 0, ""
	for _, o := range hits {
		if len(out) >= limit {
			break
		}
		var entry map[string]any
		if i := strings.IndexByte(o.Name[len(match):], '/'); i >= 0 {
			folder := o.Name[:len(match)+i]
			if strings.EqualFold(folder, lastFolder) {
				continue
			}
			lastFolder = folder
			entry = map[string]any{"name": folder[len(prefix):], "id": nil, "updated_at": nil,
				"created_at": nil, "last_accessed_at": nil, "metadata": nil}
		} else {
			ts := o.Updated.UTC().Format(time.RFC3339Nano)
			entry = map[string]any{"name": o.Name[len(prefix):], "id": o.ID, "updated_at": ts,
				"created_at": o.Created.UTC().Format(time.RFC3339Nano), "last_accessed_at": ts,
				"metadata": o.systemMetadata()}
		}
		if skipped < req.Offset {
			skipped++
			continue
		}
		out = append(out, entry)
	}
	return out
}

func (s *Server) listObjects(w http.ResponseWriter, r *http.Request) {
	var req listRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Prefix == nil {
		errInvalidRequest("body must have required property 'prefix'").write(w, r)
		return
	}
	if !isService(r) {
		// Row-level security hides every object from other roles.
		writeJSON(w, http.StatusOK, []any{})
		return
	}
	writeJSON(w, http.StatusOK, s.store.search(r.PathValue("bucket"), req))
}
