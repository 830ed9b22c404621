package health

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/wedsync/backup-replication/shared/config"
)

// A deployment wired from its environment alone probes every configured
// provider, and a provider down raises its alert on the topic.
func TestWireFromEnvironment(t *testing.T) {
	w := newWorld(t, nil)
	env := w.env
	env["HEALTH_SINGLE_ROUND"] = "true"
	env["HEALTH_DOWN_AFTER"] = "1"
	env["SCRUB_BYTES_PER_RUN"] = "1MiB"
	env["STAGE"] = "wired"
	c, err := config.LoadHealth(config.Map(env))
	if err != nil {
		t.Fatal(err)
	}
	e, err := LoadEnv(config.Map(env))
	if err != nil {
		t.Fatal(err)
	}
	var logs, emf bytes.Buffer
	h, err := Wire(w.ctx, c, e, w.awsCfg, slog.New(slog.NewJSONHandler(&logs, nil)), &emf)
	if err != nil {
		t.Fatal(err)
	}
	if h.cfg.RedriveMode != RedriveCopy || h.cfg.ScrubBytes != 1<<20 || strings.Join(h.cfg.Providers, ",") != "supabase,s3,gcs" {
		t.Errorf("config: %+v", h.cfg)
	}
	rep, err := h.Handle(w.ctx, events.EventBridgeEvent{DetailType: "Scheduled Event", Source: "aws.events", Time: time.Now()})
	if err != nil || len(rep.Rounds) != 1 {
		t.Fatalf("handle: %v %+v", err, rep)
	}
	for _, p := range rep.Rounds[0].Providers {
		if p.State != StateUp {
			t.Errorf("%s: %+v", p.Provider, p)
		}
	}
	if !strings.Contains(emf.String(), `"Operation":"probe"`) {
		t.Errorf("no probe metrics: %s", emf.String())
	}
	// GCS_ENDPOINT pointed at the emulator: stop it and the next run says so.
	w.gcs.Close()
	rep, _ = h.Handle(w.ctx, events.EventBridgeEvent{})
	if g := pick(rep.Rounds[0], "gcs"); g.State != StateDown || g.ProbeOK {
		t.Errorf("gcs with its emulator stopped: %+v", g)
	}
	a := w.alertsSent()
	if len(a) != 1 || a[0].incident() != "provider_down:gcs" || !strings.HasPrefix(a[0].Subject, "[wired] ") {
		t.Errorf("alerts: %+v", a)
	}
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil {
			t.Fatalf("log line is not JSON: %s", line)
		}
		if strings.Contains(line, w.env["SUPABASE_SERVICE_KEY"]) {
			t.Fatalf("service key in the logs: %s", line)
		}
	}
}

func TestLoadEnv(t *testing.T) {
	e, err := LoadEnv(config.Map(map[string]string{"HEALTH_SINGLE_ROUND": "true", "HEALTH_ROUND_INTERVAL": "20s",
		"HEALTH_DOWN_AFTER": "3", "SCRUB_BYTES_PER_RUN": "0", "RECONCILE_EVERY": "0", "REPAIR_MAX_BYTES": "2GiB",
		"AT_RISK_ALERT_AFTER": "1h", "HEALTH_REDRIVE": "move-task"}))
	if err != nil {
		t.Fatal(err)
	}
	c := e.Config(config.Health{})
	if !c.SingleRound || c.RoundInterval != 20*time.Second || c.DownAfter != 3 || c.ScrubBytes != 0 || c.ReconcileEvery != 0 ||
		c.RepairMaxBytes != 2<<30 || c.AtRiskAlertAfter != time.Hour || c.RedriveMode != RedriveMoveTask {
		t.Errorf("config: %+v", c)
	}
	locked := config.Health{Common: config.Common{Policy: config.DefaultPolicy(config.Providers{
		S3: config.S3{Bucket: "b"}, GCS: config.GCS{Bucket: "g"}}, false),
		Providers: config.Providers{S3: config.S3{Bucket: "b"}, GCS: config.GCS{Bucket: "g"}},
		Locks:     config.Locks{"s3": {Mode: "COMPLIANCE", Retention: time.Hour}, "s3-standby": {Mode: "GOVERNANCE", Retention: time.Hour}}}}
	if c := e.Config(locked); len(c.Immutable) != 1 || c.Immutable["s3"] != time.Hour {
		t.Errorf("immutable copies from the locks of configured providers: %v", c.Immutable)
	}
	d, _ := LoadEnv(config.Map(nil))
	if c := d.Config(config.Health{}); c.ScrubBytes != DefaultScrubBytes || c.ReconcileEvery != DefaultReconcileEvery || c.RedriveMode != "" {
		t.Errorf("defaults: %+v", c)
	}
	_, err = LoadEnv(config.Map(map[string]string{"HEALTH_SINGLE_ROUND": "sometimes", "HEALTH_DOWN_AFTER": "0",
		"SCRUB_BYTES_PER_RUN": "lots", "HEALTH_REDRIVE": "carrier-pigeon", "RECONCILE_EVERY": "-1m"}))
	for _, name := range []string{"HEALTH_SINGLE_ROUND", "HEALTH_DOWN_AFTER", "SCRUB_BYTES_PER_RUN", "HEALTH_REDRIVE", "RECONCILE_EVERY"} {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("error %v does not name %s", err, name)
		}
	}
}
