package credentials_test

import (
	"strings"
	"testing"

	"github.com/wedsync/backup-replication/shared/credentials"
	"github.com/wedsync/backup-replication/shared/secret"
)

// FuzzParseSecrets feeds arbitrary secret strings to the three parsers:
// no panic, and an error never quotes a long stretch of the value.
func FuzzParseSecrets(f *testing.F) {
	for _, s := range []string{
		`{"accessKeyId":"AKIA1","secretAccessKey":"s"}`, `{"roleArn":"arn:aws:iam::1:role/r"}`,
		`{"type":"service_account","client_email":"a@b","private_key_id":"k"}`,
		`{"credentialsJson":"{\"type\":\"service_account\"}"}`, `{"url":"https://x.supabase.co","serviceKey":"k"}`,
		``, `null`, `[]`, `{"credentialsJson":1}`, `{"url":"ftp://x","serviceKey":"k"}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v := secret.Secret(s)
		for _, parse := range []func(secret.Secret) error{
			func(v secret.Secret) error { _, err := credentials.ParseS3(v); return err },
			func(v secret.Secret) error { _, err := credentials.ParseGCS(v); return err },
			func(v secret.Secret) error { _, err := credentials.ParseSupabase(v); return err },
		} {
			err := parse(v)
			if err == nil || len(s) < 12 || !strings.Contains(err.Error(), s) {
				continue
			}
			// A value that is itself a piece of the parser's own words
			// (`{"accessKeyI` is in the message describing the format) is
			// not quoted from the secret: the message for a value that
			// shares nothing with it says the same.
			if neutral := parse(secret.Secret("-")); neutral != nil && strings.Contains(neutral.Error(), s) {
				continue
			}
			t.Fatalf("the error quotes the secret: %v", err)
		}
	})
}
