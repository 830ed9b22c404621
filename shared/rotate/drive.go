package rotate

import (
	"context"
	"fmt"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/google/uuid"

	"github.com/wedsync/backup-replication/shared/credentials"
)

// StepHandler runs one rotation step (Handler does; so does a client that
// invokes the deployed function).
type StepHandler interface {
	Handle(ctx context.Context, ev Event) error
}

// Drive rotates secretID the way Secrets Manager's RotateSecret would, for
// the local stack and tests (moto's RotateSecret cannot invoke a function,
// and without one it marks an empty version current): it runs the four
// steps in order under one ClientRequestToken and stops at the first that
// fails. When a version carries AWSPENDING without AWSCURRENT (a rotation
// that did not finish, or a value an operator staged) its id is the token,
// so the rotation resumes with it; otherwise the token is new. It returns
// the token.
func Drive(ctx context.Context, client SecretsAPI, h StepHandler, secretID string) (string, error) {
	d, err := client.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(secretID)})
	if err != nil {
		return "", fmt.Errorf("rotate %s: describe: %w", secretID, err)
	}
	token := uuid.NewString()
	for id, stages := range d.VersionIdsToStages {
		if slices.Contains(stages, credentials.StagePending) && !slices.Contains(stages, credentials.StageCurrent) {
			token = id
		}
	}
	arn := aws.ToString(d.ARN)
	for _, step := range Steps {
		if err := h.Handle(ctx, Event{Step: step, SecretID: arn, ClientRequestToken: token}); err != nil {
			return token, fmt.Errorf("rotate %s: %s: %w", secretID, step, err)
		}
	}
	return token, nil
}
