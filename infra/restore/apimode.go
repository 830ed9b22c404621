package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/wedsync/backup-replication/shared/api"
)

// restoreFromAPI restores o.backup through the API: download URLs and the
// data key from GET /backups/{id}/download, then each copy in turn until
// one decrypts to the declared SHA-256.
func restoreFromAPI(ctx context.Context, o options, stderr io.Writer) error {
	d, err := askDownload(ctx, o)
	if err != nil {
		return err
	}
	out, err := newOutput(o.out)
	if err != nil {
		return err
	}
	defer out.discard()
	copies := append([]api.CopyURL{{Provider: d.Provider, URL: d.URL}}, d.Alternatives...)
	var errs []error
	for i, c := range copies {
		if i > 0 {
			if err := out.reset(); err != nil {
				return err
			}
		}
		err := fetchCopy(ctx, c, d, out, stderr)
		if err == nil {
			return out.commit()
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		fmt.Fprintf(stderr, "restore: the copy on %s failed: %v\n", c.Provider, err)
		errs = append(errs, fmt.Errorf("%s: %w", c.Provider, err))
	}
	return fmt.Errorf("no copy could be restored: %w", errors.Join(errs...))
}

// askDownload calls GET {api}/backups/{id}/download.
func askDownload(ctx context.Context, o options) (api.Download, error) {
	var d api.Download
	u := strings.TrimRight(o.api, "/") + "/backups/" + url.PathEscape(o.backup) + "/download"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return d, err
	}
	req.Header.Set("Authorization", "Bearer "+o.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return d, fmt.Errorf("ask the API for a download: %w", err)
	}
	defer resp.Body.Close()
	body := io.LimitReader(resp.Body, 1<<20)
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		json.NewDecoder(body).Decode(&e)
		return d, fmt.Errorf("the API answered %d %s: %s", resp.StatusCode, e.Error.Code, e.Error.Message)
	}
	if err := json.NewDecoder(body).Decode(&d); err != nil {
		return d, fmt.Errorf("the API's answer is not a download: %w", err)
	}
	if d.URL == "" {
		return d, errors.New("the API's answer has no URL")
	}
	return d, nil
}

// fetchCopy streams one copy into out, decrypting it when sealed, and
// checks the plaintext's SHA-256 against the declared one.
func fetchCopy(ctx context.Context, c api.CopyURL, d api.Download, out *output, stderr io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL, nil)
	if err != nil {
		return errors.New("malformed download URL")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		// The error quotes the URL, whose query is a credential.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("download: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("download: HTTP %d", resp.StatusCode)
	}
	prog := newProgress(stderr, "from "+c.Provider, d.Size)
	w := io.MultiWriter(out.f, prog)
	var sum string
	var n int64
	if d.Sealed != nil {
		sum, n, _, err = decrypt(resp.Body, d.Sealed.DataKey, w)
	} else {
		sum, n, err = plainCopy(resp.Body, w)
	}
	switch {
	case err != nil:
		prog.done("failed")
		return err
	case n != d.Size || !sameHex(sum, d.SHA256):
		prog.done("SHA-256 mismatch")
		return fmt.Errorf("restored %d bytes with SHA-256 %s, declared %d bytes with %s", n, sum, d.Size, d.SHA256)
	}
	prog.done("SHA-256 " + sum + " matches")
	return nil
}
