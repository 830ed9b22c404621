// Command seal is the seal step of issue 8: landing events of uploads in
// (SQS batches from the seal queue), sealed objects out (sealed/{org}/{id}
// in the landing bucket, under a per-backup data key from KMS), with live
// progress (WS_ENDPOINT) wired by sealer.Wire. The variables are
// documented in shared/config (LoadSeal).
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
	"github.com/wedsync/backup-replication/shared/sealer"
)

func main() {
	ctx := context.Background()
	cfg, err := config.LoadSeal(config.OS)
	log := slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{Level: cfg.LogLevel}))
	awsCfg, aerr := cfg.AWS.Config(ctx)
	var opts []sealer.Option
	if err = errors.Join(err, aerr); err == nil && cfg.WSEndpoint != "" && cfg.Tables.Connections != "" {
		var pub *publish.Publisher
		if pub, err = publish.Wire(awsCfg, cfg.WSEndpoint, cfg.Tables.Connections, publish.Config{}, log); err == nil {
			opts = append(opts, sealer.WithProgress(pub))
		}
	}
	var h *sealer.Handler
	if err == nil {
		h, err = sealer.Wire(ctx, cfg, awsCfg, log, os.Stdout, opts...)
	}
	if err != nil {
		log.Error("seal cannot start", "op", "init", "error", replicate.Redact(err.Error()))
		os.Exit(1)
	}
	lambda.Start(h.Handle)
}
