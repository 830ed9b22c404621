// Command replicate is the per-provider replication Lambda: SQS batches of
// landing-bucket "Object Created" events in, verified copies on the
// provider named by PROVIDER out. Everything but the wiring lives in
// shared/replicate; the variables are documented in shared/config.
package main

import (
	"context"
	"errors"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/wedsync/backup-replication/shared/config"
	"github.com/wedsync/backup-replication/shared/replicate"
)

func main() {
	ctx := context.Background()
	cfg, err := config.LoadReplicate(config.OS)
	log := slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{Level: cfg.LogLevel})).With("provider", cfg.Provider)
	awsCfg, aerr := cfg.AWS.Config(ctx)
	var h *replicate.Handler
	if err = errors.Join(err, aerr); err == nil {
		h, err = replicate.Wire(ctx, cfg, awsCfg, log, os.Stdout)
	}
	if err != nil {
		log.Error("replicate cannot start", "op", "init", "error", replicate.Redact(err.Error()))
		os.Exit(1)
	}
	lambda.Start(h.Handle)
}
