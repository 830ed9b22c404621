package credentials_test

import (
	"strings"
	"testing"

	"github.com/wedsync/backup-replication/infra/emulator"
	"github.com/wedsync/backup-replication/shared/credentials"
	"github.com/wedsync/backup-replication/shared/credentials/credtest"
	"github.com/wedsync/backup-replication/shared/secret"
	"github.com/wedsync/backup-replication/shared/storage/gcs"
)

// TestGCSSecretWithoutCredentials: the local stack stores
// {"credentialsJson": ""} for an emulator that needs no authentication. With
// an emulator endpoint configured that builds a working provider; without
// one (real GCS) it is refused at start rather than falling back to
// Application Default Credentials; malformed credentials are refused either way.
func TestGCSSecretWithoutCredentials(t *testing.T) {
	w := newWorld(t)
	fake, err := emulator.StartGCS()
	emulator.Require(t, err)
	t.Cleanup(func() { fake.Close() })
	if err := fake.CreateBucket("offsite"); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		value    string
		endpoint string
		works    bool
	}{
		{"empty credentialsJson, emulator", `{"credentialsJson":""}`, fake.URL, true},
		{"empty object, emulator", `{}`, fake.URL, true},
		{"null credentialsJson, emulator", `{"credentialsJson":null}`, fake.URL, true},
		{"empty credentialsJson, real GCS", `{"credentialsJson":""}`, "", false},
		{"empty object, real GCS", `{}`, "", false},
		{"malformed credentialsJson, emulator", `{"credentialsJson":"not a key file"}`, fake.URL, false},
		{"unknown field, emulator", `{"credentialsJson":"","keyFile":"x"}`, fake.URL, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			arn := w.Secret(secret.Secret(tc.value))
			p, err := credentials.Provider(t.Context(), "gcs", arn, w.loader(nil),
				credentials.GCS(gcs.Config{Name: "gcs", Bucket: "offsite", Endpoint: tc.endpoint}, nil), nil)
			if !tc.works {
				if err == nil {
					t.Fatal("built a provider from a secret without usable credentials")
				}
				if !strings.Contains(err.Error(), "provider gcs") {
					t.Errorf("error does not name the provider: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := credtest.RoundTrip(t.Context(), p, "no-auth/"+tc.name+".bin", credtest.RandomBytes(2000)); err != nil {
				t.Fatal(err)
			}
		})
	}
}
