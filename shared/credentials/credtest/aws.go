package credtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
)

// EnforceIAM switches moto at motoURL to checking every request against
// IAM, as AWS does: it first creates an administrator user (everything
// allowed) while moto still accepts anything, then turns enforcement on
// (POST /moto-api/reset-auth 0). From then on moto refuses unknown,
// deleted or wrongly signed access keys (InvalidAccessKeyId,
// SignatureDoesNotMatch) and actions the caller's policies do not allow.
// It returns a configuration signed with the administrator's key, based on
// base (region, endpoint). Enforcement is server-wide: use a moto server of
// the test's own.
func EnforceIAM(ctx context.Context, motoURL string, base aws.Config) (aws.Config, error) {
	id, key, err := NewIAMUser(ctx, base, "credtest-admin", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}`)
	if err != nil {
		return aws.Config{}, err
	}
	if err := SetIAMEnforcement(ctx, motoURL, true); err != nil {
		return aws.Config{}, err
	}
	admin := base.Copy()
	admin.Credentials = credentials.NewStaticCredentialsProvider(id, key, "")
	return admin, nil
}

// SetIAMEnforcement turns moto's IAM checks on or off (POST
// /moto-api/reset-auth). Off is for what moto cannot check: it answers a
// presigned (query-signed) request with a 500 while enforcing.
func SetIAMEnforcement(ctx context.Context, motoURL string, on bool) error {
	count := "1000000000" // requests before checks begin: never, in a test
	if on {
		count = "0"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(motoURL, "/")+"/moto-api/reset-auth", strings.NewReader(count))
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("moto reset-auth: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("moto reset-auth: HTTP %d", resp.StatusCode)
	}
	return nil
}

// NewIAMUser creates user name with the inline policy document and one
// access key, returning the key pair.
func NewIAMUser(ctx context.Context, cfg aws.Config, name, policy string) (accessKeyID, secretAccessKey string, err error) {
	c := iam.NewFromConfig(cfg)
	if _, err := c.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String(name)}); err != nil {
		return "", "", fmt.Errorf("create user %s: %w", name, err)
	}
	if _, err := c.PutUserPolicy(ctx, &iam.PutUserPolicyInput{UserName: aws.String(name),
		PolicyName: aws.String(name + "-policy"), PolicyDocument: aws.String(policy)}); err != nil {
		return "", "", fmt.Errorf("policy of %s: %w", name, err)
	}
	out, err := c.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String(name)})
	if err != nil {
		return "", "", fmt.Errorf("access key of %s: %w", name, err)
	}
	return aws.ToString(out.AccessKey.AccessKeyId), aws.ToString(out.AccessKey.SecretAccessKey), nil
}

// BucketPolicy is an IAM policy document allowing every S3 action on the
// named buckets and their objects.
func BucketPolicy(buckets ...string) string {
	var res []string
	for _, b := range buckets {
		res = append(res, "arn:aws:s3:::"+b, "arn:aws:s3:::"+b+"/*")
	}
	doc, _ := json.Marshal(map[string]any{"Version": "2012-10-17", "Statement": []any{
		map[string]any{"Effect": "Allow", "Action": "s3:*", "Resource": res}}})
	return string(doc)
}

// S3AccessKey names the access key id a SigV4 request is signed with (in
// its Authorization header or a presigned URL's X-Amz-Credential).
func S3AccessKey(r *http.Request) string {
	cred := r.URL.Query().Get("X-Amz-Credential")
	if a := r.Header.Get("Authorization"); a != "" {
		if _, rest, ok := strings.Cut(a, "Credential="); ok {
			cred = rest
		}
	}
	id, _, _ := strings.Cut(cred, "/")
	return id
}

// S3Recorder is a Gate in front of moto that refuses nothing (moto itself
// enforces IAM after EnforceIAM) and records which access key signed each
// request and how moto answered.
func S3Recorder(upstream string) (*Gate, error) {
	return NewGate(upstream, GateConfig{Identify: S3AccessKey, Allow: func(string) bool { return true },
		Refuse: func(http.ResponseWriter) {}})
}
