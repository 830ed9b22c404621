package config

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/wedsync/backup-replication/shared/policy"
	"github.com/wedsync/backup-replication/shared/secret"
)

// Provider names, as in the policy table, the catalog and the breakers.
const (
	NameSupabase  = "supabase"
	NameS3        = "s3"
	NameS3Standby = "s3-standby"
	NameGCS       = "gcs"
)

// Providers holds every replica provider's settings. A provider is
// configured when its bucket variable is set.
//
//	SUPABASE_URL            project URL, https://<ref>.supabase.co
//	SUPABASE_BUCKET         bucket for the primary copies
//	SUPABASE_SERVICE_KEY    service_role key (local and tests; a secret)
//	SUPABASE_SECRET_ARN     or: Secrets Manager secret {"url","serviceKey"}
//
//	S3_REPLICA_BUCKET       bucket for the secondary copies
//	S3_REPLICA_REGION       its region (default AWS_REGION)
//	S3_REPLICA_ENDPOINT     S3-compatible endpoint (default AWS_ENDPOINT_URL; empty on AWS)
//	S3_REPLICA_PATH_STYLE   true for path-style addressing (default: true when an endpoint is set)
//	S3_REPLICA_ACCESS_KEY_ID, S3_REPLICA_SECRET_ACCESS_KEY
//	                        static keys for a bucket in another account (default: the function's role)
//	S3_REPLICA_SECRET_ARN   or: Secrets Manager secret {"accessKeyId","secretAccessKey"}
//
//	S3_STANDBY_*            the same six variables for the standby bucket ("s3-standby")
//
//	GCS_BUCKET              bucket for the offsite copies
//	GCS_PROJECT             Google Cloud project (informational; names the failure domain)
//	GCS_ENDPOINT            JSON API endpoint override, e.g. http://127.0.0.1:4443/storage/v1/
//	STORAGE_EMULATOR_HOST   or: the emulator's host:port (Google's convention)
//	GCS_CREDENTIALS_JSON    a Google credentials file's content (a secret)
//	GCS_SECRET_ARN          or: Secrets Manager secret {"credentialsJson"}
//
//	CREDENTIALS_TTL         how long a secret read from Secrets Manager is used before it is
//	                        read again (e.g. 5m; default 0: the credentials package's default)
//
// When a provider's *_SECRET_ARN is set its credentials come from that
// secret (and follow its rotation); the direct values are for local runs
// without Secrets Manager.
type Providers struct {
	Supabase Supabase
	S3       S3
	Standby  S3
	GCS      GCS
	// CredentialsTTL is CREDENTIALS_TTL; 0 means the default.
	CredentialsTTL time.Duration
	// Locks is how each provider writes copies under retention (the same
	// map as Common.Locks), so that the providers built from these
	// settings apply what replicate records as immutable.
	Locks Locks
}

// Supabase is the primary provider's settings.
type Supabase struct {
	URL        string        // SUPABASE_URL
	Bucket     string        // SUPABASE_BUCKET
	ServiceKey secret.Secret // SUPABASE_SERVICE_KEY
	SecretARN  string        // SUPABASE_SECRET_ARN
}

// S3 is an S3 bucket provider's settings (secondary or standby).
type S3 struct {
	Name            string // "s3" or "s3-standby"
	Bucket          string // S3_REPLICA_BUCKET / S3_STANDBY_BUCKET
	Region          string // …_REGION
	Endpoint        string // …_ENDPOINT
	UsePathStyle    bool   // …_PATH_STYLE
	AccessKeyID     string // …_ACCESS_KEY_ID
	SecretAccessKey secret.Secret
	SecretARN       string // …_SECRET_ARN
}

// GCS is the offsite provider's settings.
type GCS struct {
	Bucket          string        // GCS_BUCKET
	Project         string        // GCS_PROJECT
	Endpoint        string        // GCS_ENDPOINT or STORAGE_EMULATOR_HOST
	CredentialsJSON secret.Secret // GCS_CREDENTIALS_JSON
	SecretARN       string        // GCS_SECRET_ARN
}

