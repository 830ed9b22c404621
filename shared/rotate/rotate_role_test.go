package rotate_test

import (
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/wedsync/backup-replication/infra/emulator"
	"github.com/wedsync/backup-replication/shared/config"
	creds "github.com/wedsync/backup-replication/shared/credentials"
	"github.com/wedsync/backup-replication/shared/credentials/credtest"
	"github.com/wedsync/backup-replication/shared/rotate"
	"github.com/wedsync/backup-replication/shared/storage/s3"
)

// roleSecret is an S3 secret naming a role, rotated by the handler Wire
// builds from an environment without S3_REPLICATION_USER.
type roleSecret struct {
	w      *world
	bucket string
	arn    string
	first  creds.S3Creds
	h      *rotate.Handler
}

func newRoleSecret(t *testing.T) *roleSecret {
	t.Helper()
	w := newWorld(t)
	r := &roleSecret{w: w, bucket: w.Bucket()}
	r.first = creds.S3Creds{RoleARN: w.Role(r.bucket), ExternalID: "wedsync-1"}
	r.arn = w.Secret(r.first.Secret())
	cfg, err := rotate.LoadEnv(config.Map(map[string]string{"AWS_REGION": emulator.MotoRegion,
		"S3_REPLICA_BUCKET": r.bucket, "S3_REPLICA_ENDPOINT": side.URL(), "S3_REPLICA_SECRET_ARN": r.arn,
		"ROTATE_TEST_ATTEMPTS": "2", "ROTATE_TEST_WAIT": "1ms"}))
	if err != nil {
		t.Fatal(err)
	}
	if r.h, err = rotate.Wire(t.Context(), cfg, side.Admin(), nil); err != nil {
		t.Fatalf("Wire with a role secret and no S3_REPLICATION_USER: %v", err)
	}
	return r
}

func (r *roleSecret) current() creds.S3Creds {
	r.w.T.Helper()
	c, err := creds.ParseS3(r.w.Value(r.arn, creds.StageCurrent))
	if err != nil {
		r.w.T.Fatal(err)
	}
	return c
}

// TestRotateRoleSecret: a secret naming a role rotates: testSecret assumes
// the role (with its external id) and probes the bucket with the role's
// credentials, and the secret's versions move (AWSCURRENT new, AWSPREVIOUS
// the old). A role an operator staged (another role, another external id)
// becomes current the same way.
func TestRotateRoleSecret(t *testing.T) {
	r := newRoleSecret(t)
	ctx := t.Context()
	token, err := rotate.Drive(ctx, r.w.SM, r.h, r.arn)
	if err != nil {
		t.Fatalf("rotating a role secret: %v", err)
	}
	stages := r.w.Stages(r.arn)
	if !hasStage(stages, token, creds.StageCurrent) || len(stages) != 2 {
		t.Fatalf("after the rotation: versions %v, want %s current and the old one previous", stages, token)
	}
	if got := r.current(); got != r.first {
		t.Errorf("AWSCURRENT %+v, want the same role %+v", got, r.first)
	}
	if prev, _ := creds.ParseS3(r.w.Value(r.arn, creds.StagePrevious)); prev != r.first {
		t.Errorf("AWSPREVIOUS %+v, want the first role", prev)
	}

	next := creds.S3Creds{RoleARN: r.w.Role(r.bucket), ExternalID: "wedsync-2"}
	stage(t, r.w, r.arn, next.Secret())
	if _, err := rotate.Drive(ctx, r.w.SM, r.h, r.arn); err != nil {
		t.Fatalf("rotating to a staged role: %v", err)
	}
	if got := r.current(); got != next {
		t.Errorf("AWSCURRENT %+v, want the staged role %+v", got, next)
	}
}

