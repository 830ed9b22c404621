package tests

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/golang-jwt/jwt/v5"

	"github.com/wedsync/backup-replication/infra/emulator"
	"github.com/wedsync/backup-replication/infra/supaemu"
	"github.com/wedsync/backup-replication/shared/api"
	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/credentials"
	"github.com/wedsync/backup-replication/shared/credentials/credtest"
	"github.com/wedsync/backup-replication/shared/keys"
	"github.com/wedsync/backup-replication/shared/policy"
	"github.com/wedsync/backup-replication/shared/replicate"
	"github.com/wedsync/backup-replication/shared/rotate"
	"github.com/wedsync/backup-replication/shared/sealer"
	"github.com/wedsync/backup-replication/shared/secret"
	"github.com/wedsync/backup-replication/shared/storage"
	"github.com/wedsync/backup-replication/shared/storage/decorate"
	"github.com/wedsync/backup-replication/shared/storage/gcs"
	"github.com/wedsync/backup-replication/shared/storage/s3"
	"github.com/wedsync/backup-replication/shared/storage/supabase"
	"github.com/wedsync/backup-replication/shared/validate"
)

// secForbidden are spellings that say a credential or a signed URL was
// logged, whatever its value.
var secForbidden = []string{"X-Amz-Signature", "X-Amz-Credential", "token=", "Bearer ", "PRIVATE KEY", "ya29."}

