// Package providers turns the configured provider settings into
// storage.Providers. A provider whose configuration names a Secrets Manager
// secret (*_SECRET_ARN) is built through the credentials package: its
// credentials are read from the secret (one shared loader, cached for
// CREDENTIALS_TTL) and follow the secret's rotation without a restart. A
// provider without a secret is built from the direct values (local runs,
// tests). Functions call Build once at start; decorators (logging, breaker,
// retry) are composed on top by the caller.
package providers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/wedsync/backup-replication/shared/config"
	"github.com/wedsync/backup-replication/shared/credentials"
	"github.com/wedsync/backup-replication/shared/storage"
	"github.com/wedsync/backup-replication/shared/storage/gcs"
	"github.com/wedsync/backup-replication/shared/storage/s3"
	"github.com/wedsync/backup-replication/shared/storage/supabase"
)

// The secrets' shapes are credentials.ParseSupabase, ParseS3 and ParseGCS
// (the rotate function writes the same). When a *_SECRET_ARN is set the
// secret wins over a direct value set alongside it (which is logged as
// ignored); SUPABASE_URL still applies when the secret has no "url". A GCS
// secret without credentials means no authentication only when an emulator
// endpoint is configured (credentials.GCS).

// Build returns a provider for every configured provider in cfg, keyed by
// name. Use cfg.Select to build only some. Every secret is read once now,
// so a missing or malformed secret is an error at start. Errors name the
// provider and never quote a secret.
func Build(ctx context.Context, cfg config.Providers, awsCfg aws.Config, logger *slog.Logger) (map[string]storage.Provider, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	b := &builder{cfg: cfg, awsCfg: awsCfg, log: logger}
	out := map[string]storage.Provider{}
	var errs []error
	add := func(p storage.Provider, err error) {
		if err != nil {
			errs = append(errs, err)
			return
		}
		out[p.Name()] = p
	}
	if c := cfg.Supabase; c.Bucket != "" {
		add(b.supabase(ctx, c))
	}
	for _, c := range []config.S3{cfg.S3, cfg.Standby} {
		if c.Bucket != "" {
			add(b.s3(ctx, c))
		}
	}
	if c := cfg.GCS; c.Bucket != "" {
		add(b.gcs(ctx, c))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// builder holds what the providers of one Build share, above all the one
// credentials loader (created on first use: no Secrets Manager client
// unless a secret is named).
type builder struct {
	cfg    config.Providers
	awsCfg aws.Config
	log    *slog.Logger
	loader *credentials.Loader
}

// rotating builds provider name from the secret arn through the shared
// loader. direct names the direct variable set alongside, if any.
func (b *builder) rotating(ctx context.Context, name, arn, direct string, build credentials.Build) (storage.Provider, error) {
	if b.loader == nil {
		b.loader = credentials.NewLoader(secretsmanager.NewFromConfig(b.awsCfg),
			credentials.LoaderConfig{TTL: b.cfg.CredentialsTTL, Logger: b.log})
	}
	if direct != "" {
		b.log.InfoContext(ctx, "credentials from the secret; the direct value is ignored", "provider", name,
			"op", "credentials", "ignored", direct)
	}
	// credentials.Provider's errors name the provider already.
	return credentials.Provider(ctx, name, arn, b.loader, build, b.log)
}

func (b *builder) supabase(ctx context.Context, c config.Supabase) (storage.Provider, error) {
	pc := supabase.Config{Name: config.NameSupabase, URL: c.URL, ServiceKey: c.ServiceKey, Bucket: c.Bucket}
	if c.SecretARN != "" {
		pc.ServiceKey = ""
		return b.rotating(ctx, pc.Name, c.SecretARN, ifSet(!c.ServiceKey.IsZero(), "SUPABASE_SERVICE_KEY"),
			credentials.Supabase(pc, b.log))
	}
	p, err := supabase.New(pc, b.log)
	if err != nil {
		return nil, fmt.Errorf("provider %s: %w", pc.Name, err)
	}
	return p, nil
}

func (b *builder) s3(ctx context.Context, c config.S3) (storage.Provider, error) {
	pc := s3.Config{Name: c.Name, Bucket: c.Bucket, Region: c.Region, Endpoint: c.Endpoint, UsePathStyle: c.UsePathStyle,
		AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey}
	if l := b.cfg.Locks.For(c.Name); l.On() {
		pc.ObjectLockMode, pc.ObjectLockRetention = l.Mode, l.Retention
	}
	if c.SecretARN != "" {
		prefix := "S3_REPLICA_"
		if c.Name == config.NameS3Standby {
			prefix = "S3_STANDBY_"
		}
		return b.rotating(ctx, c.Name, c.SecretARN, ifSet(c.AccessKeyID != "", prefix+"ACCESS_KEY_ID"),
			credentials.S3(pc, b.awsCfg, b.log))
	}
	var p *s3.Provider
	var err error
	if c.AccessKeyID != "" {
		p, err = s3.New(ctx, pc, b.log)
	} else {
		// No keys of its own: the function's role, through the shared config.
		p, err = s3.NewWithClient(pc, awss3.NewFromConfig(b.awsCfg, s3.ClientOptions(pc)), b.log)
	}
	if err != nil {
		return nil, fmt.Errorf("provider %s: %w", c.Name, err)
	}
	return p, nil
}

func (b *builder) gcs(ctx context.Context, c config.GCS) (storage.Provider, error) {
	pc := gcs.Config{Name: config.NameGCS, Bucket: c.Bucket, ProjectID: c.Project, Endpoint: c.Endpoint,
		CredentialsJSON: c.CredentialsJSON, ChunkSize: gcs.DefaultChunkSize}
	if l := b.cfg.Locks.For(config.NameGCS); l.On() {
		pc.Retention, pc.RetentionMode = l.Retention, l.Mode
	}
	if c.SecretARN != "" {
		pc.CredentialsJSON = ""
		return b.rotating(ctx, pc.Name, c.SecretARN, ifSet(!c.CredentialsJSON.IsZero(), "GCS_CREDENTIALS_JSON"),
			credentials.GCS(pc, b.log))
	}
	p, err := gcs.New(ctx, pc, b.log)
	if err != nil {
		return nil, fmt.Errorf("provider %s: %w", pc.Name, err)
	}
	return p, nil
}

func ifSet(set bool, name string) string {
	if set {
		return name
	}
	return ""
}
