package rotate_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/google/uuid"

	"github.com/wedsync/backup-replication/infra/emulator"
	"github.com/wedsync/backup-replication/shared/config"
	"github.com/wedsync/backup-replication/shared/credentials"
	"github.com/wedsync/backup-replication/shared/rotate"
	"github.com/wedsync/backup-replication/shared/secret"
)

// TestValidateEventNamesEachProblem: a malformed event is refused before
// Secrets Manager is asked anything, and the error names every problem.
func TestValidateEventNamesEachProblem(t *testing.T) {
	cases := []struct {
		name string
		ev   rotate.Event
		want []string
	}{
		{"unknown step", rotate.Event{Step: "dropSecret", SecretID: "s", ClientRequestToken: "t"}, []string{"unknown step"}},
		{"no secret id", rotate.Event{Step: rotate.StepCreate, ClientRequestToken: "t"}, []string{"SecretId is empty"}},
		{"no token", rotate.Event{Step: rotate.StepFinish, SecretID: "s"}, []string{"ClientRequestToken is empty"}},
		{"everything wrong", rotate.Event{Step: strings.Repeat("x", 500)},
			[]string{"unknown step", "SecretId is empty", "ClientRequestToken is empty"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := rotate.ValidateEvent(c.ev)
			for _, want := range c.want {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("ValidateEvent = %v, want it to say %q", err, want)
				}
			}
			if err != nil && strings.Contains(err.Error(), strings.Repeat("x", 100)) {
				t.Error("the error quotes the whole unknown step")
			}
		})
	}
	for _, ev := range []rotate.Event{{Step: rotate.StepCreate, SecretID: "s", ClientRequestToken: "t"}} {
		if err := rotate.ValidateEvent(ev); err != nil {
			t.Errorf("a well-formed event: %v", err)
		}
	}
}

// TestNewRequiresClientAndRotators: a handler without Secrets Manager or
// without any rotator is refused at start, not at the first rotation.
func TestNewRequiresClientAndRotators(t *testing.T) {
	if _, err := rotate.New(nil, map[string]rotate.Rotator{"x": rotate.NewSupabase(rotate.SupabaseConfig{}, nil)}, rotate.HandlerConfig{}, nil); err == nil {
		t.Error("New without a Secrets Manager client succeeded")
	}
	w := newWorld(t)
	if _, err := rotate.New(w.SM, nil, rotate.HandlerConfig{}, nil); err == nil {
		t.Error("New without rotators succeeded")
	}
	if _, err := rotate.NewS3(rotate.S3Config{}, nil, nil); err == nil || !strings.Contains(err.Error(), "IAM client") {
		t.Errorf("NewS3 without an IAM client: %v", err)
	}
}

// TestStepsRefuseAWrongToken: setSecret, testSecret and finishSecret with
// a token that createSecret did not make pending (unknown, or the previous
// version's) fail, and neither the secret's stages nor the user's keys
// change.
func TestStepsRefuseAWrongToken(t *testing.T) {
	r := newS3Rotation(t, rotate.HandlerConfig{})
	ctx := t.Context()
	if _, err := rotate.Drive(ctx, r.w.SM, r.h, r.arn); err != nil {
		t.Fatal(err)
	}
	var previous string
	for id, stages := range r.w.Stages(r.arn) {
		if slices.Contains(stages, credentials.StagePrevious) {
			previous = id
		}
	}
	if previous == "" {
		t.Fatal("no AWSPREVIOUS version after a rotation")
	}
	stagesBefore, keysBefore, current := r.w.Stages(r.arn), r.w.Keys(r.user), r.w.Value(r.arn, credentials.StageCurrent)
	tokens := []struct {
		name, token, want string
	}{
		{"unknown token", uuid.NewString(), "run createSecret first"},
		{"previous version", previous, "is not AWSPENDING"},
	}
	for _, tok := range tokens {
		for _, step := range []string{rotate.StepSet, rotate.StepTest, rotate.StepFinish} {
			t.Run(tok.name+"/"+step, func(t *testing.T) {
				err := r.h.Handle(ctx, rotate.Event{Step: step, SecretID: r.arn, ClientRequestToken: tok.token})
				if err == nil || !strings.Contains(err.Error(), tok.want) || !strings.Contains(err.Error(), step) {
					t.Fatalf("%s with %s: %v, want an error naming the step and saying %q", step, tok.name, err, tok.want)
				}
			})
		}
	}
	if got := r.w.Stages(r.arn); len(got) != len(stagesBefore) || !hasStage(got, previous, credentials.StagePrevious) {
		t.Errorf("stages changed: %v -> %v", stagesBefore, got)
	}
	if got := r.w.Keys(r.user); !slices.Equal(got, keysBefore) {
		t.Errorf("keys changed: %v -> %v", keysBefore, got)
	}
	if r.w.Value(r.arn, credentials.StageCurrent) != current {
		t.Error("AWSCURRENT changed")
	}
}

