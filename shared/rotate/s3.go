package rotate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/wedsync/backup-replication/shared/credentials"
	"github.com/wedsync/backup-replication/shared/secret"
	"github.com/wedsync/backup-replication/shared/storage"
	"github.com/wedsync/backup-replication/shared/storage/s3"
)

// Defaults for testSecret's probe: new IAM access keys and service-account
// keys can take seconds to be accepted everywhere, so a refused probe is
// tried again before the step fails.
const (
	DefaultTestAttempts = 6
	DefaultTestWait     = 5 * time.Second
)

// Probing is how testSecret probes: attempts and the wait between them
// while the pending credentials are refused. Zero values are the defaults.
type Probing struct {
	Attempts int
	Wait     time.Duration
}

// probe builds a provider with build and runs storage.Probe on it, again
// while it is refused (propagation), up to the attempts.
func (pr Probing) probe(ctx context.Context, build func() (storage.Provider, error)) error {
	attempts, wait := pr.Attempts, pr.Wait
	if attempts <= 0 {
		attempts = DefaultTestAttempts
	}
	if wait <= 0 {
		wait = DefaultTestWait
	}
	p, err := build()
	if err != nil {
		return fmt.Errorf("pending credentials: %w", err)
	}
	for i := 1; ; i++ {
		res, err := storage.Probe(ctx, p)
		if err == nil {
			return nil
		}
		if storage.KindOf(err) != storage.Unauthorized || i >= attempts {
			return fmt.Errorf("probe with the pending credentials failed at %s (attempt %d): %w", res.Step, i, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("probe with the pending credentials: %w (last: %v)", ctx.Err(), err)
		case <-time.After(wait):
		}
	}
}

// IAMAPI is the part of IAM the S3 rotator uses; *iam.Client implements it.
type IAMAPI interface {
	CreateAccessKey(ctx context.Context, in *iam.CreateAccessKeyInput, optFns ...func(*iam.Options)) (*iam.CreateAccessKeyOutput, error)
	DeleteAccessKey(ctx context.Context, in *iam.DeleteAccessKeyInput, optFns ...func(*iam.Options)) (*iam.DeleteAccessKeyOutput, error)
	ListAccessKeys(ctx context.Context, in *iam.ListAccessKeysInput, optFns ...func(*iam.Options)) (*iam.ListAccessKeysOutput, error)
}

// S3Config is what the S3 rotator needs.
type S3Config struct {
	// UserName is the IAM user whose access keys the secret holds. The user
	// must be dedicated to replication: every key of it other than the
	// secret's current one is deleted (IAM allows two per user). Required
	// when the secret holds a key pair; a role secret has no user.
	UserName string
	// Provider is the bucket testSecret probes (its credential fields are
	// ignored: the pending credentials are used).
	Provider s3.Config
	// AWS is the function's own configuration (its role, region and
	// endpoint): testSecret assumes a role secret's role with it, as the
	// replicate functions do. Required to rotate a role secret.
	AWS     aws.Config
	Probing Probing
}

// S3Rotator rotates the S3 secondary's secret: the replication user's
// access key pair, or a role to assume ({"roleArn","externalId"}).
type S3Rotator struct {
	cfg S3Config
	iam IAMAPI
	log *slog.Logger
}

// NewS3 returns the S3 rotator.
func NewS3(cfg S3Config, client IAMAPI, log *slog.Logger) (*S3Rotator, error) {
	if client == nil {
		return nil, errors.New("rotate s3: an IAM client is required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &S3Rotator{cfg: cfg, iam: client, log: log}, nil
}

// Provider names the provider.
func (r *S3Rotator) Provider() string {
	if r.cfg.Provider.Name != "" {
		return r.cfg.Provider.Name
	}
	return "s3"
}

// errNoUser says that a key-pair secret cannot rotate without its user.
var errNoUser = errors.New("rotate s3: the secret holds an access key pair: set S3_REPLICATION_USER to the IAM user whose keys rotate")

// Create deletes the user's keys other than the current one (the previous
// rotation's, and any left by an interrupted rotation: IAM allows two per
// user), then creates a new key.
//
// A role secret has no key to create (the role's STS credentials are
// temporary already): the pending value is the current one, or a role
// secret an operator staged as AWSPENDING (another role or external id);
// testSecret then proves the role can be assumed and can use the bucket.
func (r *S3Rotator) Create(ctx context.Context, current, staged secret.Secret) (secret.Secret, error) {
	c, err := credentials.ParseS3(current)
	if err != nil {
		return "", err
	}
	if c.AccessKeyID == "" {
		if staged.IsZero() {
			return current, nil
		}
		s, err := credentials.ParseS3(staged)
		if err != nil {
			return "", fmt.Errorf("the staged AWSPENDING value: %w", err)
		}
		if s.AccessKeyID != "" {
			return "", errors.New("rotate s3: the staged AWSPENDING value is a key pair but the secret holds a role: " +
				"a rotation cannot switch the secret's form; put the key pair as AWSCURRENT instead")
		}
		return staged, nil
	}
	if r.cfg.UserName == "" {
		return "", errNoUser
	}
	if err := r.deleteOthers(ctx, c.AccessKeyID); err != nil {
		return "", err
	}
	out, err := r.iam.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String(r.cfg.UserName)})
	if err != nil {
		return "", fmt.Errorf("create an access key for %s: %w", r.cfg.UserName, err)
	}
	n := credentials.S3Creds{AccessKeyID: aws.ToString(out.AccessKey.AccessKeyId),
		SecretAccessKey: secret.Secret(aws.ToString(out.AccessKey.SecretAccessKey))}
	r.log.InfoContext(ctx, "access key created", "provider", r.Provider(), "op", "rotate", "access_key_id", n.AccessKeyID)
	return n.Secret(), nil
}

// Set has nothing to do: a new access key is active at once, and a role
// is the same role.
func (r *S3Rotator) Set(ctx context.Context, _, pending secret.Secret) error {
	_, err := credentials.ParseS3(pending)
	return err
}

// Test probes the bucket with the pending credentials: the key pair, or
// the role's credentials, assumed (with its external id) through STS with
// the function's own configuration, so a role that cannot be assumed fails
// here, with its ARN named, before it becomes AWSCURRENT.
func (r *S3Rotator) Test(ctx context.Context, pending secret.Secret) error {
	c, err := credentials.ParseS3(pending)
	if err != nil {
		return err
	}
	cfg := r.cfg.Provider
	cfg.AccessKeyID, cfg.SecretAccessKey, cfg.SessionToken = c.AccessKeyID, c.SecretAccessKey, c.SessionToken
	if c.AccessKeyID == "" {
		if cfg.AccessKeyID, cfg.SecretAccessKey, cfg.SessionToken, err = r.assume(ctx, c); err != nil {
			return err
		}
	}
	return r.cfg.Probing.probe(ctx, func() (storage.Provider, error) { return s3.New(ctx, cfg, nil) })
}

// assume assumes c's role with the function's own configuration.
func (r *S3Rotator) assume(ctx context.Context, c credentials.S3Creds) (id string, key, token secret.Secret, err error) {
	if r.cfg.AWS.Credentials == nil {
		return "", "", "", errors.New("rotate s3: no AWS configuration to assume the role with (S3Config.AWS)")
	}
	in := &sts.AssumeRoleInput{RoleArn: aws.String(c.RoleARN), RoleSessionName: aws.String("wedsync-rotate-" + r.Provider()),
		DurationSeconds: aws.Int32(900)}
	if c.ExternalID != "" {
		in.ExternalId = aws.String(c.ExternalID)
	}
	out, err := sts.NewFromConfig(r.cfg.AWS).AssumeRole(ctx, in)
	if err != nil {
		return "", "", "", fmt.Errorf("assume role %s with the pending secret: %w", c.RoleARN, err)
	}
	if out.Credentials == nil {
		return "", "", "", fmt.Errorf("assume role %s: STS returned no credentials", c.RoleARN)
	}
	r.log.InfoContext(ctx, "role assumed", "provider", r.Provider(), "op", "rotate", "role_arn", c.RoleARN)
	return aws.ToString(out.Credentials.AccessKeyId), secret.Secret(aws.ToString(out.Credentials.SecretAccessKey)),
		secret.Secret(aws.ToString(out.Credentials.SessionToken)), nil
}

// Retire deletes every key of the user but current's and previous's. A
// role secret has nothing to retire.
func (r *S3Rotator) Retire(ctx context.Context, current, previous secret.Secret) error {
	c, err := credentials.ParseS3(current)
	if err != nil || c.AccessKeyID == "" {
		return err
	}
	if r.cfg.UserName == "" {
		return errNoUser
	}
	keep := []string{c.AccessKeyID}
	if p, err := credentials.ParseS3(previous); err == nil && p.AccessKeyID != "" {
		keep = append(keep, p.AccessKeyID)
	}
	return r.deleteOthers(ctx, keep...)
}

// deleteOthers deletes the user's keys not in keep; keep[0] (the current
// key) must be one of them, or nothing is deleted.
func (r *S3Rotator) deleteOthers(ctx context.Context, keep ...string) error {
	out, err := r.iam.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: aws.String(r.cfg.UserName)})
	if err != nil {
		return fmt.Errorf("list the access keys of %s: %w", r.cfg.UserName, err)
	}
	// Check first: a wrong user name must not cost the user its keys.
	found := false
	for _, k := range out.AccessKeyMetadata {
		found = found || aws.ToString(k.AccessKeyId) == keep[0]
	}
	if !found {
		return fmt.Errorf("the secret's key %s is not a key of %s: check S3_REPLICATION_USER", keep[0], r.cfg.UserName)
	}
	for _, k := range out.AccessKeyMetadata {
		id := aws.ToString(k.AccessKeyId)
		if slices.Contains(keep, id) {
			continue
		}
		if _, err := r.iam.DeleteAccessKey(ctx, &iam.DeleteAccessKeyInput{UserName: aws.String(r.cfg.UserName),
			AccessKeyId: aws.String(id)}); err != nil {
			return fmt.Errorf("delete access key %s of %s: %w", id, r.cfg.UserName, err)
		}
		r.log.InfoContext(ctx, "access key deleted", "provider", r.Provider(), "op", "rotate", "access_key_id", id)
	}
	return nil
}
