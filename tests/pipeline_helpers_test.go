package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/fsouza/fake-gcs-server/fakestorage"

	"github.com/wedsync/backup-replication/infra/local/apiclient"
	"github.com/wedsync/backup-replication/infra/local/stack"
	"github.com/wedsync/backup-replication/shared/api"
	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/replicate"
)

// Helpers of the pipeline tests: a backup of their own, events as
// EventBridge delivers them, and the emulators seen from behind the system
// (listing and overwriting copies without going through our code).

// pipelineBackup is a backup a pipeline test created through the API.
type pipelineBackup struct {
	ID, Key string
	Data    patternData
	// SHA is the data's own SHA-256 (which the declaration may contradict).
	SHA     string
	Created api.BackupResponse
}

// orgClient is an API client for a fresh organization of the shared stack.
func orgClient(e *sharedEnv) (*apiclient.Client, string) {
	org := api.NewID(time.Now())
	return apiclient.New(e.APIURL, stack.DevToken(org, 2*time.Hour)), org
}

// register creates a backup of size bytes (seeded by seed) declaring sha
// (the data's own SHA-256 when empty), without uploading it.
func register(t *testing.T, c *apiclient.Client, org string, seed uint64, size int64, sha string) pipelineBackup {
	t.Helper()
	b, err := registerBackup(t.Context(), c, org, seed, size, sha)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func registerBackup(ctx context.Context, c *apiclient.Client, org string, seed uint64, size int64, sha string) (pipelineBackup, error) {
	data := patternData{seed: seed, size: size}
	actual := data.sha256()
	if sha == "" {
		sha = actual
	}
	created, err := c.CreateBackup(ctx, api.CreateBackupRequest{
		OrganizationID: org, Name: fmt.Sprintf("pipeline-%d.bin", seed), Size: &size, SHA256: sha,
		ContentType: "application/octet-stream", IdempotencyKey: fmt.Sprintf("pipeline-%s-%d", org, seed),
	})
	if err != nil {
		return pipelineBackup{}, fmt.Errorf("POST /backups: %w", err)
	}
	return pipelineBackup{ID: created.Backup.ID, Key: created.Backup.LandingKey, Data: data, SHA: actual, Created: created}, nil
}

// upload sends the backup's bytes to its presigned URL(s).
func (b pipelineBackup) upload(ctx context.Context, c *apiclient.Client) error {
	return c.Upload(ctx, b.Created.Upload, b.Data, b.Data.size)
}

// waitStatus polls the backup until done accepts it (or it cannot change
// any more), within timeout; a copy whose event the shared stack lost is
// asked for again meanwhile (redeliverLost).
func waitStatus(t *testing.T, c *apiclient.Client, id string, timeout time.Duration, done func(api.BackupDetail) bool) (api.BackupDetail, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	return c.Wait(ctx, id, 500*time.Millisecond, sharedVal.redeliverLost(t.Logf, done), nil)
}

// objectCreated is the body EventBridge puts on the seal and replication
// queues for an object of the landing bucket (the shape of
// events/replicate-sqs.json): the seal queue gets uploads (backups/), the
// replication queues sealed objects (sealed/; see sealedEvent).
func objectCreated(e *sharedEnv, key string, size int64, etag, reason string) string {
	return replicate.ObjectCreated(e.Buckets.Landing, key, size, etag, reason, time.Now())
}

// copyPlaces are where copies can be, by name: the three providers, the
// standby and the landing bucket.
var copyPlaces = []string{"supabase", "s3", "gcs", "s3-standby", "landing"}

// listKeys lists the object keys under prefix at a copy place, straight
// from its emulator; for S3 buckets, unfinished multipart uploads count
// too (as "<key> (unfinished upload)").
func (e *sharedEnv) listKeys(ctx context.Context, where, prefix string) ([]string, error) {
	var keys []string
	switch where {
	case "s3", "s3-standby", "landing":
		bucket := map[string]string{"s3": e.Buckets.S3, "s3-standby": e.Buckets.Standby, "landing": e.Buckets.Landing}[where]
		out, err := e.S3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
		if err != nil {
			return nil, err
		}
		for _, o := range out.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
		ups, err := e.S3.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
		if err != nil {
			return nil, err
		}
		for _, u := range ups.Uploads {
			keys = append(keys, aws.ToString(u.Key)+" (unfinished upload)")
		}
	case "gcs":
		objs, _, err := e.GCS.Server.ListObjectsWithOptions(e.Buckets.GCS, fakestorage.ListOptions{Prefix: prefix})
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			keys = append(keys, o.Name)
		}
	case "supabase":
		folder := strings.TrimSuffix(prefix, "/")
		body, _ := json.Marshal(map[string]any{"prefix": folder, "limit": 1000})
		var items []struct {
			Name string  `json:"name"`
			ID   *string `json:"id"`
		}
		if err := e.supabase(ctx, http.MethodPost, "/object/list/"+e.Buckets.Supabase, bytes.NewReader(body), &items); err != nil {
			return nil, err
		}
		for _, it := range items {
			if it.ID != nil { // folders have no id
				keys = append(keys, folder+"/"+it.Name)
			}
		}
	default:
		return nil, fmt.Errorf("no such copy place %q", where)
	}
	sort.Strings(keys)
	return keys, nil
}