func loadProviders(r *reader, aws AWS) Providers {
	s3 := func(name, prefix string) S3 {
		c := S3{
			Name:            name,
			Bucket:          r.str(prefix+"BUCKET", ""),
			Region:          r.str(prefix+"REGION", aws.Region),
			Endpoint:        r.url(prefix + "ENDPOINT"),
			AccessKeyID:     r.str(prefix+"ACCESS_KEY_ID", ""),
			SecretAccessKey: r.secret(prefix + "SECRET_ACCESS_KEY"),
			SecretARN:       r.str(prefix+"SECRET_ARN", ""),
		}
		if c.Endpoint == "" {
			c.Endpoint = aws.EndpointURL
		}
		c.UsePathStyle = r.bool(prefix+"PATH_STYLE", c.Endpoint != "")
		return c
	}
	p := Providers{
		Supabase: Supabase{
			URL: r.url("SUPABASE_URL"), Bucket: r.str("SUPABASE_BUCKET", ""),
			ServiceKey: r.secret("SUPABASE_SERVICE_KEY"), SecretARN: r.str("SUPABASE_SECRET_ARN", ""),
		},
		S3:      s3(NameS3, "S3_REPLICA_"),
		Standby: s3(NameS3Standby, "S3_STANDBY_"),
		GCS: GCS{
			Bucket: r.str("GCS_BUCKET", ""), Project: r.str("GCS_PROJECT", ""),
			Endpoint:        r.url("GCS_ENDPOINT"),
			CredentialsJSON: r.secret("GCS_CREDENTIALS_JSON"), SecretARN: r.str("GCS_SECRET_ARN", ""),
		},
		CredentialsTTL: r.duration("CREDENTIALS_TTL", 0),
	}
	if p.GCS.Endpoint == "" {
		p.GCS.Endpoint = r.url("STORAGE_EMULATOR_HOST")
	}
	return p
}

// Configured lists the names of the providers whose bucket is set, in
// the order primary, secondary, offsite, standby.
func (p Providers) Configured() []string {
	var out []string
	for _, c := range []struct {
		name, bucket string
	}{{NameSupabase, p.Supabase.Bucket}, {NameS3, p.S3.Bucket}, {NameGCS, p.GCS.Bucket}, {NameS3Standby, p.Standby.Bucket}} {
		if c.bucket != "" {
			out = append(out, c.name)
		}
	}
	return out
}

// Has reports whether provider name is configured.
func (p Providers) Has(name string) bool { return slices.Contains(p.Configured(), name) }

// Select returns p with only the named providers kept (the others' settings
// cleared), e.g. for a replicate deployment that serves one provider.
func (p Providers) Select(names ...string) Providers {
	out := Providers{CredentialsTTL: p.CredentialsTTL, Locks: p.Locks}
	for _, n := range names {
		switch n {
		case NameSupabase:
			out.Supabase = p.Supabase
		case NameS3:
			out.S3 = p.S3
		case NameS3Standby:
			out.Standby = p.Standby
		case NameGCS:
			out.GCS = p.GCS
		}
	}
	return out
}

// Validate reports every problem of the configured providers, naming the
// variables.
func (p Providers) Validate() error {
	var errs []error
	if s := p.Supabase; s.Bucket != "" {
		if s.URL == "" && s.SecretARN == "" {
			errs = append(errs, errors.New("SUPABASE_URL is required with SUPABASE_BUCKET (or a SUPABASE_SECRET_ARN holding the url)"))
		}
		if s.ServiceKey.IsZero() && s.SecretARN == "" {
			errs = append(errs, errors.New("SUPABASE_SERVICE_KEY or SUPABASE_SECRET_ARN is required with SUPABASE_BUCKET"))
		}
	}
	for _, c := range []struct {
		s      S3
		prefix string
	}{{p.S3, "S3_REPLICA_"}, {p.Standby, "S3_STANDBY_"}} {
		if c.s.Bucket == "" {
			continue
		}
		if c.s.Region == "" {
			errs = append(errs, fmt.Errorf("%sREGION (or AWS_REGION) is required with %sBUCKET", c.prefix, c.prefix))
		}
		if (c.s.AccessKeyID == "") != c.s.SecretAccessKey.IsZero() {
			errs = append(errs, fmt.Errorf("%sACCESS_KEY_ID and %sSECRET_ACCESS_KEY must be set together", c.prefix, c.prefix))
		}
	}
	return errors.Join(errs...)
}

// DefaultPolicy is the 3-2-1 table when POLICY is not set: supabase
// primary, s3 secondary, gcs offsite (always listed, so a missing one shows
// as a missing copy), plus the standby when S3_STANDBY_BUCKET is set.
// Failure domains come from the settings (Supabase host, S3 region, GCS
// project), so two S3 buckets in one region share a domain.
func DefaultPolicy(p Providers, landingRetained bool) policy.Table {
	t := policy.DefaultTable()
	domain := func(v, def string) string {
		if v == "" {
			return def
		}
		return v
	}
	host := ""
	if u, err := url.Parse(p.Supabase.URL); err == nil {
		host = strings.ToLower(u.Host)
	}
	for i := range t.Providers {
		row := &t.Providers[i]
		switch row.Name {
		case NameSupabase:
			row.Domain = domain(host, row.Domain)
		case NameS3:
			row.Domain = domain(p.S3.Region, row.Domain)
		case NameGCS:
			row.Domain = domain(p.GCS.Project, row.Domain)
		}
	}
	if p.Standby.Bucket != "" {
		t.Providers = append(t.Providers, policy.Provider{Name: NameS3Standby, Role: policy.RoleStandby,
			Cloud: policy.CloudAWS, Domain: domain(p.Standby.Region, "standby"), Order: 4})
	}
	t.Landing.Retained = landingRetained
	return t
}
