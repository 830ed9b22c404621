package api

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/wedsync/backup-replication/shared/config"
	"github.com/wedsync/backup-replication/shared/credentials"
	s3p "github.com/wedsync/backup-replication/shared/storage/s3"
)

// CredentialSigners builds a download signer for every configured provider
// in p. A provider whose credentials are a Secrets Manager secret
// (*_SECRET_ARN) signs with the secret's AWSCURRENT version as loader holds
// it at signing time (cached for the loader's TTL), so download links
// follow a rotation: a new version builds a new signer, and when signing
// fails (a Supabase key already retired) while a fresh read finds a newer
// version, the link is signed again with that one. The secret wins over a
// direct value set alongside it, as in shared/providers.
//
//   - Supabase: POST …/object/sign with the service key (SupabaseSigner).
//   - S3 and the standby: presigned GetObject with the key pair, or the role
//     assumed with awsCfg's credentials (credentials.S3Client).
//   - GCS: a V4 URL signed with the service-account key (GCSSigner); with an
//     emulator endpoint, the direct URL, and no secret is read.
//
// Providers with direct credentials (or none: the function's role) get the
// same signers as before, built once. Every secret is read once here, so a
// missing or malformed secret fails the start; errors never quote one.
// loader nil: one is made on awsCfg (TTL p.CredentialsTTL) if a secret is
// named.
func CredentialSigners(ctx context.Context, p config.Providers, awsCfg aws.Config, loader *credentials.Loader) (map[string]Signer, error) {
	newLoader := func() *credentials.Loader {
		if loader == nil {
			loader = credentials.NewLoader(secretsmanager.NewFromConfig(awsCfg), credentials.LoaderConfig{TTL: p.CredentialsTTL})
		}
		return loader
	}
	out := map[string]Signer{}
	var errs []error
	add := func(name, arn string, build func(credentials.Version) (Signer, error)) {
		s := &versionedSigner{loader: newLoader(), arn: arn, build: build}
		if err := s.check(ctx); err != nil {
			errs = append(errs, fmt.Errorf("download signer %s: %w", name, err))
			return
		}
		out[name] = s
	}
	if s := p.Supabase; s.Bucket != "" {
		if s.SecretARN == "" {
			out[config.NameSupabase] = SupabaseSigner(s.URL, s.ServiceKey, s.Bucket, nil)
		} else {
			add(config.NameSupabase, s.SecretARN, func(v credentials.Version) (Signer, error) {
				c, err := credentials.ParseSupabase(v.Value)
				if err != nil {
					return nil, err
				}
				url := s.URL
				if c.URL != "" {
					url = c.URL
				}
				if url == "" {
					return nil, errors.New("supabase: no project URL in the configuration or the secret")
				}
				return SupabaseSigner(url, c.ServiceKey, s.Bucket, nil), nil
			})
		}
	}
	for _, s := range []config.S3{p.S3, p.Standby} {
		if s.Bucket == "" {
			continue
		}
		pc := s3p.Config{Name: s.Name, Bucket: s.Bucket, Region: s.Region, Endpoint: s.Endpoint, UsePathStyle: s.UsePathStyle}
		switch {
		case s.SecretARN != "":
			add(s.Name, s.SecretARN, func(v credentials.Version) (Signer, error) {
				c, err := credentials.ParseS3(v.Value)
				if err != nil {
					return nil, err
				}
				return S3Signer(credentials.S3Client(pc, awsCfg, c), s.Bucket), nil
			})
		case s.AccessKeyID != "":
			c := credentials.S3Creds{AccessKeyID: s.AccessKeyID, SecretAccessKey: s.SecretAccessKey}
			out[s.Name] = S3Signer(credentials.S3Client(pc, awsCfg, c), s.Bucket)
		default: // the function's own role
			out[s.Name] = S3Signer(awss3.NewFromConfig(awsCfg.Copy(), s3p.ClientOptions(pc)), s.Bucket)
		}
	}
	if g := p.GCS; g.Bucket != "" {
		if g.SecretARN == "" || g.Endpoint != "" {
			out[config.NameGCS] = GCSSigner(g.Endpoint, g.CredentialsJSON, g.Bucket)
		} else {
			add(config.NameGCS, g.SecretARN, func(v credentials.Version) (Signer, error) {
				c, err := credentials.ParseGCS(v.Value)
				if err != nil {
					return nil, err
				}
				return GCSSigner("", c.CredentialsJSON, g.Bucket), nil
			})
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// versionedSigner signs with the signer built from one secret's AWSCURRENT
// version, rebuilt when the version changes.
type versionedSigner struct {
	loader *credentials.Loader
	arn    string
	build  func(credentials.Version) (Signer, error)

	mu      sync.Mutex
	version string
	signer  Signer
}

// check reads the secret and builds its signer.
func (s *versionedSigner) check(ctx context.Context) error {
	v, err := s.loader.Get(ctx, s.arn)
	if err != nil {
		return err
	}
	_, err = s.signerFor(v)
	return err
}

func (s *versionedSigner) signerFor(v credentials.Version) (Signer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.signer != nil && s.version == v.VersionID {
		return s.signer, nil
	}
	sg, err := s.build(v)
	if err != nil {
		return nil, fmt.Errorf("secret %s version %s: %w", s.arn, v.VersionID, err)
	}
	s.version, s.signer = v.VersionID, sg
	return sg, nil
}

// SignedURL signs with the current version; when that fails and the secret
// has a newer AWSCURRENT version now, it signs once more with it.
func (s *versionedSigner) SignedURL(ctx context.Context, key string, ttl time.Duration) (string, error) {
	v, err := s.loader.Get(ctx, s.arn)
	if err != nil {
		return "", err
	}
	sg, err := s.signerFor(v)
	if err != nil {
		return "", err
	}
	u, err := sg.SignedURL(ctx, key, ttl)
	if err == nil {
		return u, nil
	}
	fresh, ferr := s.loader.Fetch(ctx, s.arn, credentials.StageCurrent)
	if ferr != nil || fresh.VersionID == v.VersionID {
		return "", err
	}
	if sg, ferr = s.signerFor(fresh); ferr != nil {
		return "", err
	}
	return sg.SignedURL(ctx, key, ttl)
}
