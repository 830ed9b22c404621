package config

import (
	"strings"
	"testing"

	"github.com/wedsync/backup-replication/shared/keys"
)

func TestKeys(t *testing.T) {
	got, err := Keys(Map(map[string]string{"KEYS_TABLE": "ws191-keys", "KMS_KEY_ID": "alias/ws191/default",
		"KMS_CREATE_ORG_KEYS": "true"}))
	want := keys.Config{Table: "ws191-keys", DefaultKeyID: "alias/ws191/default", AliasPrefix: keys.DefaultAliasPrefix, CreateOrgKeys: true}
	if err != nil || got != want {
		t.Fatalf("Keys = %+v, %v; want %+v", got, err, want)
	}
	got, err = Keys(Map(map[string]string{"KEYS_TABLE": "t", "KMS_KEY_ALIAS_PREFIX": "alias/acme/"}))
	if err != nil || got.AliasPrefix != "alias/acme/" || got.CreateOrgKeys {
		t.Fatalf("Keys = %+v, %v", got, err)
	}
	_, err = Keys(Map(map[string]string{"KMS_CREATE_ORG_KEYS": "sometimes", "KMS_KEY_ALIAS_PREFIX": "acme/"}))
	for _, name := range []string{"KEYS_TABLE", "KMS_CREATE_ORG_KEYS", "KMS_KEY_ALIAS_PREFIX"} {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("error %v does not name %s", err, name)
		}
	}
}
