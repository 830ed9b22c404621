package replicate

import (
	"errors"
	"strings"
	"testing"
)

const sampleEvent = `{"version":"0","id":"17793124-05d4-b198-2fde-7ededc63b103","detail-type":"Object Created",
"source":"aws.s3","account":"123456789012","time":"2026-06-01T12:00:00Z","region":"eu-west-2",
"resources":["arn:aws:s3:::ws191-landing"],"detail":{"version":"0","bucket":{"name":"ws191-landing"},
"object":{"key":"backups/org_42/01J0ABCDEF","size":5242880,"etag":"\"b1946ac92492d2347c6235b4d2611184\"","sequencer":"00617F08299329D189"},
"request-id":"N4N7GDK58NMKJ12R","requester":"123456789012","source-ip-address":"1.2.3.4","reason":"PutObject"}}`

func TestParseEvent(t *testing.T) {
	ev, err := ParseEvent(sampleEvent)
	if err != nil {
		t.Fatal(err)
	}
	want := ObjectEvent{Bucket: "ws191-landing", Key: "backups/org_42/01J0ABCDEF", Size: 5242880,
		ETag: "b1946ac92492d2347c6235b4d2611184", OrganizationID: "org_42", BackupID: "01J0ABCDEF"}
	if ev != want {
		t.Fatalf("got %+v\nwant %+v", ev, want)
	}
	if ev.ReplicaKey() != ev.Key {
		t.Errorf("replica key %q, want the landing key", ev.ReplicaKey())
	}
}

// A sealed object's event names the ciphertext in the landing bucket; its
// copies keep the backup's key.
func TestParseSealedEvent(t *testing.T) {
	ev, err := ParseEvent(strings.Replace(sampleEvent, "backups/org_42/", "sealed/org_42/", 1))
	if err != nil {
		t.Fatal(err)
	}
	want := ObjectEvent{Bucket: "ws191-landing", Key: "sealed/org_42/01J0ABCDEF", Size: 5242880,
		ETag: "b1946ac92492d2347c6235b4d2611184", OrganizationID: "org_42", BackupID: "01J0ABCDEF", Sealed: true}
	if ev != want {
		t.Fatalf("got %+v\nwant %+v", ev, want)
	}
	if ev.ReplicaKey() != "backups/org_42/01J0ABCDEF" {
		t.Errorf("replica key %q", ev.ReplicaKey())
	}
	for _, key := range []string{"sealed/org/", "sealed//id", "sealed/org/id/x", "sealed/../id", "sealedx/org/id"} {
		_, err := ParseEvent(strings.Replace(sampleEvent, "backups/org_42/01J0ABCDEF", key, 1))
		if !errors.Is(err, errMalformed) {
			t.Errorf("key %q: %v", key, err)
		}
	}
}

func TestParseKey(t *testing.T) {
	cases := map[string]bool{
		"backups/org/id":      true,
		"backups/org/":        false,
		"backups//id":         false,
		"backups/org/id/more": false,
		"backup/org/id":       false,
		"backups/../id":       false,
		"backups/org/..":      false,
		"_health/canary-1":    false,
		"":                    false,
		"backups/o\xffrg/id":  false,
	}
	for key, ok := range cases {
		_, _, err := ParseKey(key)
		if (err == nil) != ok {
			t.Errorf("ParseKey(%q) = %v", key, err)
		}
		if err != nil && !errors.Is(err, errMalformed) {
			t.Errorf("ParseKey(%q) error %v is not errMalformed", key, err)
		}
	}
}

// FuzzParseEvent: whatever the body, ParseEvent neither panics nor accepts
// an event whose fields a handler could not use.
func FuzzParseEvent(f *testing.F) {
	f.Add(sampleEvent)
	f.Add(``)
	f.Add(`null`)
	f.Add(`{"source":"aws.s3","detail-type":"Object Created","detail":{"bucket":{"name":"b"},"object":{"key":"backups/a/b","size":0}}}`)
	f.Add(strings.Replace(sampleEvent, "5242880", "-1", 1))
	f.Add(strings.Replace(sampleEvent, "org_42", "..", 1))
	f.Add(strings.Replace(sampleEvent, "backups/", "sealed/", 1))
	f.Fuzz(func(t *testing.T, body string) {
		ev, err := ParseEvent(body)
		if err != nil {
			if !errors.Is(err, errMalformed) {
				t.Fatalf("error %v does not mark the message malformed", err)
			}
			return
		}
		prefix := LandingPrefix
		if ev.Sealed {
			prefix = SealedPrefix
		}
		if ev.Bucket == "" || ev.Size < 0 || ev.OrganizationID == "" || ev.BackupID == "" ||
			ev.Key != prefix+ev.OrganizationID+"/"+ev.BackupID || ev.ReplicaKey() != LandingPrefix+ev.OrganizationID+"/"+ev.BackupID {
			t.Fatalf("accepted %+v", ev)
		}
	})
}
