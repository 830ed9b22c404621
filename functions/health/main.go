// Command health is the provider health Lambda (EventBridge rate(1 minute)):
// canary probes at +0 s and +30 s, provider status and history, alerts,
// dead-letter redrive, reconcile and scrubbing. Everything but the wiring
// lives in shared/health; the variables are documented in shared/config
// (LoadHealth) and shared/health (LoadEnv).
package main

import (
	"context"
	"errors"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/wedsync/backup-replication/shared/alert"
	"github.com/wedsync/backup-replication/shared/config"
	"github.com/wedsync/backup-replication/shared/health"
)

func main() {
	ctx := context.Background()
	cfg, err := config.LoadHealth(config.OS)
	env, eerr := health.LoadEnv(config.OS)
	log := slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{Level: cfg.LogLevel}))
	awsCfg, aerr := cfg.AWS.Config(ctx)
	var h *health.Handler
	if err = errors.Join(err, eerr, aerr); err == nil {
		h, err = health.Wire(ctx, cfg, env, awsCfg, log, os.Stdout)
	}
	if err != nil {
		log.Error("health cannot start", "op", "init", "error", alert.Sanitize(err.Error()))
		os.Exit(1)
	}
	lambda.Start(h.Handle)
}
