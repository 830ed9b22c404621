// Package providers turns the configured provider settings into
// storage.Providers: it resolves each provider's secret from Secrets
// Manager when the configuration names one instead of carrying the value,
// and calls each provider package's constructor. Functions call Build once
// at start; decorators (logging, breaker, retry) are composed on top by the
// caller.
package providers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/wedsync/backup-replication/shared/config"
	"github.com/wedsync/backup-replication/shared/secret"
	"github.com/wedsync/backup-replication/shared/storage"
	"github.com/wedsync/backup-replication/shared/storage/gcs"
	"github.com/wedsync/backup-replication/shared/storage/s3"
	"github.com/wedsync/backup-replication/shared/storage/supabase"
)

// Secret shapes in Secrets Manager (the rotate function writes the same):
//
//	SUPABASE_SECRET_ARN    {"url": "https://<ref>.supabase.co", "serviceKey": "<service_role key>"}
//	S3_*_SECRET_ARN        {"accessKeyId": "...", "secretAccessKey": "..."}
//	GCS_SECRET_ARN         {"credentialsJson": "<credentials file content>"}, or the credentials file itself
//
// A value set directly in the environment wins over the secret.

// Build returns a provider for every configured provider in cfg, keyed by
// name. Use cfg.Select to build only some. Errors name the provider and
// never quote a secret.
func Build(ctx context.Context, cfg config.Providers, awsCfg aws.Config, logger *slog.Logger) (map[string]storage.Provider, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	sm := &secrets{cfg: awsCfg}
	out := map[string]storage.Provider{}
	var errs []error
	add := func(name string, p storage.Provider, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("provider %s: %w", name, err))
			return
		}
		out[name] = p
	}
	if c := cfg.Supabase; c.Bucket != "" {
		p, err := buildSupabase(ctx, c, sm, logger)
		add(config.NameSupabase, p, err)
	}
	for _, c := range []config.S3{cfg.S3, cfg.Standby} {
		if c.Bucket != "" {
			p, err := buildS3(ctx, c, awsCfg, sm, logger)
			add(c.Name, p, err)
		}
	}
	if c := cfg.GCS; c.Bucket != "" {
		p, err := buildGCS(ctx, c, sm, logger)
		add(config.NameGCS, p, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

func buildSupabase(ctx context.Context, c config.Supabase, sm *secrets, log *slog.Logger) (storage.Provider, error) {
	if c.SecretARN != "" && (c.ServiceKey.IsZero() || c.URL == "") {
		var v struct {
			URL        string `json:"url"`
			ServiceKey string `json:"serviceKey"`
		}
		raw, err := sm.get(ctx, c.SecretARN)
		if err != nil {
			return nil, err
		}
		if json.Unmarshal([]byte(raw), &v) != nil {
			v.ServiceKey = strings.TrimSpace(raw) // the key itself
		}
		if c.ServiceKey.IsZero() {
			c.ServiceKey = secret.Secret(v.ServiceKey)
		}
		if c.URL == "" {
			c.URL = v.URL
		}
	}
	return supabase.New(supabase.Config{Name: config.NameSupabase, URL: c.URL, ServiceKey: c.ServiceKey, Bucket: c.Bucket}, log)
}

func buildS3(ctx context.Context, c config.S3, awsCfg aws.Config, sm *secrets, log *slog.Logger) (storage.Provider, error) {
	if c.SecretARN != "" && c.AccessKeyID == "" {
		var v struct {
			AccessKeyID     string `json:"accessKeyId"`
			SecretAccessKey string `json:"secretAccessKey"`
		}
		raw, err := sm.get(ctx, c.SecretARN)
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(raw), &v); err != nil {
			return nil, fmt.Errorf("secret %s is not {\"accessKeyId\",\"secretAccessKey\"}", c.SecretARN)
		}
		c.AccessKeyID, c.SecretAccessKey = v.AccessKeyID, secret.Secret(v.SecretAccessKey)
	}
	pc := s3.Config{Name: c.Name, Bucket: c.Bucket, Region: c.Region, Endpoint: c.Endpoint, UsePathStyle: c.UsePathStyle,
		AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey}
	if c.AccessKeyID != "" {
		return s3.New(ctx, pc, log)
	}
	// No keys of its own: the function's role, through the shared config.
	return s3.NewWithClient(pc, awss3.NewFromConfig(awsCfg, s3.ClientOptions(pc)), log)
}

func buildGCS(ctx context.Context, c config.GCS, sm *secrets, log *slog.Logger) (storage.Provider, error) {
	creds := c.CredentialsJSON
	if creds.IsZero() && c.SecretARN != "" {
		raw, err := sm.get(ctx, c.SecretARN)
		if err != nil {
			return nil, err
		}
		var v struct {
			CredentialsJSON string `json:"credentialsJson"`
			Type            string `json:"type"`
		}
		if err := json.Unmarshal([]byte(raw), &v); err != nil {
			return nil, fmt.Errorf("secret %s is not JSON", c.SecretARN)
		}
		if v.Type != "" {
			creds = secret.Secret(raw) // the credentials file itself
		} else {
			creds = secret.Secret(v.CredentialsJSON)
		}
	}
	return gcs.New(ctx, gcs.Config{Name: config.NameGCS, Bucket: c.Bucket, ProjectID: c.Project, Endpoint: c.Endpoint,
		CredentialsJSON: gcs.Secret(creds.Reveal()), ChunkSize: gcs.DefaultChunkSize}, log)
}

// secrets reads Secrets Manager lazily: no client unless a secret is named.
type secrets struct {
	cfg    aws.Config
	client *secretsmanager.Client
}

func (s *secrets) get(ctx context.Context, arn string) (string, error) {
	if s.client == nil {
		s.client = secretsmanager.NewFromConfig(s.cfg)
	}
	out, err := s.client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)})
	if err != nil {
		// The SDK error names the secret and the cause, never its value.
		return "", fmt.Errorf("read secret %s: %w", arn, err)
	}
	return aws.ToString(out.SecretString), nil
}
