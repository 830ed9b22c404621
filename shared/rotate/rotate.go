// Package rotate is the Secrets Manager rotation function for the
// providers' credentials: the four steps Secrets Manager invokes
// (createSecret, setSecret, testSecret, finishSecret), each idempotent, and
// one Rotator per provider that knows how to make, test and retire that
// provider's credentials:
//
//   - S3 (S3Rotator): access keys of the replication IAM user. createSecret
//     deletes the key before last and creates a new one (AWSPENDING),
//     testSecret probes the bucket with it, finishSecret moves AWSCURRENT
//     and deletes any key that is neither current nor previous. The previous
//     key stays valid until the next rotation (HandlerConfig says why, and
//     how to retire it at once instead). A role secret ({"roleArn"}) has no
//     key to make: the steps carry it (or a role an operator staged) through,
//     and testSecret assumes the role and probes the bucket with it.
//   - GCS (GCSRotator): service-account keys through the IAM API's keys
//     resource, called with the service account's own current key.
//   - Supabase (SupabaseRotator): Supabase has no API to rotate a service
//     key with the key itself, so an operator creates the new key and puts
//     it into the secret as AWSPENDING; the steps validate, test and promote
//     it.
//
// functions/rotate wires Handler to Lambda; Drive plays Secrets Manager's
// part locally and in tests (moto's RotateSecret cannot invoke a function).
package rotate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/wedsync/backup-replication/shared/credentials"
	"github.com/wedsync/backup-replication/shared/secret"
)

// The rotation steps, in the order Secrets Manager runs them.
const (
	StepCreate = "createSecret"
	StepSet    = "setSecret"
	StepTest   = "testSecret"
	StepFinish = "finishSecret"
)

// Steps lists the steps in order.
var Steps = []string{StepCreate, StepSet, StepTest, StepFinish}

// Event is what Secrets Manager sends the rotation function.
type Event = events.SecretsManagerSecretRotationEvent

// ValidateEvent reports what is wrong with ev (unknown step, missing id or
// token). It never quotes more than the step name.
func ValidateEvent(ev Event) error {
	var errs []error
	if !slices.Contains(Steps, ev.Step) {
		errs = append(errs, fmt.Errorf("rotate: unknown step %.40q", ev.Step))
	}
	if ev.SecretID == "" {
		errs = append(errs, errors.New("rotate: SecretId is empty"))
	}
	if ev.ClientRequestToken == "" {
		errs = append(errs, errors.New("rotate: ClientRequestToken is empty"))
	}
	return errors.Join(errs...)
}

// SecretsAPI is the part of Secrets Manager the steps use;
// *secretsmanager.Client implements it.
type SecretsAPI interface {
	DescribeSecret(ctx context.Context, in *secretsmanager.DescribeSecretInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.DescribeSecretOutput, error)
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
	PutSecretValue(ctx context.Context, in *secretsmanager.PutSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.PutSecretValueOutput, error)
	UpdateSecretVersionStage(ctx context.Context, in *secretsmanager.UpdateSecretVersionStageInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.UpdateSecretVersionStageOutput, error)
}

// Rotator makes, tests and retires one provider's credentials. Values are
// the secret's JSON (see package credentials for the shapes).
type Rotator interface {
	// Provider names the provider, for logs.
	Provider() string
	// Create returns new credentials to store as AWSPENDING. staged is a
	// value an operator put as AWSPENDING before the rotation started ("" if
	// none); rotators that can make credentials themselves ignore it.
	Create(ctx context.Context, current, staged secret.Secret) (secret.Secret, error)
	// Set makes pending usable at the provider, or checks that it is.
	Set(ctx context.Context, current, pending secret.Secret) error
	// Test proves pending works: the provider's canary probe with it.
	Test(ctx context.Context, pending secret.Secret) error
	// Retire runs once AWSCURRENT is the new version: it removes every
	// credential but current's and previous's (previous is "" when it is to
	// go too). It must be idempotent.
	Retire(ctx context.Context, current, previous secret.Secret) error
}