// overwrite replaces the copy at key on a provider behind the system's
// back, straight on its emulator.
func (e *sharedEnv) overwrite(ctx context.Context, where, key string, data []byte) error {
	switch where {
	case "s3":
		_, err := e.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(e.Buckets.S3), Key: aws.String(key), Body: bytes.NewReader(data)})
		return err
	case "gcs":
		e.GCS.Server.CreateObject(fakestorage.Object{ObjectAttrs: fakestorage.ObjectAttrs{BucketName: e.Buckets.GCS, Name: key}, Content: data})
		return nil
	case "supabase":
		return e.supabase(ctx, http.MethodPut, "/object/"+e.Buckets.Supabase+"/"+key, bytes.NewReader(data), nil)
	}
	return fmt.Errorf("cannot overwrite on %q", where)
}

// supabase calls the Supabase emulator's Storage API with the service key.
func (e *sharedEnv) supabase(ctx context.Context, method, path string, body io.Reader, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, e.Supabase.URL+"/storage/v1"+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+e.Supabase.ServiceKey)
	req.Header.Set("apikey", e.Supabase.ServiceKey)
	if method == http.MethodPut {
		req.Header.Set("x-upsert", "true")
		req.Header.Set("Content-Type", "application/octet-stream")
	} else {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("supabase %s %s: HTTP %d %s", method, path, resp.StatusCode, bytes.TrimSpace(data))
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// replicasByProvider indexes a backup's replicas and fails on a provider
// listed twice.
func replicasByProvider(t *testing.T, d api.BackupDetail) map[string]catalog.Replica {
	t.Helper()
	out := map[string]catalog.Replica{}
	for _, r := range d.Replicas {
		if _, dup := out[r.Provider]; dup {
			t.Errorf("backup %s lists two replicas on %s", d.Backup.ID, r.Provider)
		}
		out[r.Provider] = r
	}
	return out
}

// sentMessage is a message a test put on a replication queue.
type sentMessage struct {
	id, provider, backup, what string
}

// sendID puts body on a provider's replication queue and returns its
// message id (the replicate functions log it with every outcome).
func (e *sharedEnv) sendID(ctx context.Context, provider, body string) (string, error) {
	out, err := e.SQS.SendMessage(ctx, &sqs.SendMessageInput{
		QueueUrl: aws.String(e.queueURL(providerQueues[provider][0])), MessageBody: aws.String(body)})
	if err != nil {
		return "", err
	}
	return aws.ToString(out.MessageId), nil
}

// waitConsumed waits until the replicate function of each message's
// provider has consumed it (an INFO outcome line: done with it, nothing to
// retry), and returns each message's last outcome. Messages still not
// consumed after timeout fail the test.
func (e *sharedEnv) waitConsumed(t *testing.T, msgs []sentMessage, timeout time.Duration) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	out := map[string]string{}
	for _, m := range msgs {
		match := func(l string) bool {
			return replicateLine(m.provider, m.backup)(l) && strings.Contains(l, `"message_id":"`+m.id+`"`)
		}
		lines, err := e.Log.WaitFor(ctx, 1, consumedLine(match))
		if err != nil {
			tried := e.Log.Find(match)
			t.Errorf("%s message %s of %s on %s not consumed: %v (%d outcomes, last %q)", m.what, m.id, m.backup, m.provider,
				err, len(tried), fieldOf(lastOf(tried), "outcome"))
			continue
		}
		out[m.id] = fieldOf(lastOf(lines), "outcome")
	}
	return out
}

// consumedLine narrows match to INFO lines: the replicate handler logs a
// record it is done with at INFO, one it returns to the queue at WARN.
func consumedLine(match func(string) bool) func(string) bool {
	return func(l string) bool { return match(l) && strings.Contains(l, `"level":"INFO"`) }
}

// fieldOf reads a string field of a function's JSON log line
// ("[Function#n] {...}").
func fieldOf(line, key string) string {
	_, js, ok := strings.Cut(line, "] ")
	if !ok {
		js = line
	}
	var m map[string]any
	if json.Unmarshal([]byte(js), &m) != nil {
		return ""
	}
	if v, ok := m[key]; ok {
		return fmt.Sprint(v)
	}
	return ""
}

func lastOf(lines []string) string {
	if len(lines) == 0 {
		return ""
	}
	return lines[len(lines)-1]
}

// asAPIError reports whether err is an API error answer.
func asAPIError(err error, target **apiclient.Error) bool { return errors.As(err, target) }
