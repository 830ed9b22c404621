package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/keys"
	"github.com/wedsync/backup-replication/shared/storage"
)

// Signer is an optional provider ability: a short-lived URL from which
// anyone holding it can GET the object at key. Providers implement it
// themselves (found with storage.As through decorators) or the API is
// given one per provider in Deps.Signers.
type Signer interface {
	SignedURL(ctx context.Context, key string, ttl time.Duration) (string, error)
}

// SignerFunc adapts a function to Signer.
type SignerFunc func(ctx context.Context, key string, ttl time.Duration) (string, error)

// SignedURL calls f.
func (f SignerFunc) SignedURL(ctx context.Context, key string, ttl time.Duration) (string, error) {
	return f(ctx, key, ttl)
}

// S3Signer presigns GetObject on an S3 bucket: the Signer of an S3 provider
// that does not implement one.
func S3Signer(client *s3.Client, bucket string) Signer {
	pc := s3.NewPresignClient(client)
	return SignerFunc(func(ctx context.Context, key string, ttl time.Duration) (string, error) {
		req, err := pc.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)},
			s3.WithPresignExpires(ttl))
		if err != nil {
			return "", fmt.Errorf("presign get: %w", err)
		}
		return req.URL, nil
	})
}

// Provider health states as HealthSource reports them. Downloads skip
// providers that are HealthDown.
const (
	HealthUp       = "up"
	HealthDegraded = "degraded"
	HealthDown     = "down"
	HealthUnknown  = "unknown"
)

// ProviderHealth is what the API shows of a provider's health.
type ProviderHealth struct {
	// State is HealthUp, HealthDegraded, HealthDown or HealthUnknown.
	State string `json:"state"`
	// Breaker is the circuit breaker's state (closed, open, half-open), when known.
	Breaker string `json:"breaker,omitempty"`
	// CheckedAt is when health was last probed.
	CheckedAt *time.Time `json:"checkedAt,omitempty"`
	// Since is when the provider entered State.
	Since *time.Time `json:"since,omitempty"`
	// Detail says, for a person, what is wrong (never a raw error).
	Detail string `json:"detail,omitempty"`
}

// HealthSource reports the current health of providers by name (the
// health function's records, or breaker state). Missing names are unknown.
type HealthSource interface {
	ProviderHealth(ctx context.Context) (map[string]ProviderHealth, error)
}

// health returns the providers' health, "unknown" for all on any error.
func (h *Handler) health(ctx context.Context) map[string]ProviderHealth {
	if h.deps.Health == nil {
		return map[string]ProviderHealth{}
	}
	m, err := h.deps.Health.ProviderHealth(ctx)
	if err != nil {
		h.log.WarnContext(ctx, "provider health unavailable", "op", "health", "error", err.Error())
		return map[string]ProviderHealth{}
	}
	return m
}

func healthOf(m map[string]ProviderHealth, name string) ProviderHealth {
	if ph, ok := m[name]; ok && ph.State != "" {
		return ph
	}
	return ProviderHealth{State: HealthUnknown}
}

// signer finds the Signer for provider name.
func (h *Handler) signer(name string) (Signer, bool) {
	if s, ok := h.deps.Signers[name]; ok && s != nil {
		return s, true
	}
	if p, ok := h.deps.Providers[name]; ok {
		return storage.As[Signer](p)
	}
	return nil, false
}

// Download is the answer to GET /backups/{id}/download: a presigned URL
// of one verified copy, in policy order on a provider that is not down,
// and the other such copies to fall back on.
//
// For a sealed backup the copies hold ciphertext (shared/seal's format):
// Sealed carries the backup's data key, released to its organization
// only, and the caller decrypts (infra/restore does it, checking SHA256
// of the plaintext). Each release is audited in the log, without the key.
type Download struct {
	Provider  string    `json:"provider"`
	URL       string    `json:"url"`
	ExpiresAt time.Time `json:"expiresAt"`
	// SHA256 and Size are the plaintext's, as declared at upload.
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	// CipherSHA256 and CipherSize are the sealed object's: what the URLs
	// serve when Sealed is set.
	CipherSHA256 string `json:"cipherSha256,omitempty"`
	CipherSize   int64  `json:"cipherSize,omitempty"`
	// Sealed is set when the copies are sealed.
	Sealed *SealedKey `json:"sealed,omitempty"`
	// Alternatives are the other verified copies, in the same order.
	Alternatives []CopyURL `json:"alternatives,omitempty"`
}