// HandlerConfig tunes the steps.
type HandlerConfig struct {
	// RetireImmediately makes finishSecret delete the previous credentials
	// as well. By default they stay valid, as AWSPREVIOUS, until the next
	// rotation's createSecret deletes them: functions that cached them (up
	// to the credentials loader's TTL) and uploads in flight keep working,
	// and nothing has to be replayed. Immediate retirement is safe only for
	// operations that can be retried (the credentials decorator retries
	// them once refused); a streaming upload refused midway fails and its
	// message goes back to the queue.
	RetireImmediately bool
}

// Handler runs the rotation steps.
type Handler struct {
	sm       SecretsAPI
	rotators map[string]Rotator
	cfg      HandlerConfig
	log      *slog.Logger
}

// New returns a Handler that rotates each secret in rotators (keyed by the
// secret's ARN or name) with its Rotator.
func New(sm SecretsAPI, rotators map[string]Rotator, cfg HandlerConfig, log *slog.Logger) (*Handler, error) {
	if sm == nil || len(rotators) == 0 {
		return nil, errors.New("rotate: a Secrets Manager client and at least one rotator are required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{sm: sm, rotators: rotators, cfg: cfg, log: log}, nil
}

// Handle runs one step for one secret. Every step can be run again with
// the same token without doing its work twice. An error fails the step;
// Secrets Manager retries the rotation later.
func (h *Handler) Handle(ctx context.Context, ev Event) error {
	if err := ValidateEvent(ev); err != nil {
		return err
	}
	start := time.Now()
	d, err := h.sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(ev.SecretID)})
	if err != nil {
		return fmt.Errorf("rotate %s: describe: %w", ev.SecretID, err)
	}
	rot := h.rotators[ev.SecretID]
	if rot == nil {
		rot = h.rotators[aws.ToString(d.ARN)]
	}
	if rot == nil {
		rot = h.rotators[aws.ToString(d.Name)]
	}
	if rot == nil {
		return fmt.Errorf("rotate %s: no rotator for this secret", ev.SecretID)
	}
	s := &step{h: h, rot: rot, id: aws.ToString(d.ARN), token: ev.ClientRequestToken, versions: d.VersionIdsToStages}
	log := h.log.With("provider", rot.Provider(), "op", "rotate", "step", ev.Step, "secret", s.id)
	var done string
	switch ev.Step {
	case StepCreate:
		done, err = s.create(ctx)
	case StepSet:
		done, err = s.set(ctx)
	case StepTest:
		done, err = s.test(ctx)
	case StepFinish:
		done, err = s.finish(ctx)
	}
	ms := time.Since(start).Milliseconds()
	if err != nil {
		log.ErrorContext(ctx, "rotation step failed", "duration_ms", ms, "error", err.Error())
		return fmt.Errorf("rotate %s: %s: %w", rot.Provider(), ev.Step, err)
	}
	log.InfoContext(ctx, "rotation step done", "duration_ms", ms, "outcome", done)
	return nil
}

// step is one step's view of the secret.
type step struct {
	h        *Handler
	rot      Rotator
	id       string
	token    string
	versions map[string][]string
}

func (s *step) has(version, stage string) bool { return slices.Contains(s.versions[version], stage) }

// versionWith returns the id of the version carrying stage, or "".
func (s *step) versionWith(stage string) string {
	for id, stages := range s.versions {
		if slices.Contains(stages, stage) {
			return id
		}
	}
	return ""
}

// pendingReady checks, for the steps after createSecret, that the token's
// version exists; it reports whether it is already AWSCURRENT.
func (s *step) pendingReady() (current bool, err error) {
	if _, ok := s.versions[s.token]; !ok {
		return false, fmt.Errorf("version %s does not exist: run createSecret first", s.token)
	}
	if s.has(s.token, credentials.StageCurrent) {
		return true, nil
	}
	if !s.has(s.token, credentials.StagePending) {
		return false, fmt.Errorf("version %s is not AWSPENDING", s.token)
	}
	return false, nil
}

