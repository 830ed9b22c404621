package replicate

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// LandingPrefix starts every landing key: backups/{organizationId}/{backupId}.
// Provider copies are stored under the same key.
const LandingPrefix = "backups/"

// SealedPrefix starts the key of a sealed landing object,
// sealed/{organizationId}/{backupId}: the ciphertext the seal step writes
// in the landing bucket, which is what replicate copies (issue 8).
const SealedPrefix = "sealed/"

// ObjectEvent is what replicate needs from an EventBridge "Object Created"
// event of the landing bucket.
type ObjectEvent struct {
	Bucket string
	// Key is the object's key in the landing bucket, as the event names it:
	// the plaintext landing key, or the sealed object's key when Sealed.
	Key  string
	Size int64
	ETag string
	// OrganizationID and BackupID are parsed from Key.
	OrganizationID string
	BackupID       string
	// Sealed says Key is a sealed object (sealed/{org}/{id}).
	Sealed bool
}

// ReplicaKey is the key the copies of the event's backup have on every
// provider: backups/{organizationId}/{backupId}, whether the event names
// the plaintext landing object or the sealed one.
func (e ObjectEvent) ReplicaKey() string {
	return LandingPrefix + e.OrganizationID + "/" + e.BackupID
}

// eventBridgeS3 is the part of the EventBridge S3 event we read; every
// other field is ignored.
type eventBridgeS3 struct {
	Source     string `json:"source"`
	DetailType string `json:"detail-type"`
	Detail     struct {
		Bucket struct {
			Name string `json:"name"`
		} `json:"bucket"`
		Object struct {
			Key  string `json:"key"`
			Size *int64 `json:"size"`
			ETag string `json:"etag"`
		} `json:"object"`
	} `json:"detail"`
}

// objectCreated is the whole EventBridge S3 "Object Created" event that
// ObjectCreated writes (eventBridgeS3 is the part ParseEvent reads).
type objectCreated struct {
	Version    string   `json:"version"`
	ID         string   `json:"id"`
	DetailType string   `json:"detail-type"`
	Source     string   `json:"source"`
	Time       string   `json:"time"`
	Resources  []string `json:"resources"`
	Detail     struct {
		Version string `json:"version"`
		Bucket  struct {
			Name string `json:"name"`
		} `json:"bucket"`
		Object struct {
			Key  string `json:"key"`
			Size int64  `json:"size"`
			ETag string `json:"etag,omitempty"`
		} `json:"object"`
		RequestID string `json:"request-id"`
		Requester string `json:"requester"`
		Reason    string `json:"reason"`
	} `json:"detail"`
}

// ObjectCreated is the SQS body EventBridge delivers for an S3 "Object
// Created" event of key (size bytes, ETag etag, "" when unknown) in
// bucket at at, as ParseEvent reads it; reason is detail.reason, who
// asked ("PutObject", "HealthReconcile"…). Health's reconcile puts it on a
// queue to ask for a copy again; tests and benchmarks play EventBridge
// with it.
func ObjectCreated(bucket, key string, size int64, etag, reason string, at time.Time) string {
	var e objectCreated
	e.Version, e.ID, e.DetailType, e.Source = "0", uuid.NewString(), "Object Created", "aws.s3"
	e.Time, e.Resources = at.UTC().Format(time.RFC3339), []string{"arn:aws:s3:::" + bucket}
	e.Detail.Version, e.Detail.Bucket.Name = "0", bucket
	e.Detail.Object.Key, e.Detail.Object.Size, e.Detail.Object.ETag = key, size, strings.Trim(etag, `"`)
	e.Detail.RequestID, e.Detail.Requester, e.Detail.Reason = uuid.NewString(), "ws191", reason
	b, _ := json.Marshal(e)
	return string(b)
}

// errMalformed marks a message that can never be processed, whatever is
// retried: bad JSON, another event type, a key that is not a landing key.
var errMalformed = errors.New("malformed message")

// maxBody bounds what ParseEvent reads; an EventBridge event is at most 256 KiB.
const maxBody = 256 << 10

// ParseEvent reads an SQS message body carrying an EventBridge S3 "Object
// Created" event and checks that its key is a landing key
// (backups/{org}/{id}) or a sealed object's key (sealed/{org}/{id}, Sealed
// set). Every failure wraps errMalformed. It never panics, whatever the body.
func ParseEvent(body string) (ObjectEvent, error) {
	if len(body) > maxBody {
		return ObjectEvent{}, fmt.Errorf("%w: body of %d bytes", errMalformed, len(body))
	}
	var e eventBridgeS3
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		return ObjectEvent{}, fmt.Errorf("%w: not an EventBridge event: %v", errMalformed, err)
	}
	if e.Source != "aws.s3" || e.DetailType != "Object Created" {
		return ObjectEvent{}, fmt.Errorf("%w: event %q from %q, want \"Object Created\" from \"aws.s3\"",
			errMalformed, clip(e.DetailType), clip(e.Source))
	}
	o := e.Detail.Object
	if e.Detail.Bucket.Name == "" || o.Key == "" {
		return ObjectEvent{}, fmt.Errorf("%w: bucket or key missing", errMalformed)
	}
	if o.Size == nil || *o.Size < 0 {
		return ObjectEvent{}, fmt.Errorf("%w: object size missing or negative", errMalformed)
	}
	sealed := strings.HasPrefix(o.Key, SealedPrefix)
	prefix := LandingPrefix
	if sealed {
		prefix = SealedPrefix
	}
	org, id, err := splitKey(o.Key, prefix)
	if err != nil {
		return ObjectEvent{}, fmt.Errorf("%w: key %q is neither %s{organizationId}/{backupId} nor %s{organizationId}/{backupId}",
			errMalformed, clip(o.Key), LandingPrefix, SealedPrefix)
	}
	return ObjectEvent{Bucket: e.Detail.Bucket.Name, Key: o.Key, Size: *o.Size, ETag: strings.Trim(o.ETag, `"`),
		OrganizationID: org, BackupID: id, Sealed: sealed}, nil
}

// ParseKey splits a landing key backups/{organizationId}/{backupId}.
func ParseKey(key string) (organizationID, backupID string, err error) {
	return splitKey(key, LandingPrefix)
}

// ParseSealedKey splits a sealed object's key sealed/{organizationId}/{backupId}.
func ParseSealedKey(key string) (organizationID, backupID string, err error) {
	return splitKey(key, SealedPrefix)
}

// splitKey splits prefix{organizationId}/{backupId}.
func splitKey(key, prefix string) (organizationID, backupID string, err error) {
	rest, ok := strings.CutPrefix(key, prefix)
	parts := strings.Split(rest, "/")
	if !ok || len(parts) != 2 || parts[0] == "" || parts[1] == "" || !utf8.ValidString(key) ||
		parts[0] == "." || parts[0] == ".." || parts[1] == "." || parts[1] == ".." {
		return "", "", fmt.Errorf("%w: key %q is not %s{organizationId}/{backupId}", errMalformed, clip(key), prefix)
	}
	return parts[0], parts[1], nil
}

// clip shortens attacker-controlled text before it goes into a log line.
func clip(s string) string { return clipTo(s, 120) }

// clipTo cuts s to at most max bytes on a rune boundary, marking the cut.
func clipTo(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
