package ws

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/wedsync/backup-replication/shared/api"
	"github.com/wedsync/backup-replication/shared/catalog"
)

// Wire builds the handler functions/ws runs from its settings and an AWS
// configuration (endpoint already applied): the connections store, the
// catalog (backup ownership), the API's authenticator, and a management
// API client for replies (WS_ENDPOINT, or each event's own domain).
// Errors never quote a secret.
func Wire(ctx context.Context, s Settings, awsCfg aws.Config, logger *slog.Logger) (*Handler, error) {
	db := dynamodb.NewFromConfig(awsCfg)
	store, err := NewDynamo(db, s.Tables.Connections, nil)
	if err != nil {
		return nil, err
	}
	backups, err := catalog.NewDynamo(db, catalog.Config{BackupsTable: s.Tables.Backups, ReplicasTable: s.Tables.Replicas})
	if err != nil {
		return nil, err
	}
	auth, err := authenticator(ctx, s, awsCfg, logger)
	if err != nil {
		return nil, err
	}
	replies := apigatewaymanagementapi.NewFromConfig(awsCfg, func(o *apigatewaymanagementapi.Options) {
		if s.WSEndpoint != "" {
			o.BaseEndpoint = aws.String(s.WSEndpoint)
		}
	})
	return New(Config{Endpoint: s.WSEndpoint, TTL: s.TTL, MaxSubscriptions: s.MaxSubscriptions},
		Deps{Store: store, Backups: backups, Auth: auth, Replies: replies, Logger: logger})
}

// authenticator is the API's JWT authenticator, as shared/api wires it:
// HS256 with the key from API_JWT_SECRET or the secret API_JWT_SECRET_ARN
// names (its value, or {"secret": "…"}), RS256/ES256 with the keys
// API_JWT_JWKS_URL publishes, or both; or, in dev mode, the API's
// DevAuthenticator (which trusts the X-Dev-Organization header of the
// $connect request: a local stack's tools can send it, a browser cannot).
// The key set is read at start; a failure is logged, not fatal (the first
// connection reads it again).
func authenticator(ctx context.Context, s Settings, awsCfg aws.Config, logger *slog.Logger) (api.Authenticator, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if s.Env.AuthMode == api.AuthModeDev {
		logger.Warn("API_AUTH_MODE=dev: the X-Dev-Organization header is trusted without proof; never deploy this", "op", "init")
		return api.DevAuthenticator{}, nil
	}
	key := s.JWTSecret.Reveal()
	if key == "" && s.JWTSecretARN != "" {
		out, err := secretsmanager.NewFromConfig(awsCfg).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{
			SecretId: aws.String(s.JWTSecretARN), VersionStage: aws.String("AWSCURRENT")})
		if err != nil {
			return nil, fmt.Errorf("read secret %s: %w", s.JWTSecretARN, err)
		}
		key = strings.TrimSpace(aws.ToString(out.SecretString))
		var v struct {
			Secret string `json:"secret"`
		}
		if json.Unmarshal([]byte(key), &v) == nil && v.Secret != "" {
			key = v.Secret
		}
	}
	a, err := api.NewJWTAuthenticator(api.JWTConfig{Secret: []byte(key), JWKSURL: s.JWKSURL, Issuer: s.JWTIssuer, Audience: s.JWTAudience})
	if err != nil {
		return nil, err
	}
	if err := a.Prefetch(ctx); err != nil {
		logger.Warn("JWKS not readable at start; connections are refused until it is", "op", "init", "error", err.Error())
	}
	return a, nil
}
