// Package config is the one place that reads the environment. Each function
// calls one loader (LoadReplicate, LoadAPI, LoadHealth) at start; the
// loader reads every variable into typed structs, applies defaults, and
// reports every problem at once with errors.Join, each naming its variable.
// No other package reads the environment: packages take these structs (or
// their own Config built from them).
//
// The variables every function reads (Common):
//
//	STAGE               deployment name, for logs (default "local")
//	LOG_LEVEL           debug | info | warn | error (default info)
//	AWS_REGION          region of the function's own AWS resources (set by Lambda)
//	AWS_ENDPOINT_URL    one endpoint for every AWS client (moto locally); empty on AWS
//	LANDING_BUCKET      the bucket uploads land in
//	LANDING_RETAINED    true when the landing bucket keeps objects (the copy then counts); default false
//	BACKUPS_TABLE       DynamoDB table of backups      (catalog; see shared/catalog/dynamo_tables.go)
//	REPLICAS_TABLE      DynamoDB table of replicas
//	BREAKERS_TABLE      DynamoDB table of circuit breakers (shared/breaker)
//	HEALTH_TABLE        DynamoDB table of health history
//	CONNECTIONS_TABLE   DynamoDB table of WebSocket connections
//	WS_ENDPOINT         API Gateway Management API endpoint for progress pushes; empty: none
//	POLICY              the 3-2-1 table as JSON (policy.ParseTable); default: built from the providers below
//
// the providers' variables (see Providers), and how providers write copies
// under retention, so that they are immutable (issue 5 §6; see Locks):
//
//	S3_REPLICA_OBJECT_LOCK_RETENTION   S3 Object Lock retention of every copy written, e.g. 720h or 30d
//	                                   (the bucket must have object lock enabled); empty: none
//	S3_REPLICA_OBJECT_LOCK_MODE        GOVERNANCE (default) or COMPLIANCE
//	S3_STANDBY_OBJECT_LOCK_RETENTION, S3_STANDBY_OBJECT_LOCK_MODE   the same for the standby bucket
//	GCS_RETENTION                      GCS object retention of every copy written, e.g. 30d
//	                                   (the bucket must have object retention enabled); empty: none
//	GCS_RETENTION_MODE                 Unlocked (default) or Locked
//
// Durations are Go durations (90m, 720h) or whole days (30d), at most 100
// years. A mode without its retention is an error.
//
// The providers' circuit breakers are shared by every function, which must
// all read the same settings (see Breakers):
//
//	BREAKER_TRIP_AFTER     consecutive failures that open a provider's breaker (1..1000, default 5)
//	BREAKER_TIMEOUT        how long it stays open before one trial goes through (1s..24h, default 60s)
//	BREAKER_MAX_REQUESTS   trials while half-open, all of which must succeed to close it (1..100, default 1)
//	BREAKER_INTERVAL       how often a closed breaker forgets its counts (default 0: never)
//	BREAKER_TRIAL_LEASE    the longest a trial holds its slot when its outcome never comes (1s..1h, default 15m)
package config

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"

	"github.com/wedsync/backup-replication/shared/breaker"
	"github.com/wedsync/backup-replication/shared/policy"
	"github.com/wedsync/backup-replication/shared/secret"
)

// Getenv looks a variable up; os.Getenv in production, a map in tests.
type Getenv func(name string) string

// OS is the process environment.
var OS Getenv = os.Getenv

// Map is a Getenv over a fixed map (tests, the local stack).
func Map(m map[string]string) Getenv { return func(k string) string { return m[k] } }

// AWS is how the function's AWS clients are built.
type AWS struct {
	// Region is AWS_REGION (falls back to AWS_DEFAULT_REGION).
	Region string
	// EndpointURL is AWS_ENDPOINT_URL: when set, every AWS client (S3,
	// DynamoDB, SQS, …) talks to it, as the local stack's moto_server.
	EndpointURL string
}

// Tables names the DynamoDB tables.
type Tables struct {
	Backups     string // BACKUPS_TABLE
	Replicas    string // REPLICAS_TABLE
	Breakers    string // BREAKERS_TABLE
	Health      string // HEALTH_TABLE
	Connections string // CONNECTIONS_TABLE
}

// Common is what every function reads.
type Common struct {
	Stage           string     // STAGE
	LogLevel        slog.Level // LOG_LEVEL
	AWS             AWS
	LandingBucket   string // LANDING_BUCKET
	LandingRetained bool   // LANDING_RETAINED
	Tables          Tables
	Providers       Providers
	// Policy is POLICY parsed, or DefaultPolicy(Providers, LandingRetained).
	Policy     policy.Table
	WSEndpoint string // WS_ENDPOINT
	// Locks is how each provider writes copies under retention.
	Locks Locks
	// Breakers is how the shared circuit breakers behave.
	Breakers Breakers
}

// Breakers are the settings every process sharing the providers' circuit
// breakers must agree on (shared/breaker.Settings). Zero fields take
// shared/breaker's defaults.
type Breakers struct {
	TripAfter   int           // BREAKER_TRIP_AFTER
	Timeout     time.Duration // BREAKER_TIMEOUT
	MaxRequests int           // BREAKER_MAX_REQUESTS
	Interval    time.Duration // BREAKER_INTERVAL
	TrialLease  time.Duration // BREAKER_TRIAL_LEASE
}

