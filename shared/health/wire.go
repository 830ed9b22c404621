package health

import (
	"context"
	"io"
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/wedsync/backup-replication/shared/alert"
	"github.com/wedsync/backup-replication/shared/breaker"
	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/config"
	"github.com/wedsync/backup-replication/shared/metrics"
	"github.com/wedsync/backup-replication/shared/providers"
	"github.com/wedsync/backup-replication/shared/publish"
	"github.com/wedsync/backup-replication/shared/replicate"
)

// Wire builds the Handler the health function runs from its loaded
// configuration (config.LoadHealth, LoadEnv) and an AWS configuration
// (endpoint already applied): every configured provider, their breakers
// (BREAKER_* settings, config.Breakers, as every function that shares them uses),
// the catalog, the health table, alerts to ALERT_TOPIC_ARN and
// ALERT_WEBHOOK_URL, SQS, the landing bucket, JSON logs to logger and EMF
// metrics to metricsOut. functions/health and the local stack call it alike.
func Wire(ctx context.Context, c config.Health, env Env, awsCfg aws.Config, logger *slog.Logger, metricsOut io.Writer) (*Handler, error) {
	cfg := env.Config(c)
	ps, err := providers.Build(ctx, c.Providers, awsCfg, logger)
	if err != nil {
		return nil, err
	}
	db := dynamodb.NewFromConfig(awsCfg)
	store, err := NewStore(db, c.Tables.Health)
	if err != nil {
		return nil, err
	}
	cat, err := catalog.NewDynamo(db, catalog.Config{BackupsTable: c.Tables.Backups, ReplicasTable: c.Tables.Replicas})
	if err != nil {
		return nil, err
	}
	bstore, err := breaker.NewDynamoStore(db, c.Tables.Breakers)
	if err != nil {
		return nil, err
	}
	breakers := map[string]*breaker.Breaker{}
	for _, name := range cfg.Providers {
		b, err := breaker.New(bstore, c.Breakers.Settings(name, logger))
		if err != nil {
			return nil, err
		}
		breakers[name] = b
	}
	var channels []alert.Channel
	if c.AlertTopicARN != "" {
		channels = append(channels, alert.SNS(sns.NewFromConfig(awsCfg), c.AlertTopicARN))
	}
	if !c.AlertWebhookURL.IsZero() {
		channels = append(channels, alert.Webhook(c.AlertWebhookURL, nil))
	}
	if len(channels) == 0 {
		logger.Warn("no ALERT_TOPIC_ARN or ALERT_WEBHOOK_URL: alerts are recorded and logged only", "op", "init")
	}
	alerts, err := alert.New(db, alert.Config{Table: c.Tables.Health, Stage: c.Stage}, channels, logger)
	if err != nil {
		return nil, err
	}
	var landing *replicate.Landing
	if c.LandingBucket != "" {
		s3c := s3.NewFromConfig(awsCfg, func(o *s3.Options) { o.UsePathStyle = c.AWS.EndpointURL != "" })
		landing = replicate.NewLanding(s3c, c.LandingBucket, c.AWS.EndpointURL)
	}
	deps := Deps{
		Providers: ps, Breakers: breakers, Catalog: cat, Policy: c.Policy, Store: store, Alerts: alerts,
		Queues: sqs.NewFromConfig(awsCfg), Landing: landing, Logger: logger, Metrics: metrics.NewEMF(metricsOut),
	}
	if deps.Retention, err = wireRetention(c, env.Retention, awsCfg, db, cat, ps, logger); err != nil {
		return nil, err
	}
	if c.WSEndpoint != "" && c.Tables.Connections != "" {
		if deps.Live, err = publish.Wire(awsCfg, c.WSEndpoint, c.Tables.Connections, publish.Config{}, logger); err != nil {
			return nil, err
		}
	}
	return New(cfg, deps)
}