// TestNoSecretInLogs runs representative operations with every log line
// captured by one JSON handler, then scans the capture for each secret
// value the run handled and for the spellings of credentials and signed
// URLs. The run: the API (create a backup and its presigned upload, read
// it, a download URL with its released data key, the providers' canaries,
// refused tokens), the seal step (KMS data key, whose bytes are on the
// list), the replicate handlers of the three providers through the
// credentials layer,
// a rotation of all three secrets with the old credentials revoked at once
// (so providers are refused and reload), the canary check, and a guard
// whose credentials are refused.
func TestNoSecretInLogs(t *testing.T) {
	t.Setenv(emulator.MotoURLEnv, "") // a moto of its own: IAM enforcement is server-wide
	ctx := t.Context()
	moto, err := emulator.StartMoto(ctx)
	emulator.Require(t, err)
	t.Cleanup(func() { moto.Close() })
	base, _ := moto.AWSConfig(ctx)
	admin, err := credtest.EnforceIAM(ctx, moto.URL, base)
	if err != nil {
		t.Fatal(err)
	}
	logs := &secLog{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var never secValues
	if k, err := admin.Credentials.Retrieve(ctx); err == nil {
		never.add(k.SecretAccessKey)
	}

	// AWS side: landing and replica buckets, the replication user, secrets.
	s3c := awss3.NewFromConfig(admin, func(o *awss3.Options) { o.UsePathStyle = true })
	landing, replica := "sec-landing-"+secHex(4), "sec-replica-"+secHex(4)
	for _, b := range []string{landing, replica} {
		if _, err := s3c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(b)}); err != nil {
			t.Fatal(err)
		}
	}
	user := "sec-repl-" + secHex(3)
	keyID, keySecret, err := credtest.NewIAMUser(ctx, admin, user, credtest.BucketPolicy(replica, landing))
	if err != nil {
		t.Fatal(err)
	}
	never.add(keySecret)
	sm := secretsmanager.NewFromConfig(admin)
	newSecret := func(v secret.Secret) string {
		out, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("sec-" + secHex(5)), SecretString: aws.String(v.Reveal())})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.ARN)
	}
	s3ARN := newSecret(credentials.S3Creds{AccessKeyID: keyID, SecretAccessKey: secret.Secret(keySecret)}.Secret())

	// Supabase behind a gateway that knows its keys; GCS behind fake Google.
	emu, err := emulator.StartSupabase(t.TempDir())
	emulator.Require(t, err)
	t.Cleanup(func() { emu.Close() })
	never.add(emu.ServiceKey, emu.AnonKey, emu.JWTSecret)
	supaKeys := credtest.NewKeySet(emu.ServiceKey)
	gate, err := credtest.SupabaseGate(emu.URL, supaKeys)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gate.Close)
	supaCfg := supabase.Config{Name: "supabase", URL: gate.URL, Bucket: "primary"}
	if boot, err := supabase.New(supabase.Config{URL: gate.URL, ServiceKey: secret.Secret(emu.ServiceKey), Bucket: "primary"}, nil); err != nil {
		t.Fatal(err)
	} else if err := boot.EnsureBucket(ctx); err != nil {
		t.Fatal(err)
	}
	supaARN := newSecret(credentials.SupabaseCreds{URL: gate.URL, ServiceKey: secret.Secret(emu.ServiceKey)}.Secret())
	fake, err := emulator.StartGCS()
	emulator.Require(t, err)
	t.Cleanup(func() { fake.Close() })
	if err := fake.CreateBucket("sec-offsite"); err != nil {
		t.Fatal(err)
	}
	google, err := credtest.NewGoogle(fake.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(google.Close)
	gcsKey, err := google.ServiceAccount("wedsync-sec", "replicator@wedsync-sec.iam.gserviceaccount.com")
	if err != nil {
		t.Fatal(err)
	}
	never.addGCSKey(gcsKey)
	gcsARN := newSecret(secret.Secret(gcsKey))
	gcsCfg := gcs.Config{Name: "gcs", Bucket: "sec-offsite", Endpoint: google.URL}
	s3Cfg := s3.Config{Name: "s3", Bucket: replica, Region: emulator.MotoRegion, Endpoint: moto.URL, UsePathStyle: true}

	// The functions' providers: logging → credentials → provider.
	loader := credentials.NewLoader(sm, credentials.LoaderConfig{Logger: log, MinRefresh: time.Millisecond})
	providers := map[string]storage.Provider{}
	for name, c := range map[string]struct {
		arn   string
		build credentials.Build
	}{
		"s3": {s3ARN, credentials.S3(s3Cfg, admin, log)}, "gcs": {gcsARN, credentials.GCS(gcsCfg, log)},
		"supabase": {supaARN, credentials.Supabase(supaCfg, log)},
	} {
		p, err := credentials.Provider(ctx, name, c.arn, loader, c.build, log)
		if err != nil {
			t.Fatal(err)
		}
		providers[name] = decorate.Chain(p, decorate.Logging(log, nil))
	}

	// The API, with a JWT authenticator.
	db := dynamodb.NewFromConfig(admin)
	names := catalog.Config{BackupsTable: "sec-backups-" + secHex(3), ReplicasTable: "sec-replicas-" + secHex(3)}
	if err := catalog.EnsureTables(ctx, db, names); err != nil {
		t.Fatal(err)
	}
	store, err := catalog.NewDynamo(db, names)
	if err != nil {
		t.Fatal(err)
	}
	jwtKey := "sec-jwt-" + secHex(24)
	never.add(jwtKey)
	auth, err := api.NewJWTAuthenticator(api.JWTConfig{Secret: []byte(jwtKey), Issuer: "https://sec.supabase.co/auth/v1", Audience: "authenticated"})
	if err != nil {
		t.Fatal(err)
	}
	// Envelope keys: a KMS key for organisations and the keys table.
	orgKey, err := kms.NewFromConfig(admin).CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("sec org key")})
	if err != nil {
		t.Fatal(err)
	}
	keysTable := "sec-keys-" + secHex(3)
	if err := keys.EnsureTable(ctx, db, keysTable); err != nil {
		t.Fatal(err)
	}
	ks, err := keys.New(keys.Config{Table: keysTable, DefaultKeyID: aws.ToString(orgKey.KeyMetadata.Arn)}, kms.NewFromConfig(admin), db)
	if err != nil {
		t.Fatal(err)
	}
	apiH, err := api.New(api.Config{}, api.Deps{Store: store, Landing: api.NewS3Landing(s3c, landing), Auth: auth,
		Providers: providers, Policy: policy.DefaultTable(), Keys: ks, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(apiH)
	t.Cleanup(srv.Close)
	org := api.NewID(time.Now())
	token := secToken(t, jwtKey, org, time.Hour)
	forged := secToken(t, "another-key-that-is-32-bytes-long!!", org, time.Hour)
	expired := secToken(t, jwtKey, org, -time.Hour)
	never.add(token, forged, expired)
	call := func(method, path, bearer string, body any) (int, []byte) {
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, _ := http.NewRequestWithContext(ctx, method, srv.URL+path, rd)
		req.Header.Set("Authorization", "Bearer "+bearer)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}

	// 1. Create a backup and upload it through its presigned URL.
	data := []byte("contract, guest list and timeline of the Smith–Jones wedding " + secHex(64))
	sum := sha256.Sum256(data)
	status, body := call("POST", "/backups", token, map[string]any{"organizationId": org, "name": "smith-jones.zip",
		"size": len(data), "sha256": hex.EncodeToString(sum[:]), "contentType": "application/zip", "idempotencyKey": "sec-" + secHex(8)})
	var created struct {
		Backup catalog.Backup `json:"backup"`
		Upload struct {
			URL     string            `json:"url"`
			Headers map[string]string `json:"headers"`
		} `json:"upload"`
	}
	if status/100 != 2 || json.Unmarshal(body, &created) != nil || created.Upload.URL == "" {
		t.Fatalf("POST /backups: %d %s", status, body)
	}
	never.addURL(created.Upload.URL)
	put, _ := http.NewRequestWithContext(ctx, http.MethodPut, created.Upload.URL, bytes.NewReader(data))
	for k, v := range created.Upload.Headers {
		put.Header.Set(k, v)
	}
	put.ContentLength = int64(len(data))
	// moto cannot check a query-signed request while enforcing IAM (it
	// answers 500): off for the upload, on again after.
	if err := credtest.SetIAMEnforcement(ctx, moto.URL, false); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(put)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("upload through the presigned URL: %v %v", resp, err)
	}
	resp.Body.Close()
	if err := credtest.SetIAMEnforcement(ctx, moto.URL, true); err != nil {
		t.Fatal(err)
	}

	// 2. Seal it (the data key must never be logged), then replicate the
	// sealed object to the three providers.
	sl, err := sealer.New(sealer.Config{LandingBucket: landing}, sealer.Deps{Landing: s3c, Store: store, Keys: ks, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := sl.Handle(ctx, events.SQSEvent{Records: []events.SQSMessage{secLanded(landing, created.Backup, created.Backup.LandingKey)}}); err != nil || len(resp.BatchItemFailures) > 0 {
		t.Fatalf("seal: %v %v", resp, err)
	}
	dataKey, _, err := ks.Open(ctx, org, created.Backup.ID)
	if err != nil {
		t.Fatal(err)
	}
	never.add(hex.EncodeToString(dataKey), base64.StdEncoding.EncodeToString(dataKey), base64.RawURLEncoding.EncodeToString(dataKey))
	msg := secLanded(landing, created.Backup, sealer.SealedKey(org, created.Backup.ID))
	for name, p := range providers {
		h, err := replicate.New(replicate.Config{Provider: name, LandingBucket: landing}, replicate.Deps{Provider: p,
			Landing: replicate.NewLanding(s3c, landing, moto.URL), Store: store, Policy: policy.DefaultTable(), Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		if resp, err := h.Handle(ctx, events.SQSEvent{Records: []events.SQSMessage{msg}}); err != nil || len(resp.BatchItemFailures) > 0 {
			t.Fatalf("replicate to %s: %v %v", name, resp, err)
		}
	}

	// 3. Read it, get a download URL, run the canaries; refused tokens.
	if status, body := call("GET", "/backups/"+created.Backup.ID, token, nil); status != 200 {
		t.Fatalf("GET backup: %d %s", status, body)
	}
	status, body = call("GET", "/backups/"+created.Backup.ID+"/download", token, nil)
	var dl struct {
		URL    string `json:"url"`
		Sealed *struct {
			DataKey []byte `json:"dataKey"`
		} `json:"sealed"`
	}
	if status != 200 || json.Unmarshal(body, &dl) != nil || dl.URL == "" || dl.Sealed == nil || !bytes.Equal(dl.Sealed.DataKey, dataKey) {
		t.Fatalf("GET download: %d %.300s", status, body)
	}
	never.addURL(dl.URL)
	if status, body := call("GET", "/providers/validate", token, nil); status != 200 {
		t.Fatalf("GET /providers/validate: %d %s", status, body)
	}
	for _, bad := range []string{forged, expired, "not.a.jwt", token + "x"} {
		if status, _ := call("GET", "/backups", bad, nil); status != http.StatusUnauthorized {
			t.Fatalf("a refused token got %d", status)
		}
	}

	// 4. Rotate all three secrets, retiring the old credentials at once.
	s3Rot, err := rotate.NewS3(rotate.S3Config{UserName: user, Provider: s3Cfg, Probing: rotate.Probing{Attempts: 1}}, iam.NewFromConfig(admin), log)
	if err != nil {
		t.Fatal(err)
	}
	rh, err := rotate.New(sm, map[string]rotate.Rotator{
		s3ARN:   s3Rot,
		gcsARN:  rotate.NewGCS(rotate.GCSConfig{Provider: gcsCfg, IAMEndpoint: google.IAMEndpoint(), Probing: rotate.Probing{Attempts: 1}}, log),
		supaARN: rotate.NewSupabase(rotate.SupabaseConfig{Provider: supaCfg, Probing: rotate.Probing{Attempts: 1}}, log),
	}, rotate.HandlerConfig{RetireImmediately: true}, log)
	if err != nil {
		t.Fatal(err)
	}
	newSupa := supaemu.SignKey(emu.JWTSecret, supaemu.ServiceRole, 48*time.Hour)
	never.add(newSupa)
	supaKeys.Add(newSupa)
	if _, err := sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(supaARN),
		SecretString:  aws.String(credentials.SupabaseCreds{ServiceKey: secret.Secret(newSupa)}.Secret().Reveal()),
		VersionStages: []string{credentials.StagePending}}); err != nil {
		t.Fatal(err)
	}
	for _, arn := range []string{s3ARN, gcsARN, supaARN} {
		if _, err := rotate.Drive(ctx, sm, rh, arn); err != nil {
			t.Fatal(err)
		}
	}
	supaKeys.Remove(emu.ServiceKey)
	if v, err := loader.Fetch(ctx, s3ARN, credentials.StageCurrent); err == nil {
		c, _ := credentials.ParseS3(v.Value)
		never.add(c.SecretAccessKey.Reveal())
	}
	if v, err := loader.Fetch(ctx, gcsARN, credentials.StageCurrent); err == nil {
		never.addGCSKey(v.Value.Reveal())
	}
	// The providers still hold the old credentials: refused, reloaded.
	for name, p := range providers {
		if err := secRoundTrip(ctx, p, "after-rotation/"+name+".bin"); err != nil {
			t.Fatalf("%s after rotation: %v", name, err)
		}
	}

	// 5. The canary check, and a guard whose credentials are refused.
	if res := validate.Check(ctx, providers); !validate.AllOK(res) {
		t.Fatalf("canaries after rotation: %+v", res)
	}
	stale, _ := supabase.New(supabase.Config{Name: "supabase-stale", URL: gate.URL, ServiceKey: secret.Secret(emu.ServiceKey), Bucket: "primary"}, log)
	if g := validate.NewGuard(ctx, stale, validate.GuardConfig{Logger: log}); g.Result().Usable() {
		t.Fatal("a revoked key passed the guard")
	}

	out := logs.String()
	if !strings.Contains(out, `"reason":"credentials refused"`) || !strings.Contains(out, "api unauthenticated") {
		t.Fatalf("the run did not log what it should have (refusals, reloads): the scan would prove little\n%.2000s", out)
	}
	for _, v := range never.values() {
		if strings.Contains(out, v) {
			t.Errorf("a secret value is in the logs (%d chars, starting %.6q)", len(v), v)
		}
	}
	for _, s := range secForbidden {
		if i := strings.Index(out, s); i >= 0 {
			t.Errorf("the logs contain %q: …%s…", s, out[max(0, i-200):min(len(out), i+60)])
		}
	}
	t.Logf("scanned %d log lines (%d bytes) for %d secret values and %d patterns", strings.Count(out, "\n"), len(out),
		len(never.values()), len(secForbidden))
}

// secValues collects the values that must never be logged.
type secValues struct{ v []string }

func (s *secValues) add(vs ...string) {
	for _, v := range vs {
		if len(v) >= 8 {
			s.v = append(s.v, v)
		}
	}
}

// addURL adds a signed URL, its query string and each signature or token
// in it.
func (s *secValues) addURL(raw string) {
	s.add(raw)
	if u, err := url.Parse(raw); err == nil {
		s.add(u.RawQuery)
		for _, k := range []string{"X-Amz-Signature", "X-Amz-Security-Token", "token", "Signature"} {
			s.add(u.Query().Get(k))
		}
	}
}

// addGCSKey adds a key file and stretches of its private key.
func (s *secValues) addGCSKey(file string) {
	var f struct {
		PrivateKey string `json:"private_key"`
	}
	json.Unmarshal([]byte(file), &f)
	s.add(file)
	for _, line := range strings.Split(f.PrivateKey, "\n") {
		if len(line) > 40 {
			s.add(line)
		}
	}
}

func (s *secValues) values() []string { return s.v }

// secLog is a concurrent log destination.
type secLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *secLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *secLog) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.buf.String() }

