package stack

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/uuid"
)

// RotationSteps are the steps Secrets Manager drives a rotation function
// through, in order.
var RotationSteps = []string{"createSecret", "setSecret", "testSecret", "finishSecret"}

// RotateSecret plays Secrets Manager's rotation of one of the template's
// secrets (by logical id, e.g. "S3Secret") against moto: it invokes
// RotateFunction with each step in order under one ClientRequestToken, as
// RotateSecret would (moto cannot invoke a function itself), and stops at
// the first step that fails. It returns the token.
func (s *Stack) RotateSecret(ctx context.Context, secretID string) (string, error) {
	arn := s.Template.Ref(secretID)
	if arn == "" || s.Template.Types[secretID] != "AWS::SecretsManager::Secret" {
		return "", fmt.Errorf("rotate: %s is not a secret of the template", secretID)
	}
	token := uuid.NewString()
	for _, step := range RotationSteps {
		payload, _ := json.Marshal(events.SecretsManagerSecretRotationEvent{Step: step, SecretID: arn, ClientRequestToken: token})
		resp, err := s.Invoke(ctx, "RotateFunction", payload)
		if err != nil {
			return token, fmt.Errorf("rotate %s: %s: %w", secretID, step, err)
		}
		if resp.FunctionError != "" {
			return token, fmt.Errorf("rotate %s: %s failed: %s", secretID, step, truncate(resp.Payload, 500))
		}
	}
	return token, nil
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}