func (s *step) value(ctx context.Context, versionID, stage string) (secret.Secret, error) {
	in := &secretsmanager.GetSecretValueInput{SecretId: aws.String(s.id), VersionStage: aws.String(stage)}
	if versionID != "" {
		in.VersionId = aws.String(versionID)
	}
	out, err := s.h.sm.GetSecretValue(ctx, in)
	if err != nil {
		return "", err
	}
	return secret.Secret(aws.ToString(out.SecretString)), nil
}

func notFound(err error) bool {
	var nf *smtypes.ResourceNotFoundException
	return errors.As(err, &nf)
}

func (s *step) create(ctx context.Context) (string, error) {
	if s.has(s.token, credentials.StageCurrent) {
		return "already current", nil
	}
	if _, err := s.value(ctx, s.token, credentials.StagePending); err == nil {
		return "already created", nil
	} else if !notFound(err) {
		return "", fmt.Errorf("read AWSPENDING: %w", err)
	}
	current, err := s.value(ctx, "", credentials.StageCurrent)
	if err != nil {
		return "", fmt.Errorf("read AWSCURRENT: %w", err)
	}
	// A value put as AWSPENDING before this rotation began (by an operator,
	// or an earlier rotation that did not finish).
	var staged secret.Secret
	if id := s.versionWith(credentials.StagePending); id != "" && id != s.token && !s.has(id, credentials.StageCurrent) {
		if staged, err = s.value(ctx, id, credentials.StagePending); err != nil && !notFound(err) {
			return "", fmt.Errorf("read the staged AWSPENDING version: %w", err)
		}
	}
	pending, err := s.rot.Create(ctx, current, staged)
	if err != nil {
		return "", err
	}
	if _, err := s.h.sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(s.id),
		ClientRequestToken: aws.String(s.token), SecretString: aws.String(pending.Reveal()),
		VersionStages: []string{credentials.StagePending}}); err != nil {
		return "", fmt.Errorf("store AWSPENDING: %w", err)
	}
	return "created", nil
}

func (s *step) set(ctx context.Context) (string, error) {
	if cur, err := s.pendingReady(); err != nil || cur {
		return "already current", err
	}
	current, err := s.value(ctx, "", credentials.StageCurrent)
	if err != nil {
		return "", fmt.Errorf("read AWSCURRENT: %w", err)
	}
	pending, err := s.value(ctx, s.token, credentials.StagePending)
	if err != nil {
		return "", fmt.Errorf("read AWSPENDING: %w", err)
	}
	return "set", s.rot.Set(ctx, current, pending)
}

func (s *step) test(ctx context.Context) (string, error) {
	stage := credentials.StagePending
	if cur, err := s.pendingReady(); err != nil {
		return "", err
	} else if cur {
		stage = credentials.StageCurrent
	}
	pending, err := s.value(ctx, s.token, stage)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", stage, err)
	}
	return "tested", s.rot.Test(ctx, pending)
}

func (s *step) finish(ctx context.Context) (string, error) {
	cur, err := s.pendingReady()
	if err != nil {
		return "", err
	}
	outcome := "already current"
	if !cur {
		in := &secretsmanager.UpdateSecretVersionStageInput{SecretId: aws.String(s.id),
			VersionStage: aws.String(credentials.StageCurrent), MoveToVersionId: aws.String(s.token)}
		if old := s.versionWith(credentials.StageCurrent); old != "" {
			in.RemoveFromVersionId = aws.String(old)
		}
		if _, err := s.h.sm.UpdateSecretVersionStage(ctx, in); err != nil {
			return "", fmt.Errorf("move AWSCURRENT: %w", err)
		}
		outcome = "finished"
	}
	current, err := s.value(ctx, s.token, credentials.StageCurrent)
	if err != nil {
		return "", fmt.Errorf("read the new AWSCURRENT: %w", err)
	}
	var previous secret.Secret
	if !s.h.cfg.RetireImmediately {
		if previous, err = s.value(ctx, "", credentials.StagePrevious); err != nil && !notFound(err) {
			return "", fmt.Errorf("read AWSPREVIOUS: %w", err)
		}
	}
	if err := s.rot.Retire(ctx, current, previous); err != nil {
		return "", fmt.Errorf("retire the old credentials (AWSCURRENT already moved): %w", err)
	}
	return outcome, nil
}
