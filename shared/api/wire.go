package api

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/wedsync/backup-replication/shared/breaker"
	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/config"
	"github.com/wedsync/backup-replication/shared/providers"
	"github.com/wedsync/backup-replication/shared/secret"
	"github.com/wedsync/backup-replication/shared/storage"
	"github.com/wedsync/backup-replication/shared/validate"
)

// coldStartCheck bounds the canary Wire starts in the background.
const coldStartCheck = 10 * time.Second

// HealthTable builds the HealthSource that reads the health function's
// status documents in table (HEALTH_TABLE) for the providers names, with
// their breakers (possibly none) standing in for stale documents.
// shared/health's APIHealth is the one to pass: that package imports this
// one, so Wire cannot call it itself.
type HealthTable func(db *dynamodb.Client, table string, names []string, breakers []*breaker.Breaker) (HealthSource, error)

// WireOption adjusts what Wire builds.
type WireOption func(*wireOptions)

type wireOptions struct {
	healthTable HealthTable
}

// WithHealthTable makes Wire read provider health through f when
// HEALTH_TABLE is set, instead of the breakers alone.
func WithHealthTable(f HealthTable) WireOption {
	return func(o *wireOptions) { o.healthTable = f }
}

// Wire builds the API from its configuration: the DynamoDB catalog, the
// landing bucket's presigner, the providers (shared/providers), a download
// signer per provider, provider health (the health table through
// WithHealthTable when HEALTH_TABLE is set, otherwise the breakers of
// BREAKERS_TABLE), and the authenticator. dashboard serves GET / (nil:
// 404). It also starts, in the background, a canary on every provider
// (validate.Check, bounded by coldStartCheck) and logs each result: a
// provider that is down never stops the API from starting. Errors never
// quote a secret.
func Wire(ctx context.Context, c config.API, env Env, awsCfg aws.Config, logger *slog.Logger, dashboard http.Handler, opts ...WireOption) (*Handler, error) {
	var o wireOptions
	for _, f := range opts {
		f(&o)
	}
	sm := &secretReader{cfg: awsCfg}
	auth, err := wireAuth(ctx, c, env, sm, logger)
	if err != nil {
		return nil, err
	}
	db := dynamodb.NewFromConfig(awsCfg)
	store, err := catalog.NewDynamo(db, catalog.Config{BackupsTable: c.Tables.Backups, ReplicasTable: c.Tables.Replicas})
	if err != nil {
		return nil, err
	}
	landing := awss3.NewFromConfig(awsCfg, func(o *awss3.Options) { o.UsePathStyle = c.AWS.EndpointURL != "" })
	ps, err := providers.Build(ctx, c.Providers, awsCfg, logger)
	if err != nil {
		return nil, err
	}
	signers, err := CredentialSigners(ctx, c.Providers, awsCfg, nil)
	if err != nil {
		return nil, err
	}
	keyStore, eraser, err := wireErasure(c, env, awsCfg, db, store, ps, logger)
	if err != nil {
		return nil, err
	}
	var health HealthSource
	var brs []*breaker.Breaker
	if c.Tables.Breakers != "" {
		bs, err := breaker.NewDynamoStore(db, c.Tables.Breakers)
		if err != nil {
			return nil, err
		}
		for _, name := range c.Policy.Names() {
			b, err := breaker.New(bs, c.Breakers.Settings(name, logger))
			if err != nil {
				return nil, err
			}
			brs = append(brs, b)
		}
		health = BreakerHealth(brs...)
	}
	switch {
	case c.Tables.Health != "" && o.healthTable != nil:
		if health, err = o.healthTable(db, c.Tables.Health, c.Policy.Names(), brs); err != nil {
			return nil, err
		}
	case c.Tables.Health != "":
		logger.Warn("HEALTH_TABLE is set but Wire was given no WithHealthTable: health comes from the breakers alone", "op", "init")
	}
	go checkProviders(context.WithoutCancel(ctx), ps, logger)
	return New(Config{MaxSize: c.MaxSize, MultipartThreshold: c.MultipartThreshold, PartSize: c.PartSize,
		UploadURLTTL: c.UploadURLTTL, DownloadURLTTL: c.DownloadURLTTL, VerifyTimeout: env.VerifyTimeout}, Deps{
		Store: store, Landing: NewS3Landing(landing, c.LandingBucket), Auth: auth, Providers: ps, Signers: signers,
		Policy: c.Policy, Health: health, Dashboard: dashboard, Logger: logger, Keys: keyStore, Eraser: eraser,
	})
}

// checkProviders runs the canary on every provider and logs each result.
func checkProviders(ctx context.Context, ps map[string]storage.Provider, logger *slog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, coldStartCheck)
	defer cancel()
	for _, r := range validate.Check(ctx, ps) {
		if r.OK {
			logger.InfoContext(ctx, "provider checked at cold start", "provider", r.Provider, "op", "validate",
				"ok", true, "duration_ms", r.LatencyMs)
			continue
		}
		errText := ""
		if r.Err != nil {
			errText = r.Err.Error()
		}
		logger.WarnContext(ctx, "provider check failed at cold start", "provider", r.Provider, "op", "validate",
			"ok", false, "step", r.Step, "kind", r.Kind, "reason", r.Message, "duration_ms", r.LatencyMs, "error", errText)
	}
}

// wireAuth builds the authenticator: HS256 with the secret from
// API_JWT_SECRET or the secret API_JWT_SECRET_ARN names (its value, or
// {"secret": "…"}), RS256/ES256 with the keys API_JWT_JWKS_URL publishes
// (read now; a failure is logged, not fatal), or both; or, in dev mode,
// DevAuthenticator.
func wireAuth(ctx context.Context, c config.API, env Env, sm *secretReader, logger *slog.Logger) (Authenticator, error) {
	if env.AuthMode == AuthModeDev {
		logger.Warn("API_AUTH_MODE=dev: the X-Dev-Organization header is trusted without proof; never deploy this", "op", "init")
		return DevAuthenticator{}, nil
	}
	key := c.JWTSecret
	if key.IsZero() && c.JWTSecretARN != "" {
		raw, err := sm.get(ctx, c.JWTSecretARN)
		if err != nil {
			return nil, err
		}
		var v struct {
			Secret string `json:"secret"`
		}
		if json.Unmarshal([]byte(raw), &v) == nil && v.Secret != "" {
			raw = v.Secret
		}
		key = secret.Secret(strings.TrimSpace(raw))
	}
	aud := c.JWTAudience
	if aud == "" {
		aud = "authenticated"
	}
	a, err := NewJWTAuthenticator(JWTConfig{Secret: []byte(key.Reveal()), JWKSURL: c.JWKSURL, Issuer: c.JWTIssuer, Audience: aud})
	if err != nil {
		return nil, err
	}
	if err := a.Prefetch(ctx); err != nil {
		logger.Warn("JWKS not readable at start; tokens are refused until it is", "op", "init", "error", err.Error())
	}
	return a, nil
}

// secretReader reads Secrets Manager lazily: no client unless a secret is
// named.
type secretReader struct {
	cfg    aws.Config
	client *secretsmanager.Client
}

func (s *secretReader) get(ctx context.Context, arn string) (string, error) {
	if s.client == nil {
		s.client = secretsmanager.NewFromConfig(s.cfg)
	}
	out, err := s.client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn),
		VersionStage: aws.String("AWSCURRENT")})
	if err != nil {
		return "", fmt.Errorf("read secret %s: %w", arn, err)
	}
	return aws.ToString(out.SecretString), nil
}
