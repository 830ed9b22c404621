package providers

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/wedsync/backup-replication/infra/emulator"
	"github.com/wedsync/backup-replication/infra/supaemu"
	"github.com/wedsync/backup-replication/shared/config"
	"github.com/wedsync/backup-replication/shared/credentials"
	"github.com/wedsync/backup-replication/shared/credentials/credtest"
	"github.com/wedsync/backup-replication/shared/storage"
)

// world is the local stack's providers: moto (S3, Secrets Manager),
// fake-gcs-server, and the Supabase emulator behind a gateway that knows
// only the keys in keys.
type world struct {
	awsCfg aws.Config
	sm     *secretsmanager.Client
	moto   *emulator.Moto
	gcs    *emulator.GCS
	sb     *emulator.Supabase
	keys   *credtest.KeySet
	gate   *credtest.Gate
}

func newWorld(t *testing.T) *world {
	t.Helper()
	ctx := t.Context()
	w := &world{}
	var err error
	w.moto, err = emulator.StartMoto(ctx)
	emulator.Require(t, err)
	t.Cleanup(func() { w.moto.Close() })
	w.gcs, err = emulator.StartGCS()
	emulator.Require(t, err)
	t.Cleanup(func() { w.gcs.Close() })
	w.sb, err = emulator.StartSupabase(t.TempDir())
	emulator.Require(t, err)
	t.Cleanup(func() { w.sb.Close() })
	w.keys = credtest.NewKeySet(w.sb.ServiceKey)
	if w.gate, err = credtest.SupabaseGate(w.sb.URL, w.keys); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.gate.Close)

	w.awsCfg, _ = w.moto.AWSConfig(ctx)
	w.sm = secretsmanager.NewFromConfig(w.awsCfg)
	s3c := awss3.NewFromConfig(w.awsCfg, func(o *awss3.Options) { o.UsePathStyle = true })
	for _, b := range []string{"replica", "standby"} {
		if _, err := s3c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(b)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.gcs.CreateBucket("offsite"); err != nil {
		t.Fatal(err)
	}
	createSupabaseBucket(t, w.sb, "primary")
	return w
}

// secret creates a secret holding v (JSON-encoded unless a string) and
// returns its ARN.
func (w *world) secret(t *testing.T, v any) string {
	t.Helper()
	s, ok := v.(string)
	if !ok {
		b, _ := json.Marshal(v)
		s = string(b)
	}
	out, err := w.sm.CreateSecret(t.Context(), &secretsmanager.CreateSecretInput{
		Name:         aws.String("providers-" + strings.ReplaceAll(t.Name(), "/", "-") + "-" + time.Now().Format("150405.000000000")),
		SecretString: aws.String(s)})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.ARN)
}

// localEnv is the environment infra/local gives the functions: every
// *_SECRET_ARN pointing at a secret with the dev values (the GCS one holds
// {"credentialsJson": ""}), SUPABASE_SERVICE_KEY set alongside, and
// GCS_ENDPOINT in its .../storage/v1/ form.
func (w *world) localEnv(t *testing.T) map[string]string {
	return map[string]string{
		"AWS_REGION":            emulator.MotoRegion,
		"AWS_ENDPOINT_URL":      w.moto.URL,
		"CREDENTIALS_TTL":       "1m",
		"SUPABASE_BUCKET":       "primary",
		"SUPABASE_URL":          w.gate.URL,
		"SUPABASE_SERVICE_KEY":  w.sb.ServiceKey,
		"SUPABASE_SECRET_ARN":   w.secret(t, map[string]string{"url": w.gate.URL, "serviceKey": w.sb.ServiceKey}),
		"S3_REPLICA_BUCKET":     "replica",
		"S3_REPLICA_SECRET_ARN": w.secret(t, map[string]string{"accessKeyId": "test", "secretAccessKey": "test"}),
		"S3_STANDBY_BUCKET":     "standby", // no keys: the shared AWS configuration
		"GCS_BUCKET":            "offsite",
		"GCS_ENDPOINT":          w.gcs.URL + "/storage/v1/",
		"GCS_SECRET_ARN":        w.secret(t, map[string]string{"credentialsJson": ""}),
	}
}

func build(t *testing.T, w *world, env map[string]string) (map[string]storage.Provider, error) {
	t.Helper()
	c, err := config.LoadCommon(config.Map(env))
	if err != nil {
		t.Fatal(err)
	}
	return Build(t.Context(), c.Providers, w.awsCfg, nil)
}

// probeAll runs the canary (write, read, delete) on every provider.
func probeAll(t *testing.T, ps map[string]storage.Provider) {
	t.Helper()
	var names []string
	for name, p := range ps {
		names = append(names, name)
		if p.Name() != name {
			t.Errorf("provider %s calls itself %s", name, p.Name())
		}
		if res, err := storage.Probe(t.Context(), p); err != nil || !res.OK {
			t.Errorf("%s probe: %+v %v", name, res, err)
		}
	}
	slices.Sort(names)
	if got := strings.Join(names, ","); got != "gcs,s3,s3-standby,supabase" {
		t.Fatalf("built %s", got)
	}
}

