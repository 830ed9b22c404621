package rotate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/wedsync/backup-replication/shared/config"
	"github.com/wedsync/backup-replication/shared/credentials"
	"github.com/wedsync/backup-replication/shared/secret"
	"github.com/wedsync/backup-replication/shared/storage/gcs"
	"github.com/wedsync/backup-replication/shared/storage/s3"
	"github.com/wedsync/backup-replication/shared/storage/supabase"
)

// Config is functions/rotate's configuration: the common variables
// (shared/config: each provider's bucket and *_SECRET_ARN) and
//
//	S3_REPLICATION_USER    IAM user whose access keys S3_REPLICA_SECRET_ARN holds (required when that secret
//	                       holds a key pair; a role secret, {"roleArn"}, needs none: Wire reads the secret to tell)
//	GCS_IAM_ENDPOINT       IAM API base URL (default https://iam.googleapis.com/; a fake in tests)
//	ROTATE_TEST_ATTEMPTS   probes testSecret makes while the new credentials are refused (default 6)
//	ROTATE_TEST_WAIT       wait between them, e.g. 5s (default 5s)
//	ROTATE_RETIRE          "next-rotation" (default: the previous key stays valid as AWSPREVIOUS until the
//	                       next rotation) or "immediate" (finishSecret deletes it; see HandlerConfig)
//
// A provider is rotated when its secret ARN and bucket are set.
type Config struct {
	config.Common
	S3User         string
	GCSIAMEndpoint string
	Probing        Probing
	Handler        HandlerConfig
}

// LoadEnv reads and validates the rotate function's variables.
func LoadEnv(getenv config.Getenv) (Config, error) {
	common, err := config.LoadCommon(getenv)
	c := Config{Common: common, S3User: getenv("S3_REPLICATION_USER"), GCSIAMEndpoint: getenv("GCS_IAM_ENDPOINT")}
	errs := []error{err}
	if v := getenv("ROTATE_TEST_ATTEMPTS"); v != "" {
		n, perr := strconv.Atoi(v)
		if perr != nil || n < 1 || n > 100 {
			errs = append(errs, fmt.Errorf("ROTATE_TEST_ATTEMPTS: %q is not a whole number in 1..100", v))
		}
		c.Probing.Attempts = n
	}
	if v := getenv("ROTATE_TEST_WAIT"); v != "" {
		d, perr := time.ParseDuration(v)
		if perr != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("ROTATE_TEST_WAIT: %q is not a positive duration", v))
		}
		c.Probing.Wait = d
	}
	switch v := getenv("ROTATE_RETIRE"); v {
	case "", "next-rotation":
	case "immediate":
		c.Handler.RetireImmediately = true
	default:
		errs = append(errs, fmt.Errorf("ROTATE_RETIRE: %q is neither next-rotation nor immediate", v))
	}
	errs = append(errs, c.Validate())
	return c, errors.Join(errs...)
}

// Validate reports every problem at once, naming variables.
func (c Config) Validate() error {
	p := c.Providers
	var errs []error
	if p.Supabase.SecretARN == "" && p.S3.SecretARN == "" && p.GCS.SecretARN == "" {
		errs = append(errs, errors.New("nothing to rotate: set SUPABASE_SECRET_ARN, S3_REPLICA_SECRET_ARN or GCS_SECRET_ARN"))
	}
	if p.S3.SecretARN != "" && p.S3.Bucket == "" {
		errs = append(errs, errors.New("S3_REPLICA_BUCKET is required with S3_REPLICA_SECRET_ARN (testSecret probes it)"))
	}
	if p.GCS.SecretARN != "" && p.GCS.Bucket == "" {
		errs = append(errs, errors.New("GCS_BUCKET is required with GCS_SECRET_ARN (testSecret probes it)"))
	}
	if p.Supabase.SecretARN != "" && p.Supabase.Bucket == "" {
		errs = append(errs, errors.New("SUPABASE_BUCKET is required with SUPABASE_SECRET_ARN (testSecret probes it)"))
	}
	return errors.Join(errs...)
}

// Wire builds the Handler functions/rotate runs: Secrets Manager and IAM
// from awsCfg (the function's role), one rotator per configured secret.
// Without S3_REPLICATION_USER it reads the S3 secret's AWSCURRENT version,
// and refuses to start when that is a key pair (which cannot rotate
// without its user); a role secret needs no user.
func Wire(ctx context.Context, cfg Config, awsCfg aws.Config, log *slog.Logger) (*Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	sm := secretsmanager.NewFromConfig(awsCfg)
	p := cfg.Providers
	rots := map[string]Rotator{}
	if p.S3.SecretARN != "" {
		if cfg.S3User == "" {
			if err := requireRole(ctx, sm, p.S3.SecretARN); err != nil {
				return nil, err
			}
		}
		r, err := NewS3(S3Config{UserName: cfg.S3User, Probing: cfg.Probing, AWS: awsCfg, Provider: s3.Config{Name: p.S3.Name,
			Bucket: p.S3.Bucket, Region: p.S3.Region, Endpoint: p.S3.Endpoint, UsePathStyle: p.S3.UsePathStyle}},
			iam.NewFromConfig(awsCfg), log)
		if err != nil {
			return nil, err
		}
		rots[p.S3.SecretARN] = r
	}
	if p.GCS.SecretARN != "" {
		rots[p.GCS.SecretARN] = NewGCS(GCSConfig{IAMEndpoint: cfg.GCSIAMEndpoint, Probing: cfg.Probing,
			Provider: gcs.Config{Name: config.NameGCS, Bucket: p.GCS.Bucket, ProjectID: p.GCS.Project, Endpoint: p.GCS.Endpoint}}, log)
	}
	if p.Supabase.SecretARN != "" {
		rots[p.Supabase.SecretARN] = NewSupabase(SupabaseConfig{Probing: cfg.Probing,
			Provider: supabase.Config{Name: config.NameSupabase, URL: p.Supabase.URL, Bucket: p.Supabase.Bucket}}, log)
	}
	return New(sm, rots, cfg.Handler, log)
}

// requireRole checks that the S3 secret holds a role: a key pair needs
// S3_REPLICATION_USER. Errors never quote the secret.
func requireRole(ctx context.Context, sm SecretsAPI, arn string) error {
	out, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn),
		VersionStage: aws.String(credentials.StageCurrent)})
	if err != nil {
		return fmt.Errorf("read S3_REPLICA_SECRET_ARN %s: %w", arn, err)
	}
	c, err := credentials.ParseS3(secret.Secret(aws.ToString(out.SecretString)))
	if err != nil {
		return fmt.Errorf("S3_REPLICA_SECRET_ARN %s: %w", arn, err)
	}
	if c.AccessKeyID != "" {
		return fmt.Errorf("S3_REPLICATION_USER is required: S3_REPLICA_SECRET_ARN %s holds an access key pair", arn)
	}
	return nil
}
