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

// authenticator is the API's HS256 authenticator with the key from
// API_JWT_SECRET or the secret API_JWT_SECRET_ARN names (its value, or
// {"secret": "…"}), as shared/api wires it; or, in dev mode, the API's
// DevAuthenticator (which a browser cannot use: it trusts a header).
func authenticator(ctx context.Context, s Settings, awsCfg aws.Config, logger *slog.Logger) (api.Authenticator, error) {
	if s.Env.AuthMode == api.AuthModeDev {
		if logger == nil {
			logger = slog.New(slog.DiscardHandler)
		}
		logger.Warn("API_AUTH_MODE=dev: the X-Dev-Organization header is trusted without proof; never deploy this", "op", "init")
		return api.DevAuthenticator{}, nil
	}
	key := s.JWTSecret.Reveal()
	if key == "" {
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
	return api.NewJWTAuthenticator(api.JWTConfig{Secret: []byte(key), Issuer: s.JWTIssuer, Audience: s.JWTAudience})
}
