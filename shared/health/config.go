package health

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/wedsync/backup-replication/shared/config"
)

// Defaults of Config.
const (
	DefaultRoundInterval    = 30 * time.Second
	DefaultProbeTimeout     = 10 * time.Second
	DefaultDownAfter        = 2
	DefaultUpAfter          = 3
	DefaultSlowProbe        = 5 * time.Second
	DefaultHistoryTTL       = 7 * 24 * time.Hour
	DefaultAtRiskAlertAfter = 30 * time.Minute
	DefaultScanLimit        = 500
	DefaultReconcileEvery   = 15 * time.Minute
	DefaultReconcileGrace   = 10 * time.Minute
	DefaultReconcileLimit   = 5000
	DefaultScrubBytes       = 64 << 20
	DefaultScrubMaxBackups  = 200
	DefaultRepairMaxBytes   = 1 << 30
	DefaultRedriveMax       = 1000
	DefaultStaleAfter       = 3 * time.Minute
)

// Redrive modes: how a dead-letter queue is emptied back into its queue
// once its provider is up again.
const (
	// RedriveAuto starts an SQS message move task and, when SQS refuses
	// it, moves the messages itself.
	RedriveAuto = "auto"
	// RedriveMoveTask only starts an SQS message move task
	// (sqs:StartMessageMoveTask).
	RedriveMoveTask = "move-task"
	// RedriveCopy receives each dead letter, sends it to the queue and
	// deletes it (moto, which has no message move tasks).
	RedriveCopy = "copy"
)

// Queue is one provider's work queue and dead-letter queue.
type Queue = config.Queue

// Config is what the health handler does and how often.
type Config struct {
	// Stage names the deployment in alerts.
	Stage string
	// Providers are the providers to probe, by name, in policy order.
	Providers []string
	// LandingBucket is where uploads land: reconcile's events name it.
	LandingBucket string
	// Queues are the providers' queues (reconcile, repair) and dead-letter
	// queues (alerts, redrive), by provider name.
	Queues map[string]Queue

	// SingleRound makes Handle run one round instead of two 30 s apart
	// (tests, and the local stack, which invokes every 30 s itself).
	SingleRound bool
	// RoundInterval is the time from the first round to the second.
	RoundInterval time.Duration
	// ProbeTimeout bounds one provider's canary round trip.
	ProbeTimeout time.Duration
	// DownAfter is how many failed probes in a row take a provider down
	// (an open breaker does at once); UpAfter how many good probes in a
	// row bring it back (with its breaker not open).
	DownAfter, UpAfter int
	// SlowProbe: a passing probe slower than this shows as degraded.
	SlowProbe time.Duration
	// HistoryTTL is how long probe history is kept.
	HistoryTTL time.Duration
	// StaleAfter: status older than this is not trusted by Status readers.
	StaleAfter time.Duration

	// AtRiskAlertAfter is how long a backup may stay AT_RISK before an alert.
	AtRiskAlertAfter time.Duration
	// ScanLimit bounds how many AT_RISK and FAILED backups one run looks at.
	ScanLimit int
	// ReconcileEvery is how often every healthy provider is reconciled
	// (0: only when a provider recovers); ReconcileGrace leaves alone
	// backups landed more recently (their messages are still in flight);
	// ReconcileLimit bounds the backups one reconcile reads.
	ReconcileEvery, ReconcileGrace time.Duration
	ReconcileLimit                 int
	// ScrubBytes is the byte budget per provider per run for re-reading
	// verified copies (0: no scrubbing); ScrubMaxBackups bounds the backups
	// one run visits.
	ScrubBytes      int64
	ScrubMaxBackups int
	// RepairMaxBytes bounds a copy the health function rewrites itself
	// from another provider when the landing object is gone.
	RepairMaxBytes int64
	// RedriveMode is RedriveAuto, RedriveMoveTask or RedriveCopy;
	// RedriveMax bounds the messages one copy redrive moves.
	RedriveMode string
	RedriveMax  int
	// Immutable is, by provider name, the retention under which the
	// provider writes every copy (config.Locks; the providers must be
	// built with the same): a copy repaired there is recorded Immutable.
	Immutable map[string]time.Duration
}

