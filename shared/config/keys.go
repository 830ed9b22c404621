package config

import (
	"errors"

	"github.com/wedsync/backup-replication/shared/keys"
)

// Keys reads the envelope-key settings (package keys) and validates them:
//
//	KEYS_TABLE            DynamoDB table of wrapped data keys (required)
//	KMS_KEY_ID            KMS key (id, ARN or alias) for organisations without their own key;
//	                      required unless KMS_CREATE_ORG_KEYS=true
//	KMS_KEY_ALIAS_PREFIX  prefix of an organisation's own key alias (default "alias/ws191/org/")
//	KMS_CREATE_ORG_KEYS   true: create an organisation's key and alias on first use (default false)
//
// A function that seals, restores or erases calls it beside its own loader.
func Keys(getenv Getenv) (keys.Config, error) {
	r := &reader{get: getenv}
	c := r.keys()
	return c, errors.Join(r.err(), c.Validate())
}

// keys reads the variables of Keys without validating them, for a loader
// that embeds keys.Config and validates it with the rest.
func (r *reader) keys() keys.Config {
	return keys.Config{
		Table:         r.str("KEYS_TABLE", ""),
		DefaultKeyID:  r.str("KMS_KEY_ID", ""),
		AliasPrefix:   r.str("KMS_KEY_ALIAS_PREFIX", keys.DefaultAliasPrefix),
		CreateOrgKeys: r.bool("KMS_CREATE_ORG_KEYS", false),
	}
}
