package api

import (
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/config"
	"github.com/wedsync/backup-replication/shared/erase"
	"github.com/wedsync/backup-replication/shared/keys"
	"github.com/wedsync/backup-replication/shared/storage"
	s3p "github.com/wedsync/backup-replication/shared/storage/s3"
)

// wireErasure builds the key store (KMS and the keys table) that releases
// sealed backups' data keys, and the Eraser behind DELETE /backups/{id}:
// the same providers, and the landing bucket as a provider. Without
// env.Keys (no KEYS_TABLE) it builds neither, and both answer 501.
func wireErasure(c config.API, env Env, awsCfg aws.Config, db *dynamodb.Client, store catalog.Store,
	ps map[string]storage.Provider, logger *slog.Logger) (KeyOpener, Eraser, error) {
	if env.Keys == nil {
		logger.Warn("KEYS_TABLE is not set: sealed backups cannot be downloaded and DELETE /backups/{id} answers 501", "op", "init")
		return nil, nil, nil
	}
	ks, err := keys.New(*env.Keys, kms.NewFromConfig(awsCfg), db)
	if err != nil {
		return nil, nil, err
	}
	landing, err := LandingProvider(c.Common, awsCfg, logger)
	if err != nil {
		return nil, nil, err
	}
	er, err := erase.New(erase.Deps{Catalog: store, Keys: ks, Providers: ps, Landing: landing, Logger: logger})
	if err != nil {
		return nil, nil, err
	}
	return ks, er, nil
}

// LandingProvider is the landing bucket (LANDING_BUCKET) as a
// storage.Provider named "landing", for erasure: it deletes and stats the
// plaintext upload and the sealed object there.
func LandingProvider(c config.Common, awsCfg aws.Config, logger *slog.Logger) (storage.Provider, error) {
	region := c.AWS.Region
	if region == "" {
		region = awsCfg.Region
	}
	pc := s3p.Config{Name: erase.LandingName, Bucket: c.LandingBucket, Region: region, Endpoint: c.AWS.EndpointURL,
		UsePathStyle: c.AWS.EndpointURL != ""}
	client := awss3.NewFromConfig(awsCfg, s3p.ClientOptions(pc))
	return s3p.NewWithClient(pc, client, logger)
}