// withDefaults fills zero fields with the defaults, except ScrubBytes and
// ReconcileEvery, where 0 turns scrubbing and periodic reconcile off
// (Env.Config gives them their defaults).
func (c Config) withDefaults() Config {
	d := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	n := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	d(&c.RoundInterval, DefaultRoundInterval)
	d(&c.ProbeTimeout, DefaultProbeTimeout)
	d(&c.SlowProbe, DefaultSlowProbe)
	d(&c.HistoryTTL, DefaultHistoryTTL)
	d(&c.StaleAfter, DefaultStaleAfter)
	d(&c.AtRiskAlertAfter, DefaultAtRiskAlertAfter)
	d(&c.ReconcileGrace, DefaultReconcileGrace)
	n(&c.DownAfter, DefaultDownAfter)
	n(&c.UpAfter, DefaultUpAfter)
	n(&c.ScanLimit, DefaultScanLimit)
	n(&c.ReconcileLimit, DefaultReconcileLimit)
	n(&c.ScrubMaxBackups, DefaultScrubMaxBackups)
	n(&c.RedriveMax, DefaultRedriveMax)
	if c.RepairMaxBytes == 0 {
		c.RepairMaxBytes = DefaultRepairMaxBytes
	}
	if c.RedriveMode == "" {
		c.RedriveMode = RedriveAuto
	}
	return c
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if len(c.Providers) == 0 {
		errs = append(errs, errors.New("health: no providers to probe"))
	}
	if c.DownAfter < 0 || c.UpAfter < 0 || c.ScanLimit < 0 || c.ReconcileLimit < 0 || c.ScrubMaxBackups < 0 || c.RedriveMax < 0 {
		errs = append(errs, errors.New("health: thresholds and limits must not be negative"))
	}
	if c.ScrubBytes < 0 || c.RepairMaxBytes < 0 {
		errs = append(errs, errors.New("health: byte budgets must not be negative"))
	}
	switch c.RedriveMode {
	case "", RedriveAuto, RedriveMoveTask, RedriveCopy:
	default:
		errs = append(errs, fmt.Errorf("health: redrive mode %q is not auto, move-task or copy", c.RedriveMode))
	}
	if c.RoundInterval < 0 {
		errs = append(errs, errors.New("health: negative round interval"))
	}
	return errors.Join(errs...)
}

// Env is the health function's part of the environment that shared/config
// (LoadHealth) does not read. shared/config reads the tables (HEALTH_TABLE,
// BREAKERS_TABLE, BACKUPS_TABLE, REPLICAS_TABLE), ALERT_TOPIC_ARN,
// ALERT_WEBHOOK_URL, the providers, and the queues
// ({SUPABASE,S3,GCS,S3_STANDBY,SEAL}_QUEUE_URL and …_DLQ_URL). These are:
//
//	HEALTH_SINGLE_ROUND     true: one round per invocation (local stack: it invokes every 30 s)
//	HEALTH_ROUND_INTERVAL   time from the first round to the second (default 30s)
//	HEALTH_PROBE_TIMEOUT    bound on one canary round trip (default 10s)
//	HEALTH_DOWN_AFTER       failed probes in a row that take a provider down (default 2)
//	HEALTH_UP_AFTER         good probes in a row that bring it back (default 3)
//	HEALTH_SLOW_PROBE       a passing probe slower than this is "degraded" (default 5s)
//	HEALTH_HISTORY_TTL      how long probe history is kept (default 168h)
//	AT_RISK_ALERT_AFTER     AT_RISK for longer than this raises an alert (default 30m)
//	RECONCILE_EVERY         periodic reconcile of healthy providers; 0 only on recovery (default 15m)
//	RECONCILE_GRACE         backups landed more recently are left alone (default 10m)
//	SCRUB_BYTES_PER_RUN     bytes re-read per provider per run, e.g. 64MiB; 0 no scrubbing (default 64MiB)
//	SCRUB_MAX_BACKUPS       backups one scrub visits (default 200)
//	REPAIR_MAX_BYTES        largest copy repaired from another provider by the health function (default 1GiB)
//	HEALTH_REDRIVE          auto | move-task | copy (default auto; copy when AWS_ENDPOINT_URL is set)
type Env struct {
	SingleRound                             bool
	RoundInterval, ProbeTimeout, SlowProbe  time.Duration
	HistoryTTL, AtRiskAlertAfter            time.Duration
	ReconcileEvery, ReconcileGrace          time.Duration
	DownAfter, UpAfter, ScrubMaxBackups     int
	ScrubBytes, RepairMaxBytes              int64
	RedriveMode                             string
	reconcileEverySet, scrubBytesSet, local bool
	// Retention is RETENTION_POLICY and the keys (LoadRetentionEnv).
	Retention RetentionEnv
}

