package credentials

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/wedsync/backup-replication/shared/secret"
	"github.com/wedsync/backup-replication/shared/storage"
	"github.com/wedsync/backup-replication/shared/storage/gcs"
	"github.com/wedsync/backup-replication/shared/storage/s3"
	"github.com/wedsync/backup-replication/shared/storage/supabase"
)

// S3 builds S3 providers from cfg with the secret's credentials (S3Creds):
// an access key pair directly, or a role assumed through STS with awsCfg's
// own credentials (the function's role); the SDK renews the role's
// temporary credentials itself. cfg's own credential fields are ignored.
func S3(cfg s3.Config, awsCfg aws.Config, log *slog.Logger) Build {
	return func(ctx context.Context, v Version) (storage.Provider, error) {
		c, err := ParseS3(v.Value)
		if err != nil {
			return nil, err
		}
		cfg := cfg
		if c.AccessKeyID != "" {
			cfg.AccessKeyID, cfg.SecretAccessKey, cfg.SessionToken = c.AccessKeyID, c.SecretAccessKey, c.SessionToken
			return s3.New(ctx, cfg, log)
		}
		cfg.AccessKeyID, cfg.SecretAccessKey, cfg.SessionToken = "", "", ""
		return s3.NewWithClient(cfg, S3Client(cfg, awsCfg, c), log)
	}
}

// S3Client is an S3 client for cfg's bucket signed with c: its key pair,
// or its role assumed through STS with awsCfg's own credentials (renewed
// by the SDK). awsCfg supplies everything else (HTTP client, STS endpoint);
// cfg's credential fields are ignored. For callers that need a client
// rather than a provider, such as a presigner.
func S3Client(cfg s3.Config, awsCfg aws.Config, c S3Creds) *awss3.Client {
	out := awsCfg.Copy()
	if c.AccessKeyID != "" {
		out.Credentials = credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey.Reveal(), c.SessionToken.Reveal())
	} else {
		out.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(sts.NewFromConfig(awsCfg), c.RoleARN,
			func(o *stscreds.AssumeRoleOptions) {
				o.RoleSessionName = "wedsync-" + cfg.Name
				if c.ExternalID != "" {
					o.ExternalID = aws.String(c.ExternalID)
				}
			}))
	}
	return awss3.NewFromConfig(out, s3.ClientOptions(cfg))
}

// GCS builds GCS providers from cfg with the secret's key file (GCSCreds).
//
// When cfg.Endpoint is set (an emulator, such as the local stack's
// fake-gcs-server), a secret that holds no credentials at all (an empty
// string, {} or {"credentialsJson": ""}, as the local stack stores) builds
// an unauthenticated provider, as an empty gcs.Config.CredentialsJSON with
// an Endpoint does. Without an endpoint such a secret is an error: it never
// falls back to Application Default Credentials silently.
func GCS(cfg gcs.Config, log *slog.Logger) Build {
	return func(ctx context.Context, v Version) (storage.Provider, error) {
		cfg := cfg
		if cfg.Endpoint != "" && noGCSCredentials(v.Value) {
			cfg.CredentialsJSON = ""
			return gcs.New(ctx, cfg, log)
		}
		c, err := ParseGCS(v.Value)
		if err != nil {
			return nil, err
		}
		cfg.CredentialsJSON = c.CredentialsJSON
		return gcs.New(ctx, cfg, log)
	}
}

// noGCSCredentials reports whether a GCS secret holds no credentials: empty,
// {}, or {"credentialsJson": ""} (null counts as empty).
func noGCSCredentials(v secret.Secret) bool {
	raw := strings.TrimSpace(v.Reveal())
	if raw == "" {
		return true
	}
	var f map[string]json.RawMessage
	if json.Unmarshal([]byte(raw), &f) != nil {
		return false
	}
	for k, val := range f {
		if k != "credentialsJson" || (string(val) != `""` && string(val) != "null") {
			return false
		}
	}
	return true
}

// Supabase builds Supabase providers from cfg with the secret's service
// key (SupabaseCreds); the secret's url, when set, overrides cfg.URL.
func Supabase(cfg supabase.Config, log *slog.Logger) Build {
	return func(ctx context.Context, v Version) (storage.Provider, error) {
		c, err := ParseSupabase(v.Value)
		if err != nil {
			return nil, err
		}
		cfg := cfg
		cfg.ServiceKey = c.ServiceKey
		if c.URL != "" {
			cfg.URL = c.URL
		}
		if cfg.URL == "" {
			return nil, errors.New("supabase: no project URL in the configuration or the secret")
		}
		return supabase.New(cfg, log)
	}
}
