// Command ws is the WebSocket API's Lambda ($connect with token auth,
// $disconnect, subscribe, unsubscribe, $default). Everything but the
// wiring lives in shared/ws; the variables are documented there
// (ws.Settings) and in shared/config.
package main

import (
	"context"
	"errors"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/wedsync/backup-replication/shared/config"
	"github.com/wedsync/backup-replication/shared/ws"
)

func main() {
	ctx := context.Background()
	s, err := ws.LoadSettings(config.OS)
	log := slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{Level: s.LogLevel}))
	awsCfg, aerr := s.AWS.Config(ctx)
	var h *ws.Handler
	if err = errors.Join(err, aerr); err == nil {
		h, err = ws.Wire(ctx, s, awsCfg, log)
	}
	if err != nil {
		log.Error("ws cannot start", "op", "init", "error", err.Error())
		os.Exit(1)
	}
	lambda.Start(h.Handle)
}
