package config

import (
	"errors"
	"fmt"

	"github.com/wedsync/backup-replication/shared/keys"
)

// Seal is functions/seal's configuration. Besides Common and the envelope
// keys (see Keys: KEYS_TABLE, KMS_KEY_ID, KMS_KEY_ALIAS_PREFIX,
// KMS_CREATE_ORG_KEYS):
//
//	SEAL_KEEP_PLAINTEXT     true keeps the plaintext landing object after sealing (default false: deleted)
//	SEAL_CONCURRENCY        records of one SQS batch sealed at once (default 2)
//	SEAL_PART_SIZE          part size of the sealed object's multipart upload, e.g. 16MiB (default 16MiB, at least 5MiB)
//	SEAL_PARTS_IN_FLIGHT    parts uploaded at once per record (default 2)
//	QUEUE_URL               the seal queue (visibility timeouts of failed messages)
//	WS_ENDPOINT             (Common) API Gateway Management API endpoint for live seal progress; empty: none
//	CONNECTIONS_TABLE       (Common) WebSocket connections table, whose subscribers get that progress
//
// Required: LANDING_BUCKET, BACKUPS_TABLE, REPLICAS_TABLE (the catalog's
// pair), KEYS_TABLE; and a KMS key for each organisation (KMS_KEY_ID, its
// alias, or KMS_CREATE_ORG_KEYS=true: see package keys).
type Seal struct {
	Common
	Keys          keys.Config
	KeepPlaintext bool
	Concurrency   int
	PartSize      int64
	PartsInFlight int
	QueueURL      string
}

// Defaults of Seal.
const (
	DefaultSealConcurrency = 2
	DefaultSealPartSize    = 16 << 20
	DefaultSealInFlight    = 2
	// MinSealPartSize is S3's smallest part (all but the last).
	MinSealPartSize = 5 << 20
)

// LoadSeal reads and validates the seal function's variables.
func LoadSeal(getenv Getenv) (Seal, error) {
	c, err := LoadCommon(getenv)
	r := &reader{get: getenv}
	out := Seal{
		Common:        c,
		Keys:          r.keys(),
		KeepPlaintext: r.bool("SEAL_KEEP_PLAINTEXT", false),
		Concurrency:   r.int("SEAL_CONCURRENCY", DefaultSealConcurrency),
		PartSize:      r.size("SEAL_PART_SIZE", DefaultSealPartSize),
		PartsInFlight: r.int("SEAL_PARTS_IN_FLIGHT", DefaultSealInFlight),
		QueueURL:      r.str("QUEUE_URL", ""),
	}
	return out, errors.Join(err, r.err(), out.Validate())
}

// Validate reports every missing or inconsistent setting, naming variables.
func (c Seal) Validate() error {
	errs := []error{require("LANDING_BUCKET", c.LandingBucket, "BACKUPS_TABLE", c.Tables.Backups,
		"REPLICAS_TABLE", c.Tables.Replicas), c.Keys.Validate()}
	if c.Concurrency < 1 || c.Concurrency > 16 {
		errs = append(errs, fmt.Errorf("SEAL_CONCURRENCY %d is outside 1..16", c.Concurrency))
	}
	if c.PartSize < MinSealPartSize || c.PartSize > 5<<30 {
		errs = append(errs, fmt.Errorf("SEAL_PART_SIZE %d is outside 5MiB..5GiB (S3's part sizes)", c.PartSize))
	}
	if c.PartsInFlight < 1 || c.PartsInFlight > 16 {
		errs = append(errs, fmt.Errorf("SEAL_PARTS_IN_FLIGHT %d is outside 1..16", c.PartsInFlight))
	}
	return errors.Join(errs...)
}
