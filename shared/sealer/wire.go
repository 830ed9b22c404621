package sealer

import (
	"context"
	"io"
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/config"
	"github.com/wedsync/backup-replication/shared/keys"
	"github.com/wedsync/backup-replication/shared/metrics"
)

// Option adjusts what Wire builds.
type Option func(*wiring)

type wiring struct {
	cfg  []func(*Config)
	deps []func(*Deps)
}

// WithConfig lets f adjust the handler's Config (tests: short waits)
// before the handler is built.
func WithConfig(f func(*Config)) Option { return func(w *wiring) { w.cfg = append(w.cfg, f) } }

// WithDeps lets f adjust the ports before the handler is built.
func WithDeps(f func(*Deps)) Option { return func(w *wiring) { w.deps = append(w.deps, f) } }

// WithProgress publishes each seal's live progress to p (functions/seal
// passes shared/publish's Publisher when WS_ENDPOINT is set).
func WithProgress(p SealPublisher) Option {
	return WithDeps(func(d *Deps) { d.Progress = p })
}

// Wire builds the Handler functions/seal runs, from its loaded
// configuration and an AWS configuration (endpoint already applied): the
// landing bucket's S3 client (path-style when an endpoint is set), the
// DynamoDB catalog, the keys store (KMS and the keys table), the seal
// queue (QUEUE_URL) when set, JSON logs to logger and EMF metrics to
// metricsOut. functions/seal and the local stack call it alike.
func Wire(ctx context.Context, cfg config.Seal, awsCfg aws.Config, logger *slog.Logger, metricsOut io.Writer, opts ...Option) (*Handler, error) {
	var w wiring
	for _, o := range opts {
		o(&w)
	}
	db := dynamodb.NewFromConfig(awsCfg)
	store, err := catalog.NewDynamo(db, catalog.Config{BackupsTable: cfg.Tables.Backups, ReplicasTable: cfg.Tables.Replicas})
	if err != nil {
		return nil, err
	}
	ks, err := keys.New(cfg.Keys, kms.NewFromConfig(awsCfg), db)
	if err != nil {
		return nil, err
	}
	d := Deps{
		Landing: s3.NewFromConfig(awsCfg, func(o *s3.Options) { o.UsePathStyle = cfg.AWS.EndpointURL != "" }),
		Store:   store,
		Keys:    ks,
		Logger:  logger,
		Metrics: metrics.NewEMF(metricsOut),
	}
	if cfg.QueueURL != "" {
		d.Queue = sqs.NewFromConfig(awsCfg)
	}
	for _, f := range w.deps {
		f(&d)
	}
	c := Config{LandingBucket: cfg.LandingBucket, KeepPlaintext: cfg.KeepPlaintext, Concurrency: cfg.Concurrency,
		PartSize: cfg.PartSize, PartsInFlight: cfg.PartsInFlight, QueueURL: cfg.QueueURL}
	for _, f := range w.cfg {
		f(&c)
	}
	return New(c, d)
}