// LoadEnv reads the variables above through getenv (config.OS in
// production) and reports every problem at once, each naming its variable.
func LoadEnv(getenv func(string) string) (Env, error) {
	var errs []error
	get := func(name string) string { return strings.TrimSpace(getenv(name)) }
	dur := func(name string, set *bool) time.Duration {
		v := get(name)
		if v == "" {
			return 0
		}
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			errs = append(errs, fmt.Errorf("%s: %q is not a duration (e.g. 30s, 15m)", name, v))
			return 0
		}
		if set != nil {
			*set = true
		}
		return d
	}
	count := func(name string) int {
		v := get(name)
		if v == "" {
			return 0
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			errs = append(errs, fmt.Errorf("%s: %q is not a positive whole number", name, v))
			return 0
		}
		return n
	}
	size := func(name string, set *bool) int64 {
		v := get(name)
		if v == "" {
			return 0
		}
		mult := int64(1)
		for suffix, m := range map[string]int64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
			if s, ok := strings.CutSuffix(v, suffix); ok {
				v, mult = strings.TrimSpace(s), m
			}
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			errs = append(errs, fmt.Errorf("%s: %q is not a byte count (e.g. 67108864 or 64MiB)", name, get(name)))
			return 0
		}
		if set != nil {
			*set = true
		}
		return n * mult
	}
	var everySet, scrubSet bool
	e := Env{
		RoundInterval: dur("HEALTH_ROUND_INTERVAL", nil), ProbeTimeout: dur("HEALTH_PROBE_TIMEOUT", nil),
		SlowProbe: dur("HEALTH_SLOW_PROBE", nil), HistoryTTL: dur("HEALTH_HISTORY_TTL", nil),
		AtRiskAlertAfter: dur("AT_RISK_ALERT_AFTER", nil), ReconcileEvery: dur("RECONCILE_EVERY", &everySet),
		ReconcileGrace: dur("RECONCILE_GRACE", nil), DownAfter: count("HEALTH_DOWN_AFTER"), UpAfter: count("HEALTH_UP_AFTER"),
		ScrubMaxBackups: count("SCRUB_MAX_BACKUPS"), RepairMaxBytes: size("REPAIR_MAX_BYTES", nil),
		RedriveMode: get("HEALTH_REDRIVE"), local: get("AWS_ENDPOINT_URL") != "",
	}
	e.ScrubBytes = size("SCRUB_BYTES_PER_RUN", &scrubSet)
	var rerr error
	e.Retention, rerr = LoadRetentionEnv(getenv)
	errs = append(errs, rerr)
	e.reconcileEverySet, e.scrubBytesSet = everySet, scrubSet
	if v := get("HEALTH_SINGLE_ROUND"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("HEALTH_SINGLE_ROUND: %q is not true or false", v))
		}
		e.SingleRound = b
	}
	switch e.RedriveMode {
	case "", RedriveAuto, RedriveMoveTask, RedriveCopy:
	default:
		errs = append(errs, fmt.Errorf("HEALTH_REDRIVE: %q is not auto, move-task or copy", e.RedriveMode))
	}
	return e, errors.Join(errs...)
}

// Config combines the loaded configuration of the health function with
// e: the providers to probe are the policy's that are configured.
func (e Env) Config(c config.Health) Config {
	out := Config{
		Stage: c.Stage, LandingBucket: c.LandingBucket, Queues: c.Queues,
		SingleRound: e.SingleRound, RoundInterval: e.RoundInterval, ProbeTimeout: e.ProbeTimeout,
		DownAfter: e.DownAfter, UpAfter: e.UpAfter, SlowProbe: e.SlowProbe, HistoryTTL: e.HistoryTTL,
		AtRiskAlertAfter: e.AtRiskAlertAfter, ReconcileGrace: e.ReconcileGrace, ScrubMaxBackups: e.ScrubMaxBackups,
		RepairMaxBytes: e.RepairMaxBytes, RedriveMode: e.RedriveMode,
		ReconcileEvery: DefaultReconcileEvery, ScrubBytes: DefaultScrubBytes,
	}
	if e.reconcileEverySet {
		out.ReconcileEvery = e.ReconcileEvery
	}
	if e.scrubBytesSet {
		out.ScrubBytes = e.ScrubBytes
	}
	if out.RedriveMode == "" && e.local {
		out.RedriveMode = RedriveCopy
	}
	for _, p := range c.Policy.Providers {
		if c.Providers.Has(p.Name) {
			out.Providers = append(out.Providers, p.Name)
			if l := c.Locks.For(p.Name); l.On() {
				if out.Immutable == nil {
					out.Immutable = map[string]time.Duration{}
				}
				out.Immutable[p.Name] = l.Retention
			}
		}
	}
	return out
}