// Settings returns provider name's breaker settings, logging to logger.
func (b Breakers) Settings(name string, logger *slog.Logger) breaker.Settings {
	s := breaker.Settings{Name: name, Logger: logger, Timeout: b.Timeout, MaxRequests: uint32(b.MaxRequests),
		Interval: b.Interval, TrialLease: b.TrialLease}
	if n := uint32(b.TripAfter); n > 0 {
		s.ReadyToTrip = func(c breaker.Counts) bool { return c.ConsecutiveFailures >= n }
	}
	return s
}

func loadBreakers(r *reader) Breakers {
	// -1 marks a variable not set: 0 is then the breaker's default, and a
	// value set is checked against its range.
	b := Breakers{TripAfter: r.int("BREAKER_TRIP_AFTER", -1), Timeout: r.duration("BREAKER_TIMEOUT", -1),
		MaxRequests: r.int("BREAKER_MAX_REQUESTS", -1), Interval: r.duration("BREAKER_INTERVAL", 0),
		TrialLease: r.duration("BREAKER_TRIAL_LEASE", -1)}
	b.TripAfter = within(r, "BREAKER_TRIP_AFTER", b.TripAfter, 1, 1000)
	b.MaxRequests = within(r, "BREAKER_MAX_REQUESTS", b.MaxRequests, 1, 100)
	b.Timeout = within(r, "BREAKER_TIMEOUT", b.Timeout, time.Second, 24*time.Hour)
	b.TrialLease = within(r, "BREAKER_TRIAL_LEASE", b.TrialLease, time.Second, time.Hour)
	return b
}

// Lock is how one provider writes every copy under retention: S3 Object
// Lock (Mode GOVERNANCE or COMPLIANCE) or GCS object retention (Mode
// Unlocked or Locked), until Retention after the write. The zero Lock
// writes no retention.
type Lock struct {
	Mode      string
	Retention time.Duration
}

// On reports whether copies are written under retention.
func (l Lock) On() bool { return l.Retention > 0 }

// Locks are the providers' Locks by provider name (NameS3, NameS3Standby,
// NameGCS); Supabase Storage has no object lock. The same settings must
// reach the providers (s3.Config.ObjectLockMode/ObjectLockRetention,
// gcs.Config.Retention/RetentionMode) and the functions that record
// copies as immutable (replicate, health repairs).
type Locks map[string]Lock

// For returns provider name's Lock (the zero Lock when it has none).
func (l Locks) For(name string) Lock { return l[name] }

// maxRetention bounds a lock's retention: S3 allows 100 years.
const maxRetention = 100 * 365 * 24 * time.Hour

// loadLocks reads each provider's lock settings; modes are checked here,
// where the variable's name is known.
func loadLocks(r *reader) Locks {
	out := Locks{}
	for _, c := range []struct {
		name, retention, mode, def string
		modes                      []string
	}{
		{NameS3, "S3_REPLICA_OBJECT_LOCK_RETENTION", "S3_REPLICA_OBJECT_LOCK_MODE", "GOVERNANCE", []string{"GOVERNANCE", "COMPLIANCE"}},
		{NameS3Standby, "S3_STANDBY_OBJECT_LOCK_RETENTION", "S3_STANDBY_OBJECT_LOCK_MODE", "GOVERNANCE", []string{"GOVERNANCE", "COMPLIANCE"}},
		{NameGCS, "GCS_RETENTION", "GCS_RETENTION_MODE", "Unlocked", []string{"Unlocked", "Locked"}},
	} {
		ret := r.retention(c.retention)
		mode := r.str(c.mode, "")
		switch {
		case mode != "" && !slices.Contains(c.modes, mode):
			r.fail(c.mode, "%q is not %s", mode, strings.Join(c.modes, " or "))
			continue
		case mode != "" && ret == 0:
			r.fail(c.mode, "is set without %s", c.retention)
			continue
		case ret == 0:
			continue
		case mode == "":
			mode = c.def
		}
		out[c.name] = Lock{Mode: mode, Retention: ret}
	}
	return out
}

