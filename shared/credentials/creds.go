package credentials

import (
	"encoding/json"
	"errors"
	"log/slog"
	"strings"

	"github.com/wedsync/backup-replication/shared/secret"
)

// The secret shapes, one per provider (the rotate function writes the same):
//
//	S3 secondary:  {"accessKeyId": "AKIA…", "secretAccessKey": "…"}  (optionally "sessionToken")
//	           or  {"roleArn": "arn:aws:iam::…:role/…", "externalId": "…"}  (a role to assume)
//	GCS offsite:   the service-account key file itself ({"type": "service_account", …}),
//	           or  {"credentialsJson": "<the key file as a string>"}
//	Supabase:      {"url": "https://<ref>.supabase.co", "serviceKey": "…"}  ("url" optional)
//
// Parse errors name the field that is wrong, never a value.

// S3Creds are the S3 secondary's credentials: an access key pair of the
// replication user, or a role to assume.
type S3Creds struct {
	AccessKeyID     string
	SecretAccessKey secret.Secret
	SessionToken    secret.Secret
	RoleARN         string
	ExternalID      string
}

type s3JSON struct {
	AccessKeyID     string `json:"accessKeyId,omitempty"`
	SecretAccessKey string `json:"secretAccessKey,omitempty"`
	SessionToken    string `json:"sessionToken,omitempty"`
	RoleARN         string `json:"roleArn,omitempty"`
	ExternalID      string `json:"externalId,omitempty"`
}

// ParseS3 reads an S3 secret.
func ParseS3(v secret.Secret) (S3Creds, error) {
	var j s3JSON
	if err := json.Unmarshal([]byte(v.Reveal()), &j); err != nil {
		return S3Creds{}, errors.New(`s3 secret is not a JSON object {"accessKeyId","secretAccessKey"} or {"roleArn"}`)
	}
	c := S3Creds{AccessKeyID: j.AccessKeyID, SecretAccessKey: secret.Secret(j.SecretAccessKey),
		SessionToken: secret.Secret(j.SessionToken), RoleARN: j.RoleARN, ExternalID: j.ExternalID}
	switch {
	case c.AccessKeyID != "" && c.SecretAccessKey.IsZero(), c.AccessKeyID == "" && !c.SecretAccessKey.IsZero():
		return S3Creds{}, errors.New("s3 secret: accessKeyId and secretAccessKey must be set together")
	case c.AccessKeyID == "" && c.RoleARN == "":
		return S3Creds{}, errors.New("s3 secret: neither accessKeyId/secretAccessKey nor roleArn is set")
	case c.RoleARN != "" && !strings.HasPrefix(c.RoleARN, "arn:"):
		return S3Creds{}, errors.New("s3 secret: roleArn is not an ARN")
	}
	return c, nil
}

// Secret encodes c as the secret's JSON.
func (c S3Creds) Secret() secret.Secret {
	b, _ := json.Marshal(s3JSON{AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey.Reveal(),
		SessionToken: c.SessionToken.Reveal(), RoleARN: c.RoleARN, ExternalID: c.ExternalID})
	return secret.Secret(b)
}

// LogValue shows which key or role, never the secret part.
func (c S3Creds) LogValue() slog.Value {
	return slog.GroupValue(slog.String("access_key_id", c.AccessKeyID), slog.String("role_arn", c.RoleARN))
}

// GCSCreds is the offsite provider's service-account key.
type GCSCreds struct {
	// CredentialsJSON is the key file. It never prints.
	CredentialsJSON secret.Secret
	// Read from the key file, for naming and rotating it (not secret):
	Type         string // "service_account", or another credentials type
	ClientEmail  string // the service account
	PrivateKeyID string // the key's id
	ProjectID    string
	TokenURI     string
}

// ParseGCS reads a GCS secret: the key file, or {"credentialsJson": file}.
func ParseGCS(v secret.Secret) (GCSCreds, error) {
	var f struct {
		Type            string `json:"type"`
		ClientEmail     string `json:"client_email"`
		PrivateKeyID    string `json:"private_key_id"`
		ProjectID       string `json:"project_id"`
		TokenURI        string `json:"token_uri"`
		CredentialsJSON string `json:"credentialsJson"`
	}
	raw := v.Reveal()
	if err := json.Unmarshal([]byte(raw), &f); err != nil {
		return GCSCreds{}, errors.New("gcs secret is not a JSON object")
	}
	if f.Type == "" && f.CredentialsJSON != "" {
		raw = f.CredentialsJSON
		if err := json.Unmarshal([]byte(raw), &f); err != nil {
			return GCSCreds{}, errors.New("gcs secret: credentialsJson is not a JSON object")
		}
	}
	if f.Type == "" {
		return GCSCreds{}, errors.New(`gcs secret: no credentials "type" (expected a service-account key file)`)
	}
	if f.Type == "service_account" && (f.ClientEmail == "" || f.PrivateKeyID == "") {
		return GCSCreds{}, errors.New("gcs secret: service-account key without client_email or private_key_id")
	}
	return GCSCreds{CredentialsJSON: secret.Secret(raw), Type: f.Type, ClientEmail: f.ClientEmail,
		PrivateKeyID: f.PrivateKeyID, ProjectID: f.ProjectID, TokenURI: f.TokenURI}, nil
}

// Secret encodes c as the secret: the key file itself.
func (c GCSCreds) Secret() secret.Secret { return c.CredentialsJSON }

// LogValue shows the account and key id, never the key.
func (c GCSCreds) LogValue() slog.Value {
	return slog.GroupValue(slog.String("client_email", c.ClientEmail), slog.String("private_key_id", c.PrivateKeyID))
}

// SupabaseCreds are the primary provider's project URL and service key.
type SupabaseCreds struct {
	URL        string
	ServiceKey secret.Secret
}

type supabaseJSON struct {
	URL        string `json:"url,omitempty"`
	ServiceKey string `json:"serviceKey"`
}

// ParseSupabase reads a Supabase secret.
func ParseSupabase(v secret.Secret) (SupabaseCreds, error) {
	var j supabaseJSON
	if err := json.Unmarshal([]byte(v.Reveal()), &j); err != nil {
		return SupabaseCreds{}, errors.New(`supabase secret is not a JSON object {"url","serviceKey"}`)
	}
	if j.ServiceKey == "" {
		return SupabaseCreds{}, errors.New("supabase secret: serviceKey is empty")
	}
	if j.URL != "" && !strings.HasPrefix(j.URL, "https://") && !strings.HasPrefix(j.URL, "http://") {
		return SupabaseCreds{}, errors.New("supabase secret: url is not an http(s) URL")
	}
	return SupabaseCreds{URL: j.URL, ServiceKey: secret.Secret(j.ServiceKey)}, nil
}

// Secret encodes c as the secret's JSON.
func (c SupabaseCreds) Secret() secret.Secret {
	b, _ := json.Marshal(supabaseJSON{URL: c.URL, ServiceKey: c.ServiceKey.Reveal()})
	return secret.Secret(b)
}

// LogValue shows the project URL, never the key.
func (c SupabaseCreds) LogValue() slog.Value {
	return slog.GroupValue(slog.String("url", c.URL), slog.Any("service_key", c.ServiceKey))
}