// secToken signs a Supabase-Auth-shaped token for org.
func secToken(t *testing.T, key, org string, ttl time.Duration) string {
	t.Helper()
	now := time.Now()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": "https://sec.supabase.co/auth/v1",
		"aud": "authenticated", "sub": "user-" + secHex(4), "iat": now.Unix(), "exp": now.Add(ttl).Unix(),
		"app_metadata": map[string]any{"org_id": org}}).SignedString([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// secLanded is the SQS message EventBridge delivers for an object of b:
// its upload (the seal queue's) or its sealed object (the replicate
// queues').
func secLanded(bucket string, b catalog.Backup, key string) events.SQSMessage {
	body := fmt.Sprintf(`{"version":"0","id":"%s","detail-type":"Object Created","source":"aws.s3","account":"123456789012",
"time":"2026-06-01T12:00:00Z","region":"us-east-1","resources":["arn:aws:s3:::%s"],
"detail":{"version":"0","bucket":{"name":"%s"},"object":{"key":"%s","size":%d,"etag":"abc","sequencer":"00"},
"request-id":"R","requester":"123456789012","reason":"PutObject"}}`, secHex(8), bucket, bucket, key, b.Size)
	return events.SQSMessage{MessageId: "m-" + b.ID, Body: body, Attributes: map[string]string{"ApproximateReceiveCount": "1"}}
}

// secRoundTrip puts, stats, reads and deletes a small object.
func secRoundTrip(ctx context.Context, p storage.Provider, key string) error {
	data := []byte("canary " + secHex(16))
	sum := sha256.Sum256(data)
	if _, err := p.Put(ctx, key, bytes.NewReader(data), int64(len(data)), storage.PutOptions{SHA256: hex.EncodeToString(sum[:])}); err != nil {
		return err
	}
	if _, err := p.Stat(ctx, key); err != nil {
		return err
	}
	rc, err := p.Get(ctx, key, 0, -1)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, rc)
	rc.Close()
	return p.Delete(ctx, key)
}

func secHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