// LoadCommon reads the variables every function shares. It checks that
// values parse; what a function requires, its own loader checks.
func LoadCommon(getenv Getenv) (Common, error) {
	r := &reader{get: getenv}
	c := Common{
		Stage:           r.str("STAGE", "local"),
		LogLevel:        r.level("LOG_LEVEL"),
		AWS:             AWS{Region: r.str("AWS_REGION", r.str("AWS_DEFAULT_REGION", "")), EndpointURL: r.url("AWS_ENDPOINT_URL")},
		LandingBucket:   r.str("LANDING_BUCKET", ""),
		LandingRetained: r.bool("LANDING_RETAINED", false),
		Tables: Tables{
			Backups: r.str("BACKUPS_TABLE", ""), Replicas: r.str("REPLICAS_TABLE", ""), Breakers: r.str("BREAKERS_TABLE", ""),
			Health: r.str("HEALTH_TABLE", ""), Connections: r.str("CONNECTIONS_TABLE", ""),
		},
		WSEndpoint: r.url("WS_ENDPOINT"),
	}
	c.Providers = loadProviders(r, c.AWS)
	c.Locks = loadLocks(r)
	c.Providers.Locks = c.Locks
	c.Breakers = loadBreakers(r)
	if raw := r.str("POLICY", ""); raw != "" {
		t, err := policy.ParseTable([]byte(raw))
		if err != nil {
			r.fail("POLICY", "%v", err)
		}
		c.Policy = t
	} else {
		c.Policy = DefaultPolicy(c.Providers, c.LandingRetained)
		if c.AWS.Region != "" {
			c.Policy.Landing.Domain = c.AWS.Region
		}
	}
	return c, r.err()
}

// require reports each named value that is empty.
func require(pairs ...string) error {
	var errs []error
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] == "" {
			errs = append(errs, fmt.Errorf("%s is required", pairs[i]))
		}
	}
	return errors.Join(errs...)
}

// reader reads variables and collects every parse problem.
type reader struct {
	get  Getenv
	errs []error
}

func (r *reader) fail(name, format string, args ...any) {
	r.errs = append(r.errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...)))
}

func (r *reader) err() error { return errors.Join(r.errs...) }

func (r *reader) str(name, def string) string {
	if v := strings.TrimSpace(r.get(name)); v != "" {
		return v
	}
	return def
}

func (r *reader) secret(name string) secret.Secret {
	return secret.Secret(strings.TrimSpace(r.get(name)))
}

func (r *reader) bool(name string, def bool) bool {
	v := r.str(name, "")
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		r.fail(name, "%q is not true or false", v)
		return def
	}
	return b
}

func (r *reader) int(name string, def int) int {
	v := r.str(name, "")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		r.fail(name, "%q is not a non-negative whole number", v)
		return def
	}
	return n
}

// size reads a byte count: digits with an optional KiB, MiB or GiB suffix.
func (r *reader) size(name string, def int64) int64 {
	v := r.str(name, "")
	if v == "" {
		return def
	}
	mult := int64(1)
	for suffix, m := range map[string]int64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
		if s, ok := strings.CutSuffix(v, suffix); ok {
			v, mult = strings.TrimSpace(s), m
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		r.fail(name, "%q is not a byte count (e.g. 33554432 or 32MiB)", r.get(name))
		return def
	}
	return n * mult
}

func (r *reader) duration(name string, def time.Duration) time.Duration {
	v := r.str(name, "")
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		r.fail(name, "%q is not a duration (e.g. 15m)", v)
		return def
	}
	return d
}

// within returns v, or 0 (the default) when v is -1 (not set) or outside
// lo..hi, which it reports.
func within[T int | time.Duration](r *reader, name string, v, lo, hi T) T {
	if v == -1 {
		return 0
	}
	if v < lo || v > hi {
		r.fail(name, "%v is outside %v..%v", v, lo, hi)
		return 0
	}
	return v
}

// retention reads a positive lock retention: a Go duration or whole days
// ("30d"), at most maxRetention; empty is 0.
func (r *reader) retention(name string) time.Duration {
	v := r.str(name, "")
	if v == "" {
		return 0
	}
	d, err := time.ParseDuration(v)
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, nerr := strconv.Atoi(days)
		d, err = time.Duration(min(max(n, 0), 100*366))*24*time.Hour, nerr
	}
	if err != nil || d <= 0 || d > maxRetention {
		r.fail(name, "%q is not a retention between 1s and 100 years (e.g. 720h or 30d)", v)
		return 0
	}
	return d
}

// url reads an http(s) URL; a value without a scheme is read as http://.
func (r *reader) url(name string) string {
	v := r.str(name, "")
	if v == "" {
		return ""
	}
	return r.checkURL(name, v)
}

func (r *reader) checkURL(name, v string) string {
	if !strings.Contains(v, "://") {
		v = "http://" + v
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "wss") || u.Host == "" {
		r.fail(name, "%q is not an http(s) URL", v)
		return ""
	}
	return strings.TrimRight(v, "/")
}

func (r *reader) level(name string) slog.Level {
	v := r.str(name, "info")
	var l slog.Level
	if err := l.UnmarshalText([]byte(v)); err != nil {
		r.fail(name, "%q is not debug, info, warn or error", v)
		return slog.LevelInfo
	}
	return l
}

// Config builds the AWS SDK configuration every client of the function
// shares: the SDK's default credential chain (the Lambda role; the
// AWS_ACCESS_KEY_ID pair locally), a.Region, and a.EndpointURL as the base
// endpoint of every service when set.
func (a AWS) Config(ctx context.Context) (aws.Config, error) {
	cfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(a.Region))
	if err != nil {
		return aws.Config{}, fmt.Errorf("AWS configuration: %w", err)
	}
	if a.EndpointURL != "" {
		cfg.BaseEndpoint = aws.String(a.EndpointURL)
	}
	return cfg, nil
}
