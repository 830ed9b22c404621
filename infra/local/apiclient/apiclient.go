// Package apiclient is a small Go client of the backup API, as an app
// would use it: register a backup, upload its bytes to the presigned URL(s)
// (one PUT, or parts then complete), and follow its status. `make demo` and
// the end-to-end tests use it.
package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/wedsync/backup-replication/shared/api"
	"github.com/wedsync/backup-replication/shared/catalog"
)

// Client calls the API at BaseURL with a bearer Token.
type Client struct {
	BaseURL string
	Token   string
	// HTTP is the client for API calls and uploads (default: one with a
	// 10-minute timeout).
	HTTP *http.Client
}

// New returns a client of the API at baseURL.
func New(baseURL, token string) *Client {
	return &Client{BaseURL: strings.TrimRight(baseURL, "/"), Token: token, HTTP: &http.Client{Timeout: 10 * time.Minute}}
}

// Error is an API answer that was not a success.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("HTTP %d %s: %s", e.Status, e.Code, e.Message)
}

// Do sends a JSON request (in may be nil) and decodes a JSON answer into
// out (may be nil). A non-2xx answer is an *Error.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.http().Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		e := &Error{Status: resp.StatusCode}
		var doc struct {
			Error struct{ Code, Message string }
		}
		if json.Unmarshal(data, &doc) == nil && doc.Error.Code != "" {
			e.Code, e.Message = doc.Error.Code, doc.Error.Message
		} else {
			e.Message = strings.TrimSpace(string(data))
		}
		return e
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}

func (c *Client) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return http.DefaultClient
}

// CreateBackup registers a backup (POST /backups).
func (c *Client) CreateBackup(ctx context.Context, req api.CreateBackupRequest) (api.BackupResponse, error) {
	var out api.BackupResponse
	err := c.Do(ctx, http.MethodPost, "/backups", req, &out)
	return out, err
}

// Backup reads a backup with its replicas and 3-2-1 standing.
func (c *Client) Backup(ctx context.Context, id string) (api.BackupDetail, error) {
	var out api.BackupDetail
	err := c.Do(ctx, http.MethodGet, "/backups/"+id, nil, &out)
	return out, err
}

// Upload sends size bytes of data to the upload the API returned for a
// backup: one presigned PUT, or every part (fetching more part URLs when
// the first answer did not carry them all) and then the complete call.
func (c *Client) Upload(ctx context.Context, up api.Upload, data io.ReaderAt, size int64) error {
	if up.Multipart == nil {
		return c.put(ctx, up.Method, up.URL, up.Headers, io.NewSectionReader(data, 0, size), size)
	}
	mp := up.Multipart
	parts := append([]api.PartURL(nil), mp.Parts...)
	done := make([]api.CompletedPart, 0, mp.PartCount)
	for n := int32(1); n <= mp.PartCount; n++ {
		if int(n) > len(parts) {
			var more struct{ Parts []api.PartURL }
			req := map[string]any{"uploadId": mp.UploadID, "from": n, "count": mp.PartCount - n + 1}
			if err := c.Do(ctx, http.MethodPost, mp.More, req, &more); err != nil {
				return fmt.Errorf("more part URLs: %w", err)
			}
			if len(more.Parts) == 0 {
				return errors.New("more part URLs: none returned")
			}
			parts = append(parts[:n-1], more.Parts...)
		}
		p := parts[n-1]
		off := int64(n-1) * mp.PartSize
		etag, err := c.putPart(ctx, p, io.NewSectionReader(data, off, p.Size))
		if err != nil {
			return fmt.Errorf("part %d: %w", n, err)
		}
		done = append(done, api.CompletedPart{PartNumber: n, ETag: etag})
	}
	return c.Do(ctx, http.MethodPost, mp.Complete, map[string]any{"uploadId": mp.UploadID, "parts": done}, nil)
}

func (c *Client) putPart(ctx context.Context, p api.PartURL, r io.Reader) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, p.URL, r)
	if err != nil {
		return "", err
	}
	req.ContentLength = p.Size
	for k, v := range p.Headers {
		req.Header.Set(k, v)
	}
	resp, err := c.http().Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
		return "", fmt.Errorf("PUT part: HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return resp.Header.Get("ETag"), nil
}

// put sends one presigned request with the headers signed into it.
func (c *Client) put(ctx context.Context, method, url string, headers map[string]string, r io.Reader, size int64) error {
	if method == "" {
		method = http.MethodPut
	}
	req, err := http.NewRequestWithContext(ctx, method, url, r)
	if err != nil {
		return err
	}
	req.ContentLength = size
	if size == 0 {
		req.Body = http.NoBody
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := c.http().Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
		return fmt.Errorf("upload: HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return nil
}

// Wait polls a backup every interval until done says so, ctx ends, or the
// backup reaches a state it cannot leave (FAILED, ERASED). onChange, when
// set, sees every answer whose status or replica states changed.
func (c *Client) Wait(ctx context.Context, id string, interval time.Duration, done func(api.BackupDetail) bool, onChange func(api.BackupDetail)) (api.BackupDetail, error) {
	var last api.BackupDetail
	lastKey := ""
	for {
		d, err := c.Backup(ctx, id)
		if err == nil {
			last = d
			if k := stateKey(d); k != lastKey {
				lastKey = k
				if onChange != nil {
					onChange(d)
				}
			}
			if done(d) {
				return d, nil
			}
			if s := d.Backup.Status; s == catalog.StatusFailed || s == catalog.StatusErased {
				return d, fmt.Errorf("backup %s is %s: %s", id, s, d.Backup.StatusReason)
			}
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return last, fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
			}
			return last, ctx.Err()
		case <-time.After(interval):
		}
	}
}

// Protected is a Wait condition: the backup is PROTECTED.
func Protected(d api.BackupDetail) bool { return d.Backup.Status == catalog.StatusProtected }

func stateKey(d api.BackupDetail) string {
	var b strings.Builder
	b.WriteString(string(d.Backup.Status))
	for _, r := range d.Replicas {
		fmt.Fprintf(&b, "|%s=%s/%d", r.Provider, r.State, r.Attempts)
	}
	return b.String()
}