// The local stack's environment builds every provider, each passes a
// canary, and the Supabase provider follows its secret's rotation: after a
// new key is promoted and the old one (also set as SUPABASE_SERVICE_KEY)
// is revoked, it keeps working without a rebuild.
func TestBuildLocalStackEnvironment(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	env := w.localEnv(t)
	ps, err := build(t, w, env)
	if err != nil {
		t.Fatal(err)
	}
	probeAll(t, ps)
	if _, ok := storage.As[storage.Copier](ps["s3"]); !ok {
		t.Error("s3 provider lost its Copier")
	}
	if _, ok := storage.As[storage.Resumer](ps["gcs"]); !ok {
		t.Error("gcs provider lost its Resumer")
	}

	newKey := supaemu.SignKey(w.sb.JWTSecret, supaemu.ServiceRole, time.Hour)
	w.keys.Add(newKey)
	arn := env["SUPABASE_SECRET_ARN"]
	put, err := w.sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(arn),
		SecretString:  aws.String(`{"url":"` + w.gate.URL + `","serviceKey":"` + newKey + `"}`),
		VersionStages: []string{credentials.StagePending}})
	if err != nil {
		t.Fatal(err)
	}
	d, err := w.sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(arn)})
	if err != nil {
		t.Fatal(err)
	}
	for id, stages := range d.VersionIdsToStages {
		if slices.Contains(stages, credentials.StageCurrent) {
			if _, err := w.sm.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{SecretId: aws.String(arn),
				VersionStage: aws.String(credentials.StageCurrent), MoveToVersionId: put.VersionId, RemoveFromVersionId: aws.String(id)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	w.keys.Remove(w.sb.ServiceKey)
	if res, err := storage.Probe(ctx, ps["supabase"]); err != nil || !res.OK {
		t.Fatalf("supabase after its key rotated: %+v %v", res, err)
	}

	// Only the selected provider is built (and only its secret read).
	c, _ := config.LoadCommon(config.Map(env))
	if one, err := Build(ctx, c.Providers.Select("gcs"), w.awsCfg, nil); err != nil || len(one) != 1 || one["gcs"] == nil {
		t.Fatalf("select: %v %v", one, err)
	}
}

// Without any secret, the direct values build every provider (local runs
// without Secrets Manager).
func TestBuildFromDirectValues(t *testing.T) {
	w := newWorld(t)
	env := w.localEnv(t)
	for _, k := range []string{"SUPABASE_SECRET_ARN", "S3_REPLICA_SECRET_ARN", "GCS_SECRET_ARN"} {
		delete(env, k)
	}
	env["S3_REPLICA_ACCESS_KEY_ID"], env["S3_REPLICA_SECRET_ACCESS_KEY"] = "test", "test"
	env["GCS_ENDPOINT"] = w.gcs.URL + "/storage/v1" // as config leaves it, without its slash
	ps, err := build(t, w, env)
	if err != nil {
		t.Fatal(err)
	}
	probeAll(t, ps)
}

// Secrets that cannot work are errors at start naming the provider: a
// secret that does not exist, and a GCS secret without credentials when no
// emulator endpoint is configured (no silent fallback to ambient
// credentials).
func TestBuildRefusesUnusableSecrets(t *testing.T) {
	w := newWorld(t)
	cases := []struct {
		name, provider string
		env            map[string]string
	}{
		{"missing secret", "supabase", map[string]string{
			"SUPABASE_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:missing"}},
		{"gcs secret without credentials off an emulator", "gcs", map[string]string{
			"GCS_ENDPOINT": "", "STORAGE_EMULATOR_HOST": ""}},
		{"malformed s3 secret", "s3", map[string]string{
			"S3_REPLICA_SECRET_ARN": w.secret(t, `{"accessKeyId":"only-half"}`)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := w.localEnv(t)
			for k, v := range tc.env {
				if v == "" {
					delete(env, k)
				} else {
					env[k] = v
				}
			}
			_, err := build(t, w, env)
			if err == nil || !strings.Contains(err.Error(), "provider "+tc.provider) {
				t.Fatalf("want an error naming provider %s, got %v", tc.provider, err)
			}
			if strings.Contains(err.Error(), "only-half") {
				t.Errorf("error quotes the secret: %v", err)
			}
		})
	}
}

func createSupabaseBucket(t *testing.T, sb *emulator.Supabase, name string) {
	t.Helper()
	body := strings.NewReader(`{"id":"` + name + `","name":"` + name + `","public":false}`)
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, sb.URL+"/storage/v1/bucket", body)
	req.Header.Set("Authorization", "Bearer "+sb.ServiceKey)
	req.Header.Set("apikey", sb.ServiceKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("create supabase bucket: HTTP %d", resp.StatusCode)
	}
}
