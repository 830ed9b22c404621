// Package credentials loads each provider's credentials from AWS Secrets
// Manager and keeps providers working while those credentials rotate.
//
// One Loader reads secrets by staging label, always naming the stage
// (AWSCURRENT explicitly: moto, and any cache keyed on the bare secret id,
// can answer a request without a stage with the version that was current
// before a rotation), and caches what it read for a TTL. Provider wraps a
// storage.Provider built from a secret's value: it rebuilds the provider
// when the secret's current version changes, and when the provider answers
// an operation with storage.Unauthorized it refetches the secret once and
// retries the operation with the fresh credentials, then, if that is still
// refused, with the AWSPENDING and AWSPREVIOUS versions, so a rotation in
// progress (a key already retired, a new key not yet propagated) does not
// fail a replication.
//
// The shapes of the secrets are typed in creds.go (S3Creds, GCSCreds,
// SupabaseCreds), with every credential a secret.Secret that never prints.
package credentials

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/wedsync/backup-replication/shared/secret"
)

// The staging labels Secrets Manager rotation uses.
const (
	StageCurrent  = "AWSCURRENT"
	StagePending  = "AWSPENDING"
	StagePrevious = "AWSPREVIOUS"
)

// Defaults of LoaderConfig.
const (
	DefaultTTL        = 5 * time.Minute
	DefaultMinRefresh = 2 * time.Second
)

// ErrNoVersion says that no version of the secret carries the stage asked
// for (no rotation in progress has an AWSPENDING version, a secret never
// rotated has no AWSPREVIOUS).
var ErrNoVersion = errors.New("credentials: no version of the secret has that stage")

// SecretsClient is the part of the Secrets Manager API the Loader uses;
// *secretsmanager.Client implements it.
type SecretsClient interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// Version is one version of a secret as read under one stage.
type Version struct {
	// SecretID is the id the version was asked for by (ARN or name).
	SecretID string
	// ARN is the secret's ARN as Secrets Manager reported it.
	ARN string
	// VersionID identifies the version; it changes on every rotation.
	VersionID string
	// Stage is the label it was read under; Stages all the labels it had.
	Stage  string
	Stages []string
	// Value is the secret string. It never prints.
	Value secret.Secret
}

// LogValue describes the version without its value.
func (v Version) LogValue() slog.Value {
	return slog.GroupValue(slog.String("secret", v.SecretID), slog.String("version_id", v.VersionID),
		slog.String("stage", v.Stage))
}

// LoaderConfig tunes a Loader. The zero value uses the defaults.
type LoaderConfig struct {
	// TTL is how long Get serves a cached AWSCURRENT version before reading
	// it again. Default DefaultTTL.
	TTL time.Duration
	// MinRefresh is the least time between two reads of one secret's stage
	// that Fetch forces (so that a burst of refused operations, or a key that
	// is simply wrong, reads Secrets Manager once, not once per operation).
	// Default DefaultMinRefresh.
	MinRefresh time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger receives a warning when a refresh fails and a cached version
	// is served instead; nil discards.
	Logger *slog.Logger
}

// Loader reads secrets by stage and caches them. It is safe for concurrent
// use; share one per process.
type Loader struct {
	client SecretsClient
	cfg    LoaderConfig

	mu      sync.Mutex
	entries map[key]*entry
}

type key struct{ id, stage string }

// entry is one cached (secret, stage). mu serialises reads of it, so that
// concurrent callers share one request.
type entry struct {
	mu      sync.Mutex
	v       Version
	err     error // ErrNoVersion, cached like a value
	has     bool  // v or err is set
	fetched time.Time
}

// NewLoader returns a Loader reading through client.
func NewLoader(client SecretsClient, cfg LoaderConfig) *Loader {
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.MinRefresh <= 0 {
		cfg.MinRefresh = DefaultMinRefresh
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Loader{client: client, cfg: cfg, entries: map[key]*entry{}}
}

// Get returns the AWSCURRENT version of the secret, from the cache while it
// is younger than the TTL. When the read after the TTL fails, the cached
// version is served (and the failure logged) until a read succeeds; with
// nothing cached the error is returned.
func (l *Loader) Get(ctx context.Context, secretID string) (Version, error) {
	return l.read(ctx, secretID, StageCurrent, l.cfg.TTL)
}

// Fetch reads the version of the secret that carries stage now, bypassing
// the TTL, except that a version read less than MinRefresh ago is returned
// as is. A fresh AWSCURRENT also refreshes what Get serves. When no version
// carries the stage it returns an error matching ErrNoVersion.
func (l *Loader) Fetch(ctx context.Context, secretID, stage string) (Version, error) {
	return l.read(ctx, secretID, stage, l.cfg.MinRefresh)
}

func (l *Loader) read(ctx context.Context, id, stage string, maxAge time.Duration) (Version, error) {
	l.mu.Lock()
	e := l.entries[key{id, stage}]
	if e == nil {
		e = &entry{}
		l.entries[key{id, stage}] = e
	}
	l.mu.Unlock()

	e.mu.Lock()
	defer e.mu.Unlock()
	now := l.cfg.Now()
	if e.has && now.Sub(e.fetched) < maxAge {
		return e.v, e.err
	}
	v, err := l.get(ctx, id, stage)
	switch {
	case err == nil, errors.Is(err, ErrNoVersion):
		e.v, e.err, e.has, e.fetched = v, err, true, now
		return v, err
	case e.has && e.err == nil:
		// Secrets Manager is unreachable or refusing: keep serving what we
		// had, and try again after MinRefresh rather than on every call.
		l.cfg.Logger.WarnContext(ctx, "secret refresh failed, serving the cached version", "op", "get_secret",
			"secret", id, "stage", stage, "error", err.Error())
		e.fetched = now.Add(-maxAge).Add(l.cfg.MinRefresh)
		return e.v, nil
	}
	return Version{}, err
}

// get is one GetSecretValue by stage.
func (l *Loader) get(ctx context.Context, id, stage string) (Version, error) {
	out, err := l.client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{
		SecretId: aws.String(id), VersionStage: aws.String(stage)})
	if err != nil {
		var nf *smtypes.ResourceNotFoundException
		if errors.As(err, &nf) {
			return Version{}, fmt.Errorf("secret %s, stage %s: %w", id, stage, ErrNoVersion)
		}
		// The SDK's error names the secret and the cause, never the value.
		return Version{}, fmt.Errorf("read secret %s (%s): %w", id, stage, err)
	}
	if out.SecretString == nil {
		return Version{}, fmt.Errorf("secret %s (%s) has no string value", id, stage)
	}
	return Version{SecretID: id, ARN: aws.ToString(out.ARN), VersionID: aws.ToString(out.VersionId),
		Stage: stage, Stages: out.VersionStages, Value: secret.Secret(*out.SecretString)}, nil
}
