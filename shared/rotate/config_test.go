package rotate_test

import (
	"strings"
	"testing"

	"github.com/wedsync/backup-replication/shared/config"
	"github.com/wedsync/backup-replication/shared/rotate"
)

// TestLoadEnv: every problem is reported at once, naming its variable.
func TestLoadEnv(t *testing.T) {
	ok := map[string]string{"AWS_REGION": "eu-west-2", "S3_REPLICA_BUCKET": "b", "S3_REPLICA_SECRET_ARN": "arn:s3",
		"S3_REPLICATION_USER": "u", "GCS_BUCKET": "g", "GCS_SECRET_ARN": "arn:gcs", "ROTATE_TEST_ATTEMPTS": "3",
		"ROTATE_TEST_WAIT": "2s", "ROTATE_RETIRE": "immediate"}
	c, err := rotate.LoadEnv(config.Map(ok))
	if err != nil || c.S3User != "u" || c.Probing.Attempts != 3 || !c.Handler.RetireImmediately {
		t.Fatalf("LoadEnv = %+v, %v", c, err)
	}
	_, err = rotate.LoadEnv(config.Map(map[string]string{"S3_REPLICA_SECRET_ARN": "arn:s3", "S3_REPLICA_REGION": "x",
		"ROTATE_TEST_WAIT": "soon", "ROTATE_RETIRE": "never"}))
	for _, want := range []string{"S3_REPLICA_BUCKET", "ROTATE_TEST_WAIT", "ROTATE_RETIRE"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("LoadEnv error %v does not name %s", err, want)
		}
	}
	if _, err := rotate.LoadEnv(config.Map(nil)); err == nil || !strings.Contains(err.Error(), "nothing to rotate") {
		t.Errorf("no secret configured: %v", err)
	}
}
