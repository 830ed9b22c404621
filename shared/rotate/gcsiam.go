package rotate

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"google.golang.org/api/option"
	htransport "google.golang.org/api/transport/http"

	"github.com/wedsync/backup-replication/shared/secret"
)

// DefaultIAMEndpoint is Google's IAM API.
const DefaultIAMEndpoint = "https://iam.googleapis.com/"

// IAMKeys is KeyAdmin over the IAM API's REST resource
// projects.serviceAccounts.keys (v1): create with
// privateKeyType TYPE_GOOGLE_CREDENTIALS_FILE, list with
// keyTypes=USER_MANAGED, delete by name. It was written to Google's
// published REST shape and tested against a fake of it (credtest.Google);
// there is no IAM emulator to run it against.
type IAMKeys struct {
	base string
	hc   *http.Client
}

// NewIAMKeys returns a client authenticated as the service account whose
// credentials file is given (OAuth scope cloud-platform). endpoint empty
// means DefaultIAMEndpoint.
func NewIAMKeys(ctx context.Context, endpoint string, credentialsJSON secret.Secret) (*IAMKeys, error) {
	if endpoint == "" {
		endpoint = DefaultIAMEndpoint
	}
	hc, _, err := htransport.NewClient(context.WithoutCancel(ctx),
		option.WithAuthCredentialsJSON(option.ServiceAccount, []byte(credentialsJSON.Reveal())),
		option.WithScopes("https://www.googleapis.com/auth/cloud-platform"))
	if err != nil {
		// The error may quote the credentials: say only where it failed.
		return nil, fmt.Errorf("iam client: building the HTTP client failed (%T)", err)
	}
	return &IAMKeys{base: strings.TrimRight(endpoint, "/") + "/v1/", hc: hc}, nil
}

func (k *IAMKeys) keysURL(account string) string {
	return k.base + "projects/-/serviceAccounts/" + url.PathEscape(account) + "/keys"
}

// CreateKey creates a key and returns its credentials file.
func (k *IAMKeys) CreateKey(ctx context.Context, account string) (secret.Secret, error) {
	var out struct {
		Name           string `json:"name"`
		PrivateKeyData string `json:"privateKeyData"`
	}
	body := `{"privateKeyType":"TYPE_GOOGLE_CREDENTIALS_FILE","keyAlgorithm":"KEY_ALG_RSA_2048"}`
	if err := k.call(ctx, http.MethodPost, k.keysURL(account), body, &out); err != nil {
		return "", fmt.Errorf("create a key for %s: %w", account, err)
	}
	file, err := base64.StdEncoding.DecodeString(out.PrivateKeyData)
	if err != nil || len(file) == 0 {
		return "", fmt.Errorf("create a key for %s: the answer has no usable privateKeyData", account)
	}
	return secret.Secret(file), nil
}

// ListKeys lists the ids of the account's user-managed keys.
func (k *IAMKeys) ListKeys(ctx context.Context, account string) ([]string, error) {
	var out struct {
		Keys []struct {
			Name string `json:"name"`
		} `json:"keys"`
	}
	if err := k.call(ctx, http.MethodGet, k.keysURL(account)+"?keyTypes=USER_MANAGED", "", &out); err != nil {
		return nil, fmt.Errorf("list the keys of %s: %w", account, err)
	}
	ids := make([]string, 0, len(out.Keys))
	for _, key := range out.Keys {
		ids = append(ids, key.Name[strings.LastIndex(key.Name, "/")+1:])
	}
	return ids, nil
}

// DeleteKey deletes one key; 404 counts as done.
func (k *IAMKeys) DeleteKey(ctx context.Context, account, keyID string) error {
	err := k.call(ctx, http.MethodDelete, k.keysURL(account)+"/"+url.PathEscape(keyID), "", nil)
	if se, ok := err.(*iamError); ok && se.Status == http.StatusNotFound {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete key %s of %s: %w", keyID, account, err)
	}
	return nil
}

// iamError is a non-2xx answer: Google's status name and message, which
// never carry key material.
type iamError struct {
	Status  int
	Code    string
	Message string
}

func (e *iamError) Error() string {
	return fmt.Sprintf("HTTP %d %s: %.200s", e.Status, e.Code, e.Message)
}

func (k *IAMKeys) call(ctx context.Context, method, u, body string, out any) error {
	var rd io.Reader
	if body != "" {
		rd = bytes.NewReader([]byte(body))
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := k.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error struct {
				Message string `json:"message"`
				Status  string `json:"status"`
			} `json:"error"`
		}
		json.Unmarshal(b, &e)
		return &iamError{Status: resp.StatusCode, Code: e.Error.Status, Message: e.Error.Message}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decode the answer: %w", err)
	}
	return nil
}