// TestRotateRoleSecretRefusals: a staged role that cannot use the bucket,
// a function that may not assume roles, and a key pair staged on a role
// secret each fail the rotation before AWSCURRENT moves, saying why.
func TestRotateRoleSecretRefusals(t *testing.T) {
	t.Run("role without access to the bucket", func(t *testing.T) {
		r := newRoleSecret(t)
		stage(t, r.w, r.arn, creds.S3Creds{RoleARN: r.w.Role()}.Secret())
		_, err := rotate.Drive(t.Context(), r.w.SM, r.h, r.arn)
		if err == nil || !strings.Contains(err.Error(), rotate.StepTest) || !strings.Contains(err.Error(), "probe") {
			t.Fatalf("Drive = %v, want testSecret's probe refused", err)
		}
		if r.current() != r.first {
			t.Error("AWSCURRENT moved to a role that cannot use the bucket")
		}
	})
	t.Run("function may not assume roles", func(t *testing.T) {
		r := newRoleSecret(t)
		// The function's own identity: a user allowed the bucket, not sts:AssumeRole.
		_, fn := r.w.User(r.bucket)
		fnCfg := side.Admin().Copy()
		fnCfg.Credentials = credentials.NewStaticCredentialsProvider(fn.AccessKeyID, fn.SecretAccessKey.Reveal(), "")
		rot, err := rotate.NewS3(rotate.S3Config{AWS: fnCfg, Probing: quick, Provider: s3.Config{Name: "s3", Bucket: r.bucket,
			Region: emulator.MotoRegion, Endpoint: side.URL(), UsePathStyle: true}}, iam.NewFromConfig(fnCfg), nil)
		if err != nil {
			t.Fatal(err)
		}
		h, err := rotate.New(r.w.SM, map[string]rotate.Rotator{r.arn: rot}, rotate.HandlerConfig{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = rotate.Drive(t.Context(), r.w.SM, h, r.arn)
		if err == nil || !strings.Contains(err.Error(), "assume role "+r.first.RoleARN) {
			t.Fatalf("Drive = %v, want the role named as not assumable", err)
		}
		if r.current() != r.first {
			t.Error("AWSCURRENT moved although the role could not be assumed")
		}
	})
	t.Run("key pair staged on a role secret", func(t *testing.T) {
		r := newRoleSecret(t)
		_, keys := r.w.User(r.bucket)
		// Staged under another version than the rotation's token, as when
		// Secrets Manager starts the rotation with a token of its own.
		r.w.Stage(r.arn, keys.Secret(), creds.StagePending)
		h := r.h
		err := h.Handle(t.Context(), rotate.Event{Step: rotate.StepCreate, SecretID: r.arn, ClientRequestToken: "token-" + credtest.RandomHex(8)})
		if err == nil || !strings.Contains(err.Error(), "cannot switch") {
			t.Fatalf("createSecret = %v, want the switch refused", err)
		}
		if r.current() != r.first {
			t.Error("AWSCURRENT moved")
		}
	})
}

// TestWireNeedsTheUserOfAKeyPair: without S3_REPLICATION_USER, Wire reads
// the S3 secret and refuses a key pair (which cannot rotate without its
// user), naming the variable and never the key.
func TestWireNeedsTheUserOfAKeyPair(t *testing.T) {
	w := newWorld(t)
	bucket := w.Bucket()
	_, keys := w.User(bucket)
	arn := w.Secret(keys.Secret())
	cfg, err := rotate.LoadEnv(config.Map(map[string]string{"AWS_REGION": emulator.MotoRegion,
		"S3_REPLICA_BUCKET": bucket, "S3_REPLICA_ENDPOINT": side.URL(), "S3_REPLICA_SECRET_ARN": arn}))
	if err != nil {
		t.Fatalf("LoadEnv needs no user before the secret is read: %v", err)
	}
	_, err = rotate.Wire(t.Context(), cfg, side.Admin(), nil)
	if err == nil || !strings.Contains(err.Error(), "S3_REPLICATION_USER") {
		t.Fatalf("Wire = %v, want S3_REPLICATION_USER named", err)
	}
	if strings.Contains(err.Error(), keys.SecretAccessKey.Reveal()) {
		t.Fatal("the error quotes the secret key")
	}
}