// SealedKey is what decrypts a sealed backup.
type SealedKey struct {
	// Format is the sealed format (seal.Format).
	Format string `json:"format"`
	// DataKey is the backup's 32-byte data key, base64 in JSON.
	DataKey []byte `json:"dataKey"`
}

// CopyURL is a presigned URL of one copy.
type CopyURL struct {
	Provider string `json:"provider"`
	URL      string `json:"url"`
}

// copyDigest is what every provider copy of b holds: the sealed object's
// SHA-256 and size once b is sealed, the declared ones before.
func copyDigest(b catalog.Backup) (string, int64) {
	if b.Seal != nil {
		return b.Seal.CipherSHA256, b.Seal.CipherSize
	}
	return b.SHA256, b.Size
}

func (h *Handler) download(w http.ResponseWriter, r *http.Request, p Principal) *apiError {
	b, aerr := h.ownBackup(r, p)
	if aerr != nil {
		return aerr
	}
	if b.Status == catalog.StatusErased {
		return errorf(http.StatusGone, CodeErased, "this backup was erased")
	}
	ctx := r.Context()
	if b.Seal != nil && h.deps.Keys == nil {
		return errorf(http.StatusNotImplemented, CodeNotConfigured, "this deployment cannot release data keys of sealed backups")
	}
	reps, err := h.deps.Store.Replicas(ctx, b.ID)
	if err != nil {
		return h.internal(ctx, "replicas", err, "backup_id", b.ID)
	}
	want, _ := copyDigest(b)
	verified := map[string]catalog.Replica{}
	for _, rep := range reps {
		if rep.State == catalog.ReplicaVerified && rep.VerifiedSHA256 == want {
			verified[rep.Provider] = rep
		}
	}
	if len(verified) == 0 {
		return errorf(http.StatusConflict, CodeNoVerifiedCopy, "this backup has no verified copy yet")
	}
	health := h.health(ctx)
	ttl := h.cfg.DownloadURLTTL
	var urls []CopyURL
	for _, pp := range h.deps.Policy.DownloadOrder() {
		rep, ok := verified[pp.Name]
		if !ok || healthOf(health, pp.Name).State == HealthDown {
			continue
		}
		s, ok := h.signer(pp.Name)
		if !ok {
			continue
		}
		key := rep.Key
		if key == "" {
			key = b.LandingKey
		}
		url, err := s.SignedURL(ctx, key, ttl)
		if err != nil {
			h.log.WarnContext(ctx, "sign download failed", "backup_id", b.ID, "provider", pp.Name, "op", "sign", "error", err.Error())
			continue
		}
		urls = append(urls, CopyURL{Provider: pp.Name, URL: url})
	}
	if len(urls) == 0 {
		return errorf(http.StatusConflict, CodeNoDownloadableCopy,
			"no verified copy is on a healthy provider that can sign download URLs")
	}
	d := Download{Provider: urls[0].Provider, URL: urls[0].URL, SHA256: b.SHA256, Size: b.Size, Alternatives: urls[1:],
		ExpiresAt: h.deps.Now().UTC().Add(ttl).Truncate(time.Second)}
	if b.Seal != nil {
		if d.Sealed, aerr = h.releaseKey(r, p, b); aerr != nil {
			return aerr
		}
		d.CipherSHA256, d.CipherSize = b.Seal.CipherSHA256, b.Seal.CipherSize
	}
	h.log.InfoContext(ctx, "download signed", "backup_id", b.ID, "provider", d.Provider, "op", "sign", "copies", len(urls))
	writeJSON(w, http.StatusOK, d)
	return nil
}

// releaseKey opens b's data key for its organization and logs the release
// (who, which backup; never the key).
func (h *Handler) releaseKey(r *http.Request, p Principal, b catalog.Backup) (*SealedKey, *apiError) {
	ctx := r.Context()
	key, _, err := h.deps.Keys.Open(ctx, b.OrganizationID, b.ID)
	switch {
	case errors.Is(err, keys.ErrShredded):
		return nil, errorf(http.StatusGone, CodeErased, "this backup's key was destroyed: it was erased")
	case errors.Is(err, keys.ErrWrongOrganization):
		return nil, errNotFound
	case err != nil:
		return nil, h.internal(ctx, "open_key", err, "backup_id", b.ID)
	}
	h.log.InfoContext(ctx, "data key released", "op", "release_key", "audit", true, "backup_id", b.ID,
		"organization_id", b.OrganizationID, "subject", p.Subject)
	return &SealedKey{Format: b.Seal.Format, DataKey: key}, nil
}
