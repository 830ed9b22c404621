// Command api is the HTTPS API Lambda (API Gateway HTTP API, payload v2):
// shared/api's net/http handler behind aws-lambda-go-api-proxy, with
// provider health read from the health table (shared/health) and the
// operators' dashboard (shared/dashboard) at GET /. Variables:
// shared/config (LoadAPI) and shared/api (LoadEnv).
package main

import (
	"context"
	"errors"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/awslabs/aws-lambda-go-api-proxy/httpadapter"

	"github.com/wedsync/backup-replication/shared/api"
	"github.com/wedsync/backup-replication/shared/config"
	"github.com/wedsync/backup-replication/shared/dashboard"
	"github.com/wedsync/backup-replication/shared/health"
)

func main() {
	ctx := context.Background()
	cfg, err := config.LoadAPI(config.OS)
	env, eerr := api.LoadEnv(config.OS)
	log := slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{Level: cfg.LogLevel}))
	awsCfg, aerr := cfg.AWS.Config(ctx)
	var h *api.Handler
	if err = errors.Join(err, eerr, aerr); err == nil {
		page := dashboard.New(dashboard.Config{WebSocketURL: cfg.WebSocketURL})
		h, err = api.Wire(ctx, cfg, env, awsCfg, log, page, api.WithHealthTable(health.APIHealth))
	}
	if err != nil {
		log.Error("api cannot start", "op", "init", "error", err.Error())
		os.Exit(1)
	}
	lambda.Start(httpadapter.NewV2(h).ProxyWithContext)
}
