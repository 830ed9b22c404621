package providers

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/wedsync/backup-replication/infra/emulator"
	"github.com/wedsync/backup-replication/shared/config"
	"github.com/wedsync/backup-replication/shared/storage"
)

// Every provider built from the environment the local stack gives, with
// the Supabase and S3 credentials coming from Secrets Manager, passes a
// canary round trip.
func TestBuildFromEnvironmentAndSecrets(t *testing.T) {
	ctx := t.Context()
	moto, err := emulator.StartMoto(ctx)
	emulator.Require(t, err)
	defer moto.Close()
	gcs, err := emulator.StartGCS()
	emulator.Require(t, err)
	defer gcs.Close()
	sb, err := emulator.StartSupabase("")
	emulator.Require(t, err)
	defer sb.Close()

	awsCfg, _ := moto.AWSConfig(ctx)
	s3c := awss3.NewFromConfig(awsCfg, func(o *awss3.Options) { o.UsePathStyle = true })
	for _, b := range []string{"replica", "standby"} {
		if _, err := s3c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(b)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := gcs.CreateBucket("offsite"); err != nil {
		t.Fatal(err)
	}
	createSupabaseBucket(t, sb, "primary")
	sm := secretsmanager.NewFromConfig(awsCfg)
	secretARN := func(name string, v any) string {
		b, _ := json.Marshal(v)
		out, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String(string(b))})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.ARN)
	}
	env := map[string]string{
		"AWS_REGION":            emulator.MotoRegion,
		"AWS_ENDPOINT_URL":      moto.URL,
		"SUPABASE_BUCKET":       "primary",
		"SUPABASE_SECRET_ARN":   secretARN("supabase", map[string]string{"url": sb.URL, "serviceKey": sb.ServiceKey}),
		"S3_REPLICA_BUCKET":     "replica",
		"S3_REPLICA_SECRET_ARN": secretARN("s3", map[string]string{"accessKeyId": "test", "secretAccessKey": "test"}),
		"S3_STANDBY_BUCKET":     "standby", // no keys: the shared AWS configuration
		"GCS_BUCKET":            "offsite",
		"STORAGE_EMULATOR_HOST": strings.TrimPrefix(gcs.URL, "http://"),
	}
	c, err := config.LoadCommon(config.Map(env))
	if err != nil {
		t.Fatal(err)
	}
	ps, err := Build(ctx, c.Providers, awsCfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for name, p := range ps {
		names = append(names, name)
		if p.Name() != name {
			t.Errorf("provider %s calls itself %s", name, p.Name())
		}
		if res, err := storage.Probe(ctx, p); err != nil || !res.OK {
			t.Errorf("%s probe: %+v %v", name, res, err)
		}
	}
	slices.Sort(names)
	if got := strings.Join(names, ","); got != "gcs,s3,s3-standby,supabase" {
		t.Fatalf("built %s", got)
	}
	if _, ok := storage.As[storage.Copier](ps["s3"]); !ok {
		t.Error("s3 provider lost its Copier")
	}

	// Only the selected provider is built (and only its secret read).
	one, err := Build(ctx, c.Providers.Select("gcs"), awsCfg, nil)
	if err != nil || len(one) != 1 || one["gcs"] == nil {
		t.Fatalf("select: %v %v", one, err)
	}

	// A secret that does not exist: the error names the provider.
	bad := c.Providers.Select("supabase")
	bad.Supabase.SecretARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:missing"
	if _, err := Build(ctx, bad, awsCfg, nil); err == nil || !strings.Contains(err.Error(), "provider supabase") {
		t.Fatalf("missing secret: %v", err)
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
