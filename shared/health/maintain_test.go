package health

import (
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/wedsync/backup-replication/shared/catalog"
)

// A dead-letter queue with messages raises one alert, however many runs
// see it, and one recovery once it is empty.
func TestDeadLetterAlert(t *testing.T) {
	w := newWorld(t, nil)
	dlq := w.queues["s3"].DLQURL
	for i := 0; i < 3; i++ {
		if _, err := w.sqs.SendMessage(w.ctx, &sqs.SendMessageInput{QueueUrl: aws.String(dlq), MessageBody: aws.String("{}")}); err != nil {
			t.Fatal(err)
		}
	}
	name := queueName(dlq)
	for run := 0; run < 3; run++ {
		rep := w.h.Maintain(w.ctx)
		if rep.DeadLetters[name] != 3 || rep.DeadLetters[queueName(w.queues["gcs"].DLQURL)] != 0 || len(rep.Errors) != 0 {
			t.Fatalf("run %d: %+v", run, rep)
		}
	}
	a := w.alertsSent()
	if len(a) != 1 || a[0].incident() != "dlq_nonempty:"+name || !strings.Contains(a[0].Subject, "holds 3 messages") {
		t.Fatalf("alerts: %+v", a)
	}
	w.drain(dlq)
	w.h.Maintain(w.ctx)
	w.h.Maintain(w.ctx)
	if a := w.alertsSent(); len(a) != 1 || a[0].phase() != "resolved" {
		t.Errorf("after emptying: %+v", a)
	}
}

// The periodic reconcile queues again the copies healthy providers owe
// (missing or FAILED), leaves alone work still in flight, and runs once
// per RECONCILE_EVERY however many invocations come.
func TestReconcileQueuesMissingAndFailedCopies(t *testing.T) {
	w := newWorld(t, func(c *Config) { c.ReconcileEvery = time.Hour; c.ReconcileGrace = 5 * time.Minute })
	missing := w.backup(payload(1200), time.Hour, "supabase", "s3")
	failed := w.backup(payload(1300), time.Hour, "supabase", "gcs")
	w.replica(failed, "s3", catalog.ReplicaFailed)
	w.backup(payload(1400), time.Minute, "supabase", "s3") // landed a minute ago: in flight
	pending := w.backup(payload(1500), time.Hour, "supabase", "s3")
	w.replica(pending, "gcs", catalog.ReplicaCopying)
	gone := w.backup(payload(1600), time.Hour, "supabase", "s3")
	if _, err := w.s3.DeleteObject(w.ctx, &s3.DeleteObjectInput{Bucket: aws.String(w.landing), Key: aws.String(gone.LandingKey)}); err != nil {
		t.Fatal(err)
	}
	w.h.Round(w.ctx)

	rep := w.h.Maintain(w.ctx)
	if rep.Reconcile == nil || rep.Reconcile.Queued != 2 || rep.Reconcile.Repaired != 1 || rep.Reconcile.Failed != 0 {
		t.Fatalf("reconcile: %+v, errors %v", rep.Reconcile, rep.Errors)
	}
	gcs, s3q := w.events("gcs"), w.events("s3")
	if len(gcs) != 1 || gcs[0].BackupID != missing.ID || len(s3q) != 1 || s3q[0].BackupID != failed.ID {
		t.Errorf("queued: gcs %+v, s3 %+v", gcs, s3q)
	}
	// The backup whose landing object is gone got its copy from another
	// provider instead.
	if r, _ := w.cat.GetReplica(w.ctx, gone.ID, "gcs"); r.State != catalog.ReplicaVerified || r.Evidence != "sha256-readback" {
		t.Errorf("copy written from another provider: %+v", r)
	}
	if b, _ := w.cat.GetBackup(w.ctx, gone.ID); b.Status != catalog.StatusProtected {
		t.Errorf("backup repaired by reconcile is %s", b.Status)
	}
	if again := w.h.Maintain(w.ctx); again.Reconcile != nil {
		t.Errorf("reconciled again within RECONCILE_EVERY: %+v", again.Reconcile)
	}
}

// A backup AT_RISK for longer than the threshold raises one alert, which
// resolves when the backup is protected.
func TestAtRiskAlert(t *testing.T) {
	w := newWorld(t, func(c *Config) { c.AtRiskAlertAfter = 30 * time.Minute })
	late := w.backup(payload(900), time.Hour, "supabase")
	w.backup(payload(900), 5*time.Minute, "supabase") // at risk, but not for long
	if late.Status != catalog.StatusAtRisk {
		t.Fatalf("seeded backup is %s", late.Status)
	}
	for run := 0; run < 2; run++ {
		if rep := w.h.Maintain(w.ctx); rep.AtRisk != 1 {
			t.Fatalf("run %d: %d late backups", run, rep.AtRisk)
		}
	}
	a := w.alertsSent()
	if len(a) != 1 || a[0].incident() != "at_risk:"+late.ID || !strings.Contains(a[0].Message, "1 of 3 verified copies") {
		t.Fatalf("alerts: %+v", a)
	}
	for _, p := range []string{"s3", "gcs"} {
		w.replica(late, p, catalog.ReplicaVerified)
	}
	if _, err := w.h.settle(w.ctx, late.ID); err != nil {
		t.Fatal(err)
	}
	w.h.Maintain(w.ctx)
	if a := w.alertsSent(); len(a) != 1 || a[0].phase() != "resolved" || !strings.Contains(a[0].Message, "PROTECTED") {
		t.Errorf("after protection: %+v", a)
	}
}

// A backup whose landed bytes failed their check is an integrity incident.
func TestFailedBackupAlert(t *testing.T) {
	w := newWorld(t, nil)
	b := w.backup(payload(800), time.Hour)
	b.Status, b.StatusReason = catalog.StatusFailed, "integrity: landed object has 799 bytes, declared 800"
	if _, err := w.cat.UpdateBackup(w.ctx, b); err != nil {
		t.Fatal(err)
	}
	if rep := w.h.Maintain(w.ctx); rep.FailedBackups != 1 {
		t.Fatalf("%+v", rep)
	}
	w.h.Maintain(w.ctx)
	if a := w.alertsSent(); len(a) != 1 || a[0].incident() != "integrity:"+b.ID+":landing" || !strings.Contains(a[0].Message, "799 bytes") {
		t.Errorf("alerts: %+v", a)
	}
}
