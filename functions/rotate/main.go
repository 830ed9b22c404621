// Command rotate is the Secrets Manager rotation Lambda for the providers'
// credentials (createSecret, setSecret, testSecret, finishSecret). The
// steps and the per-provider rotators live in shared/rotate; the variables
// are documented there (rotate.Config) and in shared/config.
package main

import (
	"context"
	"errors"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/wedsync/backup-replication/shared/config"
	"github.com/wedsync/backup-replication/shared/rotate"
)

func main() {
	ctx := context.Background()
	cfg, err := rotate.LoadEnv(config.OS)
	log := slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{Level: cfg.LogLevel}))
	awsCfg, aerr := cfg.AWS.Config(ctx)
	var h *rotate.Handler
	if err = errors.Join(err, aerr); err == nil {
		h, err = rotate.Wire(ctx, cfg, awsCfg, log)
	}
	if err != nil {
		log.Error("rotate cannot start", "op", "init", "error", err.Error())
		os.Exit(1)
	}
	lambda.Start(h.Handle)
}
