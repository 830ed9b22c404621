package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	gcs "cloud.google.com/go/storage"

	"github.com/wedsync/backup-replication/shared/secret"
)

// The providers do not sign download URLs themselves (yet); these adapters
// give the API a Signer per provider from the same configuration. When a
// provider gains a SignedURL method, storage.As finds it and the adapter
// is no longer needed.

// SupabaseSigner signs downloads from a Supabase Storage bucket through
// POST /storage/v1/object/sign/{bucket}/{key}. projectURL is
// "https://<ref>.supabase.co" (a trailing /storage/v1 is accepted).
func SupabaseSigner(projectURL string, serviceKey secret.Secret, bucket string, hc *http.Client) Signer {
	base := strings.TrimRight(projectURL, "/")
	if !strings.HasSuffix(base, "/storage/v1") {
		base += "/storage/v1"
	}
	if hc == nil {
		hc = &http.Client{Timeout: 15 * time.Second}
	}
	return SignerFunc(func(ctx context.Context, key string, ttl time.Duration) (string, error) {
		body, _ := json.Marshal(map[string]int64{"expiresIn": int64(ttl / time.Second)})
		u := base + "/object/sign/" + escapePath(bucket) + "/" + escapePath(key)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
		if err != nil {
			return "", err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("apikey", serviceKey.Reveal())
		req.Header.Set("Authorization", "Bearer "+serviceKey.Reveal())
		resp, err := hc.Do(req)
		if err != nil {
			return "", fmt.Errorf("supabase sign: %w", err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("supabase sign: HTTP %d", resp.StatusCode)
		}
		var out struct {
			SignedURL string `json:"signedURL"`
		}
		if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&out); err != nil || out.SignedURL == "" {
			return "", errors.New("supabase sign: no signedURL in the answer")
		}
		// The answer's path is not escaped; its query (the token) is.
		path, query, _ := strings.Cut(out.SignedURL, "?")
		return base + escapePath(path) + "?" + query, nil
	})
}

// escapePath escapes each segment of a slash-separated path.
func escapePath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// GCSSigner signs V4 download URLs for a GCS bucket with a service-account
// key (credentialsJSON of type service_account). Other credential types
// (workload identity, ADC) cannot sign locally; for them it returns an
// error and downloads use another provider.
//
// With an emulator endpoint (fake-gcs-server has no signed URLs) it
// returns the object's direct media URL, which neither expires nor needs
// credentials: acceptable on a local stack only.
func GCSSigner(endpoint string, credentialsJSON secret.Secret, bucket string) Signer {
	return SignerFunc(func(ctx context.Context, key string, ttl time.Duration) (string, error) {
		if endpoint != "" {
			e := strings.TrimRight(endpoint, "/")
			if !strings.HasSuffix(e, "/storage/v1") {
				e += "/storage/v1"
			}
			return e + "/b/" + url.PathEscape(bucket) + "/o/" + url.PathEscape(key) + "?alt=media", nil
		}
		var sa struct {
			Type        string `json:"type"`
			ClientEmail string `json:"client_email"`
			PrivateKey  string `json:"private_key"`
		}
		if err := json.Unmarshal([]byte(credentialsJSON.Reveal()), &sa); err != nil || sa.Type != "service_account" ||
			sa.ClientEmail == "" || sa.PrivateKey == "" {
			return "", errors.New("gcs sign: signing needs a service-account key")
		}
		return gcs.SignedURL(bucket, key, &gcs.SignedURLOptions{
			GoogleAccessID: sa.ClientEmail, PrivateKey: []byte(sa.PrivateKey),
			Method: http.MethodGet, Expires: time.Now().Add(ttl), Scheme: gcs.SigningSchemeV4,
		})
	})
}
