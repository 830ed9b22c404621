package config

import (
	"strings"
	"testing"
)

func TestLoadSeal(t *testing.T) {
	env := func(over map[string]string) Getenv {
		m := map[string]string{"AWS_REGION": "us-east-1", "LANDING_BUCKET": "landing", "BACKUPS_TABLE": "b",
			"REPLICAS_TABLE": "r", "KEYS_TABLE": "k", "KMS_KEY_ID": "alias/ws191/org-default"}
		for k, v := range over {
			if v == "" {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
		return Map(m)
	}
	c, err := LoadSeal(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.KeepPlaintext || c.Concurrency != DefaultSealConcurrency || c.PartSize != DefaultSealPartSize ||
		c.PartsInFlight != DefaultSealInFlight || c.Keys.Table != "k" || c.Keys.DefaultKeyID != "alias/ws191/org-default" {
		t.Fatalf("defaults: %+v", c)
	}
	c, err = LoadSeal(env(map[string]string{"SEAL_KEEP_PLAINTEXT": "true", "SEAL_PART_SIZE": "8MiB", "QUEUE_URL": "http://q"}))
	if err != nil || !c.KeepPlaintext || c.PartSize != 8<<20 || c.QueueURL != "http://q" {
		t.Fatalf("set: %+v %v", c, err)
	}
	_, err = LoadSeal(env(map[string]string{"LANDING_BUCKET": "", "KEYS_TABLE": "", "KMS_KEY_ID": "",
		"SEAL_PART_SIZE": "1MiB", "SEAL_KEEP_PLAINTEXT": "perhaps", "SEAL_CONCURRENCY": "0"}))
	for _, want := range []string{"LANDING_BUCKET", "KEYS_TABLE", "SEAL_PART_SIZE", "SEAL_KEEP_PLAINTEXT", "SEAL_CONCURRENCY"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s: %v", want, err)
		}
	}
}

func TestLoadSealLiveProgress(t *testing.T) {
	c, err := LoadSeal(Map(map[string]string{"AWS_REGION": "us-east-1", "LANDING_BUCKET": "landing", "BACKUPS_TABLE": "b",
		"REPLICAS_TABLE": "r", "KEYS_TABLE": "k", "KMS_KEY_ID": "alias/ws191/org-default",
		"WS_ENDPOINT": "https://abc.execute-api.us-east-1.amazonaws.com/prod", "CONNECTIONS_TABLE": "conns"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.WSEndpoint != "https://abc.execute-api.us-east-1.amazonaws.com/prod" || c.Tables.Connections != "conns" {
		t.Fatalf("live progress settings not read: endpoint %q, connections %q", c.WSEndpoint, c.Tables.Connections)
	}
}
