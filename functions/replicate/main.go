// Command replicate is the per-provider replication Lambda (PROVIDER):
// landing events in, verified copies out, with breaker, queue, standby
// and live progress (WS_ENDPOINT) wired by replicate.Wire. The variables
// are documented in shared/config.
package main

import (
	"context"
	"errors"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/wedsync/backup-replication/shared/config"
	"github.com/wedsync/backup-replication/shared/publish"
	"github.com/wedsync/backup-replication/shared/replicate"
)

func main() {
	ctx := context.Background()
	cfg, err := config.LoadReplicate(config.OS)
	// No "provider" here: replicate.New and each component add it once.
	log := slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{Level: cfg.LogLevel}))
	awsCfg, aerr := cfg.AWS.Config(ctx)
	var opts []replicate.Option
	if err = errors.Join(err, aerr); err == nil && cfg.WSEndpoint != "" && cfg.Tables.Connections != "" {
		var pub *publish.Publisher
		if pub, err = publish.Wire(awsCfg, cfg.WSEndpoint, cfg.Tables.Connections, publish.Config{}, log); err == nil {
			opts = append(opts, replicate.WithProgress(pub))
		}
	}
	var h *replicate.Handler
	if err == nil {
		h, err = replicate.Wire(ctx, cfg, awsCfg, log, os.Stdout, opts...)
	}
	if err != nil {
		log.Error("replicate cannot start", "provider", cfg.Provider, "op", "init", "error", replicate.Redact(err.Error()))
		os.Exit(1)
	}
	lambda.Start(h.Handle)
}