// TestCreateWithTheCurrentTokenDoesNothing: createSecret re-run with the
// token of the version already current makes no key and no version.
func TestCreateWithTheCurrentTokenDoesNothing(t *testing.T) {
	r := newS3Rotation(t, rotate.HandlerConfig{})
	ctx := t.Context()
	token, err := rotate.Drive(ctx, r.w.SM, r.h, r.arn)
	if err != nil {
		t.Fatal(err)
	}
	stages, keys := r.w.Stages(r.arn), r.w.Keys(r.user)
	for _, step := range rotate.Steps {
		if err := r.h.Handle(ctx, rotate.Event{Step: step, SecretID: r.arn, ClientRequestToken: token}); err != nil {
			t.Fatalf("%s with the current token: %v", step, err)
		}
	}
	if got := r.w.Keys(r.user); !slices.Equal(got, keys) {
		t.Errorf("keys changed: %v -> %v", keys, got)
	}
	if got := r.w.Stages(r.arn); len(got) != len(stages) || !hasStage(got, token, credentials.StageCurrent) {
		t.Errorf("stages changed: %v -> %v", stages, got)
	}
}

// TestRotatorFoundBySecretName: a rotator registered under the secret's
// name (not its ARN) rotates the secret Secrets Manager names by ARN.
func TestRotatorFoundBySecretName(t *testing.T) {
	r := newS3Rotation(t, rotate.HandlerConfig{})
	ctx := t.Context()
	d, err := r.w.SM.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(r.arn)})
	if err != nil {
		t.Fatal(err)
	}
	h, err := rotate.New(r.w.SM, map[string]rotate.Rotator{aws.ToString(d.Name): mustS3(t, r.w, r)}, rotate.HandlerConfig{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rotate.Drive(ctx, r.w.SM, h, r.arn); err != nil {
		t.Fatal(err)
	}
	if r.w.Value(r.arn, credentials.StageCurrent) == r.key1.Secret() {
		t.Error("AWSCURRENT is still the first key")
	}
}

// TestSupabaseStagedValueChecks: createSecret adopts an operator's staged
// key only when it is a new key of the same project; the URL defaults to
// the current one, and a URL spelled with /storage/v1 is the same project.
func TestSupabaseStagedValueChecks(t *testing.T) {
	const project = "https://abc.supabase.co"
	current := credentials.SupabaseCreds{URL: project, ServiceKey: "key-1"}.Secret()
	rot := rotate.NewSupabase(rotate.SupabaseConfig{}, nil)
	cases := []struct {
		name    string
		current secret.Secret
		staged  secret.Secret
		wantErr string // "" = accepted
		wantURL string
	}{
		{"no url: the current project", current, `{"serviceKey":"key-2"}`, "", project},
		{"same project spelled with the storage path", current, credentials.SupabaseCreds{URL: "https://ABC.supabase.co/storage/v1/", ServiceKey: "key-2"}.Secret(), "", "https://ABC.supabase.co/storage/v1/"},
		{"the current key again", current, `{"serviceKey":"key-1"}`, "is the current one", ""},
		{"another project", current, credentials.SupabaseCreds{URL: "https://other.supabase.co", ServiceKey: "key-2"}.Secret(), "does not change projects", ""},
		{"staged value not JSON", current, "key-2", "staged AWSPENDING", ""},
		{"staged value without a key", current, `{"url":"` + project + `"}`, "serviceKey is empty", ""},
		{"current value unreadable", "garbage", `{"serviceKey":"key-2"}`, "not a JSON object", ""},
		{"nothing staged", current, "", rotate.ErrNoStagedKey.Error(), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := rot.Create(t.Context(), c.current, c.staged)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("Create = %v, want an error saying %q", err, c.wantErr)
				}
				if strings.Contains(err.Error(), "key-1") || strings.Contains(err.Error(), "key-2") {
					t.Fatalf("the error quotes a key: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			p, err := credentials.ParseSupabase(got)
			if err != nil || p.URL != c.wantURL || p.ServiceKey.Reveal() != "key-2" {
				t.Fatalf("Create = url %q (%v), want the staged key-2 at %q", p.URL, err, c.wantURL)
			}
		})
	}
}

// TestSupabaseKeyOfAnotherProjectIsNotPromoted: through the handler, a key
// staged for another project fails the rotation (Drive resumes the staged
// version, so setSecret is the step that refuses it); AWSCURRENT stays.
func TestSupabaseKeyOfAnotherProjectIsNotPromoted(t *testing.T) {
	w := newWorld(t)
	cur := credentials.SupabaseCreds{URL: "https://abc.supabase.co", ServiceKey: "key-1"}.Secret()
	arn := w.Secret(cur)
	h, _ := rotate.New(w.SM, map[string]rotate.Rotator{arn: rotate.NewSupabase(rotate.SupabaseConfig{Probing: quick}, nil)},
		rotate.HandlerConfig{}, nil)
	stage(t, w, arn, credentials.SupabaseCreds{URL: "https://other.supabase.co", ServiceKey: "key-2"}.Secret())
	_, err := rotate.Drive(t.Context(), w.SM, h, arn)
	if err == nil || !strings.Contains(err.Error(), "does not change projects") {
		t.Fatalf("Drive: %v, want another project's key refused", err)
	}
	if w.Value(arn, credentials.StageCurrent) != cur {
		t.Error("AWSCURRENT changed")
	}
}

// TestGCSRefusals: the GCS rotator refuses credentials it cannot rotate
// (not a service-account key) and a pending key of another account, and
// changes no key when it does.
func TestGCSRefusals(t *testing.T) {
	g := newGoogleSide(t)
	ctx := t.Context()
	other, err := g.g.ServiceAccount("wedsync-test", "someone-else@wedsync-test.iam.gserviceaccount.com")
	if err != nil {
		t.Fatal(err)
	}
	rot := g.rotator()
	before := g.g.Keys(g.sa)

	if err := rot.Set(ctx, secret.Secret(g.key1), secret.Secret(other)); err == nil || !strings.Contains(err.Error(), "someone-else@") {
		t.Errorf("Set with another account's key: %v, want refused naming that account", err)
	}
	if err := rot.Set(ctx, secret.Secret(g.key1), secret.Secret(g.key1)); err != nil {
		t.Errorf("Set with a key of the same account: %v", err)
	}
	userCreds := secret.Secret(`{"type":"authorized_user","client_id":"c","client_secret":"s","refresh_token":"r"}`)
	if _, err := rot.Create(ctx, userCreds, ""); err == nil || !strings.Contains(err.Error(), "only service-account keys rotate") {
		t.Errorf("Create with user credentials: %v, want refused", err)
	}
	if err := rot.Retire(ctx, userCreds, ""); err == nil {
		t.Error("Retire with user credentials succeeded")
	}
	if _, err := rot.Create(ctx, "not json", ""); err == nil {
		t.Error("Create with an unreadable secret succeeded")
	}
	if got := g.g.Keys(g.sa); !slices.Equal(got, before) {
		t.Errorf("keys changed: %v -> %v", before, got)
	}
	if rot.Provider() != "gcs" || rotate.NewGCS(rotate.GCSConfig{}, nil).Provider() != "gcs" {
		t.Errorf("Provider() = %q, want gcs", rot.Provider())
	}
}

// TestGCSRetireKeepsPreviousOnlyOfTheSameAccount: Retire keeps the current
// and previous keys, but a "previous" value of another account protects
// nothing of this one.
func TestGCSRetireKeepsPreviousOnlyOfTheSameAccount(t *testing.T) {
	g := newGoogleSide(t)
	ctx := t.Context()
	key2, err := g.g.ServiceAccount("wedsync-test", g.sa)
	if err != nil {
		t.Fatal(err)
	}
	key3, err := g.g.ServiceAccount("wedsync-test", g.sa)
	if err != nil {
		t.Fatal(err)
	}
	other, err := g.g.ServiceAccount("wedsync-test", "someone-else@wedsync-test.iam.gserviceaccount.com")
	if err != nil {
		t.Fatal(err)
	}
	rot := g.rotator()
	c1, _ := credentials.ParseGCS(secret.Secret(g.key1))
	c2, _ := credentials.ParseGCS(secret.Secret(key2))
	c3, _ := credentials.ParseGCS(secret.Secret(key3))
	if err := rot.Retire(ctx, secret.Secret(key3), secret.Secret(key2)); err != nil {
		t.Fatal(err)
	}
	if got, want := g.g.Keys(g.sa), sorted(c2.PrivateKeyID, c3.PrivateKeyID); !slices.Equal(got, want) {
		t.Fatalf("after Retire(current=3, previous=2): keys %v, want %v (key 1 %s deleted)", got, want, c1.PrivateKeyID)
	}
	if err := rot.Retire(ctx, secret.Secret(key3), secret.Secret(other)); err != nil {
		t.Fatal(err)
	}
	if got := g.g.Keys(g.sa); !slices.Equal(got, []string{c3.PrivateKeyID}) {
		t.Fatalf("after Retire(current=3, previous=another account's): keys %v, want only %s", got, c3.PrivateKeyID)
	}
	if err := rot.Retire(ctx, secret.Secret(key3), ""); err != nil {
		t.Fatalf("Retire run again: %v", err)
	}
}

// TestIAMKeysAtTheNetworkEdge: the IAM client treats a key already gone as
// deleted, and reports Google's refusal (status and code) without quoting
// key material; a credentials file it cannot use is refused up front
// without being quoted.
func TestIAMKeysAtTheNetworkEdge(t *testing.T) {
	g := newGoogleSide(t)
	ctx := t.Context()
	k, err := rotate.NewIAMKeys(ctx, g.g.IAMEndpoint(), secret.Secret(g.key1))
	if err != nil {
		t.Fatal(err)
	}
	file, err := k.CreateKey(ctx, g.sa)
	if err != nil {
		t.Fatal(err)
	}
	n, err := credentials.ParseGCS(file)
	if err != nil || n.ClientEmail != g.sa {
		t.Fatalf("the created key file: %+v, %v", n, err)
	}
	for range 2 {
		if err := k.DeleteKey(ctx, g.sa, n.PrivateKeyID); err != nil {
			t.Fatalf("DeleteKey (again) of %s: %v, want nil: a key already gone is deleted", n.PrivateKeyID, err)
		}
	}
	if ids, err := k.ListKeys(ctx, g.sa); err != nil || slices.Contains(ids, n.PrivateKeyID) {
		t.Fatalf("ListKeys = %v, %v; want the deleted key absent", ids, err)
	}
	otherSA := "someone-else@wedsync-test.iam.gserviceaccount.com"
	if _, err := g.g.ServiceAccount("wedsync-test", otherSA); err != nil {
		t.Fatal(err)
	}
	for name, call := range map[string]func() error{
		"list":   func() error { _, err := k.ListKeys(ctx, otherSA); return err },
		"create": func() error { _, err := k.CreateKey(ctx, otherSA); return err },
		"delete": func() error { return k.DeleteKey(ctx, otherSA, "0123") },
	} {
		err := call()
		if err == nil || !strings.Contains(err.Error(), "HTTP 403 PERMISSION_DENIED") || strings.Contains(err.Error(), "PRIVATE KEY") {
			t.Errorf("%s on another account: %v, want HTTP 403 PERMISSION_DENIED", name, err)
		}
	}
	if len(g.g.Keys(otherSA)) != 1 {
		t.Errorf("the other account's keys changed: %v", g.g.Keys(otherSA))
	}
	bad := `{"type":"service_account","private_key":"-----BEGIN PRIVATE KEY-----\nnot-a-key\n-----END PRIVATE KEY-----\n"` // truncated JSON
	if _, err := rotate.NewIAMKeys(ctx, "", secret.Secret(bad)); err == nil || strings.Contains(err.Error(), "not-a-key") {
		t.Errorf("NewIAMKeys with a broken file: %v, want an error that does not quote it", err)
	}
}

// TestGCSCreateWithADeletedCurrentKey: when an administrator already
// deleted the secret's current key, createSecret fails (IAM refuses the
// key) and no new key appears.
func TestGCSCreateWithADeletedCurrentKey(t *testing.T) {
	w := newWorld(t)
	g := newGoogleSide(t)
	arn := w.Secret(secret.Secret(g.key1))
	c1, _ := credentials.ParseGCS(secret.Secret(g.key1))
	g.g.DeleteKey(g.sa, c1.PrivateKeyID)
	h, _ := rotate.New(w.SM, map[string]rotate.Rotator{arn: g.rotator()}, rotate.HandlerConfig{}, nil)
	if _, err := rotate.Drive(t.Context(), w.SM, h, arn); err == nil || !strings.Contains(err.Error(), rotate.StepCreate) {
		t.Fatalf("Drive with a deleted current key: %v, want createSecret to fail", err)
	}
	if got := g.g.Keys(g.sa); len(got) != 0 {
		t.Errorf("keys %v appeared", got)
	}
	if w.Value(arn, credentials.StageCurrent) != secret.Secret(g.key1) || w.Value(arn, credentials.StagePending) != "" {
		t.Error("the secret's versions changed")
	}
}

// TestWireRotatesEveryConfiguredSecret: the handler functions/rotate builds
// from its environment rotates the S3 access key, the GCS service-account
// key and an operator-staged Supabase key, each with its own rotator.
func TestWireRotatesEveryConfiguredSecret(t *testing.T) {
	r := newS3Rotation(t, rotate.HandlerConfig{})
	g := newGoogleSide(t)
	s := newSupabaseSide(t)
	ctx := t.Context()
	gcsARN := r.w.Secret(secret.Secret(g.key1))
	supaARN := r.w.Secret(s.creds(s.emu.ServiceKey).Secret())
	cfg, err := rotate.LoadEnv(config.Map(map[string]string{
		"AWS_REGION":        emulator.MotoRegion,
		"S3_REPLICA_BUCKET": r.bucket, "S3_REPLICA_ENDPOINT": side.URL(), "S3_REPLICA_SECRET_ARN": r.arn,
		"S3_REPLICATION_USER": r.user,
		"GCS_BUCKET":          g.pcfg.Bucket, "GCS_ENDPOINT": g.g.URL, "GCS_SECRET_ARN": gcsARN, "GCS_IAM_ENDPOINT": g.g.IAMEndpoint(),
		"SUPABASE_URL": s.gate.URL, "SUPABASE_BUCKET": s.pcfg.Bucket, "SUPABASE_SECRET_ARN": supaARN,
		"ROTATE_TEST_ATTEMPTS": "2", "ROTATE_TEST_WAIT": "1ms",
	}))
	if err != nil {
		t.Fatal(err)
	}
	h, err := rotate.Wire(ctx, cfg, side.Admin(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rotate.Drive(ctx, r.w.SM, h, r.arn); err != nil {
		t.Fatalf("s3: %v", err)
	}
	if cur, _ := credentials.ParseS3(r.w.Value(r.arn, credentials.StageCurrent)); cur.AccessKeyID == r.key1.AccessKeyID || r.works(cur) != nil {
		t.Errorf("s3: AWSCURRENT %s is not a new working key", cur.AccessKeyID)
	}
	if _, err := rotate.Drive(ctx, r.w.SM, h, gcsARN); err != nil {
		t.Fatalf("gcs: %v", err)
	}
	if cur, _ := credentials.ParseGCS(r.w.Value(gcsARN, credentials.StageCurrent)); len(g.g.Keys(g.sa)) != 2 || !slices.Contains(g.g.Keys(g.sa), cur.PrivateKeyID) {
		t.Errorf("gcs: AWSCURRENT key %s, account keys %v", cur.PrivateKeyID, g.g.Keys(g.sa))
	}
	key := s.newKey(time.Hour)
	stage(t, r.w, supaARN, credentials.SupabaseCreds{ServiceKey: secret.Secret(key)}.Secret())
	if _, err := rotate.Drive(ctx, r.w.SM, h, supaARN); err != nil {
		t.Fatalf("supabase: %v", err)
	}
	if cur, _ := credentials.ParseSupabase(r.w.Value(supaARN, credentials.StageCurrent)); cur.ServiceKey.Reveal() != key {
		t.Error("supabase: AWSCURRENT is not the staged key")
	}
}

// TestWireRefusesAnInvalidConfig: Wire checks the configuration again, so
// a hand-built Config without the bucket testSecret probes, or with nothing
// to rotate, is refused.
func TestWireRefusesAnInvalidConfig(t *testing.T) {
	var cfg rotate.Config
	cfg.Providers.S3.SecretARN = "arn:s3"
	_, err := rotate.Wire(context.Background(), cfg, aws.Config{}, nil)
	if err == nil || !strings.Contains(err.Error(), "S3_REPLICA_BUCKET") {
		t.Fatalf("Wire = %v, want S3_REPLICA_BUCKET named", err)
	}
	if _, err := rotate.Wire(context.Background(), rotate.Config{}, aws.Config{}, nil); err == nil || !strings.Contains(err.Error(), "nothing to rotate") {
		t.Fatalf("Wire with nothing configured = %v", err)
	}
}
