package gcs

import (
	"context"
	"errors"
	"time"

	gcs "cloud.google.com/go/storage"
	"google.golang.org/api/iterator"

	"github.com/wedsync/backup-replication/shared/storage"
)

// EraseVersions removes every generation of key, live and noncurrent (a
// bucket with object versioning keeps the bytes of a deleted object). A
// generation under object retention, or under the bucket's retention
// policy, cannot be deleted before its retention ends: EraseVersions
// leaves it (GCS would refuse the delete) and returns the latest such end
// (zero: nothing retained). A generation under an event-based or
// temporary hold is an error: the hold has no end date.
func (p *Provider) EraseVersions(ctx context.Context, key string) (time.Time, error) {
	q := &gcs.Query{Prefix: key, Versions: true}
	if err := q.SetAttrSelection([]string{"Name", "Generation", "Retention", "RetentionExpirationTime",
		"EventBasedHold", "TemporaryHold"}); err != nil {
		return time.Time{}, p.fail("erase", key, err)
	}
	var retained time.Time
	now := time.Now()
	it := p.bucket.Objects(ctx, q)
	for {
		a, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return retained, nil
		}
		if err != nil {
			return retained, p.fail("erase", key, err)
		}
		if a.Name != key {
			continue
		}
		if a.EventBasedHold || a.TemporaryHold {
			return retained, &storage.Error{Op: "erase", Provider: p.name, Key: key, Kind: storage.Permanent,
				Err: errors.New("a generation is under a hold: release it, then erase again")}
		}
		until := a.RetentionExpirationTime
		if a.Retention != nil && a.Retention.RetainUntil.After(until) {
			until = a.Retention.RetainUntil
		}
		if until.After(now) {
			if until.After(retained) {
				retained = until.UTC()
			}
			continue
		}
		err = p.bucket.Object(key).Generation(a.Generation).Delete(ctx)
		if err != nil && !errors.Is(err, gcs.ErrObjectNotExist) {
			return retained, p.fail("erase", key, err)
		}
	}
}
