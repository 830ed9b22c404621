package replicate

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/config"
	"github.com/wedsync/backup-replication/shared/metrics"
	"github.com/wedsync/backup-replication/shared/providers"
)

// Wire builds the Handler a replicate deployment runs, from its loaded
// configuration and an AWS configuration (endpoint already applied):
// the configured provider, the landing bucket reader, the DynamoDB catalog,
// the policy table, JSON logs to logger and EMF metrics to metricsOut.
// functions/replicate and the local stack call it alike. opts adjust the
// ports before the Handler is built: that is where a circuit breaker
// (Deps.Gate), a progress publisher (Deps.Progress) or provider decorators
// (Deps.Provider) go in; without them there is no breaker and no live
// progress.
func Wire(ctx context.Context, cfg config.Replicate, awsCfg aws.Config, logger *slog.Logger, metricsOut io.Writer, opts ...func(*Deps)) (*Handler, error) {
	ps, err := providers.Build(ctx, cfg.Providers.Select(cfg.Provider), awsCfg, logger)
	if err != nil {
		return nil, err
	}
	p, ok := ps[cfg.Provider]
	if !ok {
		return nil, fmt.Errorf("replicate: provider %q was not built", cfg.Provider)
	}
	store, err := catalog.NewDynamo(dynamodb.NewFromConfig(awsCfg),
		catalog.Config{BackupsTable: cfg.Tables.Backups, ReplicasTable: cfg.Tables.Replicas})
	if err != nil {
		return nil, err
	}
	landing := s3.NewFromConfig(awsCfg, func(o *s3.Options) { o.UsePathStyle = cfg.AWS.EndpointURL != "" })
	d := Deps{
		Provider: p,
		Landing:  NewLanding(landing, cfg.LandingBucket, cfg.AWS.EndpointURL),
		Store:    store,
		Policy:   cfg.Policy,
		Logger:   logger,
		Metrics:  metrics.NewEMF(metricsOut),
	}
	for _, o := range opts {
		o(&d)
	}
	return New(Config{Provider: cfg.Provider, LandingBucket: cfg.LandingBucket, Concurrency: cfg.Concurrency,
		ResumeAbove: cfg.ResumeAbove}, d)
}
