package stack

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/golang-jwt/jwt/v5"

	"github.com/wedsync/backup-replication/infra/emulator"
	"github.com/wedsync/backup-replication/infra/local/samtemplate"
)

// Local development credentials. They only ever open the emulators on
// loopback; nothing real accepts them.
const (
	// DevJWTSecret signs the API's bearer tokens locally (HS256).
	DevJWTSecret = "ws191-local-dev-jwt-secret-0123456789abcdef"
	// DevJWTIssuer and DevJWTAudience are the claims the local API requires.
	DevJWTIssuer   = "http://127.0.0.1/auth/v1"
	DevJWTAudience = "authenticated"
)

// DevToken returns a bearer token the local API accepts for organization
// org (a valid id, e.g. from api.NewID), valid for ttl.
func DevToken(org string, ttl time.Duration) string {
	now := time.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": DevJWTIssuer, "aud": DevJWTAudience, "sub": "dev-user", "role": "authenticated",
		"iat": now.Unix(), "exp": now.Add(ttl).Unix(),
		"app_metadata": map[string]any{"org_id": org},
	})
	s, _ := tok.SignedString([]byte(DevJWTSecret))
	return s
}

// parameters are the template parameters the local stack sets: provider
// buckets on the emulators, the emulator's Supabase URL, the dev issuer;
// then Options.Parameters.
func (s *Stack) parameters() map[string]any {
	n := s.opts.StackName
	out := map[string]any{
		"SupabaseUrl":     s.Supabase.URL,
		"S3ReplicaBucket": n + "-s3-replica",
		"S3ReplicaRegion": emulator.MotoRegion,
		"S3StandbyBucket": n + "-s3-standby",
		"S3StandbyRegion": emulator.MotoRegion,
		"GcsBucket":       n + "-gcs",
		"JwtIssuer":       DevJWTIssuer,
		"JwtAudience":     DevJWTAudience,
		"AllowedOrigin":   "http://127.0.0.1",
	}
	for k, v := range s.opts.Parameters {
		out[k] = v
	}
	return out
}

func (s *Stack) buckets() Buckets {
	t := s.Template
	return Buckets{
		Landing:  t.Ref("LandingBucket"),
		S3:       fmt.Sprint(t.Parameters["S3ReplicaBucket"]),
		Standby:  fmt.Sprint(t.Parameters["S3StandbyBucket"]),
		GCS:      fmt.Sprint(t.Parameters["GcsBucket"]),
		Supabase: fmt.Sprint(t.Parameters["SupabaseBucket"]),
	}
}

// secretValues are the dev values of the template's secrets, by logical
// id. The S3 secret holds an access key of the replication IAM user, which
// the stack creates in moto so that rotation (new key, retire the old) runs
// locally as it does on AWS.
func (s *Stack) secretValues(ctx context.Context, t *samtemplate.Template) (map[string]string, error) {
	j := func(v any) string { b, _ := json.Marshal(v); return string(b) }
	keyID, secretKey := emulator.MotoAccessKeyID, emulator.MotoSecretAccessKey
	if user := fmt.Sprint(t.Parameters["S3ReplicationUserName"]); user != "" && user != "<nil>" {
		if _, err := s.clients.iam.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String(user)}); err != nil {
			return nil, fmt.Errorf("replication user %s: %w", user, err)
		}
		key, err := s.clients.iam.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String(user)})
		if err != nil {
			return nil, fmt.Errorf("replication user %s: access key: %w", user, err)
		}
		keyID, secretKey = aws.ToString(key.AccessKey.AccessKeyId), aws.ToString(key.AccessKey.SecretAccessKey)
	}
	return map[string]string{
		"SupabaseSecret": j(map[string]string{"url": s.Supabase.URL, "serviceKey": s.Supabase.ServiceKey}),
		"S3Secret":       j(map[string]string{"accessKeyId": keyID, "secretAccessKey": secretKey}),
		"GcsSecret":      j(map[string]string{"credentialsJson": ""}),
		"JwtSecret":      DevJWTSecret,
	}, nil
}

// createProviderBuckets creates the provider buckets the template names by
// parameter: the S3 secondary and standby on moto, the GCS bucket on
// fake-gcs-server, the Supabase bucket on its emulator.
func (s *Stack) createProviderBuckets(ctx context.Context) error {
	for _, b := range []string{s.Buckets.S3, s.Buckets.Standby} {
		if err := s.clients.createBucket(ctx, b, false); err != nil {
			return fmt.Errorf("bucket %s: %w", b, err)
		}
	}
	if err := s.GCS.CreateBucket(s.Buckets.GCS); err != nil {
		return err
	}
	return createSupabaseBucket(ctx, s.Supabase, s.Buckets.Supabase)
}

// createSupabaseBucket creates a private bucket through the Storage API.
func createSupabaseBucket(ctx context.Context, sb *emulator.Supabase, name string) error {
	body, _ := json.Marshal(map[string]any{"id": name, "name": name, "public": false})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, sb.URL+"/storage/v1/bucket", strings.NewReader(string(body)))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+sb.ServiceKey)
	req.Header.Set("apikey", sb.ServiceKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("supabase bucket %s: %w", name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 && resp.StatusCode != http.StatusConflict {
		var e map[string]any
		json.NewDecoder(resp.Body).Decode(&e)
		if fmt.Sprint(e["error"]) == "Duplicate" || fmt.Sprint(e["statusCode"]) == "409" {
			return nil
		}
		return fmt.Errorf("supabase bucket %s: HTTP %d %v", name, resp.StatusCode, e)
	}
	return nil
}

// localEnv points every function at the local endpoints (variable names:
// shared/config): every AWS client at moto (AWS_ENDPOINT_URL; the S3
// providers follow it, path-style), GCS at fake-gcs-server, Supabase at its
// emulator, the publisher at the WebSocket gateway (empty: none). The
// template's *_SECRET_ARN variables point at the local secrets, which hold
// the same dev values.
func (s *Stack) localEnv(wsEndpoint string) map[string]string {
	gcsHost := strings.TrimPrefix(s.GCS.URL, "http://")
	return map[string]string{
		"AWS_REGION":                emulator.MotoRegion,
		"AWS_DEFAULT_REGION":        emulator.MotoRegion,
		"AWS_ACCESS_KEY_ID":         emulator.MotoAccessKeyID,
		"AWS_SECRET_ACCESS_KEY":     emulator.MotoSecretAccessKey,
		"AWS_ENDPOINT_URL":          s.Moto.URL,
		"AWS_EC2_METADATA_DISABLED": "true",
		"S3_ENDPOINT":               s.Moto.URL,
		"S3_USE_PATH_STYLE":         "true",
		"STORAGE_EMULATOR_HOST":     gcsHost,
		"GCS_ENDPOINT":              s.GCS.URL, // the provider appends /storage/v1/
		"SUPABASE_SERVICE_KEY":      s.Supabase.ServiceKey,
		"API_JWT_SECRET":            DevJWTSecret,
		"WS_ENDPOINT":               wsEndpoint,
		// The dashboard's socket: the same local gateway, seen by a browser.
		"WS_URL": strings.Replace(wsEndpoint, "http", "ws", 1),
	}
}
