package health

import (
	"bytes"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/replicate"
)

// withSealQueue configures the seal step's queues (SEAL_QUEUE_URL,
// SEAL_DLQ_URL) on a world about to be made.
func withSealQueue(t *testing.T) (func(*Config), Queue) {
	t.Helper()
	awsCfg, _ := moto.AWSConfig(t.Context())
	c := sqs.NewFromConfig(awsCfg)
	mk := func(name string) string {
		out, err := c.CreateQueue(t.Context(), &sqs.CreateQueueInput{QueueName: aws.String(name + "-" + randHex())})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.QueueUrl)
	}
	q := Queue{URL: mk("seal"), DLQURL: mk("seal-dlq")}
	return func(cfg *Config) {
		cfg.Queues = maps.Clone(cfg.Queues)
		cfg.Queues[SealQueue] = q
	}, q
}

// pending registers a backup as the API does (PENDING, never seen by the
// seal step), created ago, with its upload landed or not.
func (w *world) pending(data []byte, ago time.Duration, landed bool) catalog.Backup {
	w.t.Helper()
	org, id := "org-"+randHex(), "b-"+randHex()
	key := replicate.LandingPrefix + org + "/" + id
	if landed {
		if _, err := w.s3.PutObject(w.ctx, &s3.PutObjectInput{Bucket: aws.String(w.landing), Key: aws.String(key),
			Body: bytes.NewReader(data)}); err != nil {
			w.t.Fatal(err)
		}
	}
	created := time.Now().Add(-ago).UTC()
	b, _, err := w.cat.CreateBackup(w.ctx, catalog.Backup{ID: id, OrganizationID: org, Name: "guests " + id + ".csv",
		Size: int64(len(data)), SHA256: sha(data), ContentType: "text/csv", LandingKey: key,
		Status: catalog.StatusPending, CreatedAt: created})
	if err != nil {
		w.t.Fatal(err)
	}
	return b
}

// With uploads sealed first, reconcile sends an upload that landed but was
// never sealed (its seal event lost) back to the seal queue, once, and not
// to any provider's queue (replicate copies only sealed objects); uploads
// that never arrived, and recent ones, are left alone.
func TestReconcileQueuesUnsealedUploadsForSealing(t *testing.T) {
	tune, seal := withSealQueue(t)
	w := newWorld(t, tune)
	data := payload(4096)
	lost := w.pending(data, 2*time.Hour, true)
	w.pending(data, 2*time.Hour, false) // never uploaded
	w.pending(data, 0, true)            // landed just now: the seal step may be at work

	rep, err := w.h.Reconcile(w.ctx, []string{"supabase", "s3", "gcs"}, periodicStatuses)
	if err != nil || rep.Queued != 1 || rep.Failed != 0 {
		t.Fatalf("Reconcile: %+v %v", rep, err)
	}
	bodies := w.drain(seal.URL)
	if len(bodies) != 1 {
		t.Fatalf("seal queue holds %d messages, want 1", len(bodies))
	}
	ev, err := replicate.ParseEvent(bodies[0])
	if err != nil || ev.Sealed || ev.Key != lost.LandingKey || ev.Size != int64(len(data)) || ev.Bucket != w.landing {
		t.Fatalf("seal queue event %+v (%v), want the landing object of %s", ev, err, lost.ID)
	}
	for _, p := range []string{"supabase", "s3", "gcs"} {
		if evs := w.events(p); len(evs) != 0 {
			t.Errorf("%s queue got %d events for an unsealed backup", p, len(evs))
		}
	}
}

// A non-empty seal dead-letter queue raises its own alert, which says that
// those uploads cannot be replicated until sealed.
func TestSealDeadLetterAlert(t *testing.T) {
	tune, seal := withSealQueue(t)
	w := newWorld(t, tune)
	if _, err := w.sqs.SendMessage(w.ctx, &sqs.SendMessageInput{QueueUrl: aws.String(seal.DLQURL), MessageBody: aws.String("{}")}); err != nil {
		t.Fatal(err)
	}
	rep := w.h.Maintain(w.ctx)
	if rep.DeadLetters[queueName(seal.DLQURL)] != 1 {
		t.Fatalf("dead letters %+v", rep.DeadLetters)
	}
	a := w.alertsSent()
	if len(a) != 1 || a[0].incident() != "dlq_nonempty:"+queueName(seal.DLQURL) {
		t.Fatalf("alerts: %+v", a)
	}
	if !strings.Contains(a[0].Message, "could not be sealed") {
		t.Errorf("alert text %q does not say what the messages are", a[0].Message)
	}
}
