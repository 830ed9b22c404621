package gcs

import (
	"context"
	"errors"
	"time"

	gcs "cloud.google.com/go/storage"

	"github.com/wedsync/backup-replication/shared/storage"
)

var _ storage.Retainer = (*Provider)(nil)

// RetainUntil keeps key under object retention, in the configured
// RetentionMode, until at least until: it reads the object's retention
// and, when that ends earlier, updates it to end at until (GCS lets anyone
// with storage.objects.update extend a retention, Locked or not; only
// shortening an Unlocked one needs the override, which this never asks
// for). A retention already running to until or later is left alone. It
// returns the retain-until date in force afterwards. Without
// Config.Retention it is a Permanent error: the bucket is not known to
// have object retention enabled.
func (p *Provider) RetainUntil(ctx context.Context, key string, until time.Time) (time.Time, error) {
	if p.cfg.Retention <= 0 {
		return time.Time{}, &storage.Error{Op: "retain", Provider: p.name, Key: key, Kind: storage.Permanent,
			Err: errors.New("object retention is not configured for this provider")}
	}
	until = storage.CeilSecond(until)
	o := p.bucket.Object(key)
	a, err := o.Attrs(ctx)
	if err != nil {
		return time.Time{}, p.fail("retain", key, err)
	}
	if a.Retention != nil && !a.Retention.RetainUntil.Before(until) {
		return a.Retention.RetainUntil.UTC(), nil
	}
	// Only the generation read above: a newer one is not the copy the
	// catalog verified.
	a, err = o.If(gcs.Conditions{GenerationMatch: a.Generation}).Update(ctx,
		gcs.ObjectAttrsToUpdate{Retention: &gcs.ObjectRetention{Mode: p.retentionMode(), RetainUntil: until}})
	if err != nil {
		return time.Time{}, p.fail("retain", key, err)
	}
	if a.Retention == nil {
		return time.Time{}, p.fail("retain", key, errors.New("GCS answered the update without a retention"))
	}
	return a.Retention.RetainUntil.UTC(), nil
}
