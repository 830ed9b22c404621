package s3

import (
	"context"
	"errors"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/wedsync/backup-replication/shared/storage"
)

var _ storage.Retainer = (*Provider)(nil)

// RetainUntil keeps the current version of key under object lock, in the
// configured ObjectLockMode, until at least until: it reads the version's
// retention (HeadObject) and, when that ends earlier, puts a retention ending at until.
// A retention already running to until or later is left alone (S3 refuses
// to shorten a COMPLIANCE retention anyway). It returns the retain-until
// date in force afterwards. Without ObjectLockMode it is a Permanent
// error. It needs s3:GetObject, s3:GetObjectRetention and
// s3:PutObjectRetention.
func (p *Provider) RetainUntil(ctx context.Context, key string, until time.Time) (time.Time, error) {
	if p.cfg.ObjectLockMode == "" {
		return time.Time{}, &storage.Error{Op: "retain", Provider: p.name, Key: key, Kind: storage.Permanent,
			Err: errors.New("object lock is not configured for this provider")}
	}
	until = storage.CeilSecond(until) // S3 keeps retain-until dates to the second
	current, err := p.retention(ctx, key)
	if err != nil {
		return time.Time{}, err
	}
	if !current.Before(until) {
		return current, nil
	}
	_, err = p.client.PutObjectRetention(ctx, &s3.PutObjectRetentionInput{Bucket: aws.String(p.cfg.Bucket), Key: aws.String(key),
		Retention: &types.ObjectLockRetention{Mode: types.ObjectLockRetentionMode(p.cfg.ObjectLockMode), RetainUntilDate: aws.Time(until)}})
	if err != nil {
		return time.Time{}, p.fail("retain", key, err)
	}
	return until, nil
}

// retention is the retain-until date of key's current version; zero when
// it has none. It reads it with HeadObject, which reports the lock to a
// caller with s3:GetObjectRetention, rather than GetObjectRetention, which
// moto 5.2 does not implement (it answers with the object's bytes).
func (p *Provider) retention(ctx context.Context, key string) (time.Time, error) {
	head, err := p.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(p.cfg.Bucket), Key: aws.String(key)})
	if err != nil {
		return time.Time{}, p.fail("retain", key, err)
	}
	if head.ObjectLockMode == "" {
		return time.Time{}, nil
	}
	return aws.ToTime(head.ObjectLockRetainUntilDate).UTC(), nil
}
