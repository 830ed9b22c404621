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

// EraseVersions removes every stored version of key, and every delete
// marker, not just the current version: on a versioned bucket (object
// lock requires versioning) Delete only adds a delete marker and the bytes
// stay. A version under object lock retention cannot be deleted before
// its retain-until date; EraseVersions leaves it and returns the latest
// such date (zero: nothing retained), with a delete marker on top so that
// reads of key answer not found. A version that refuses deletion
// without a retention date (a legal hold, or a missing permission) is an
// error. It needs s3:ListBucketVersions, s3:DeleteObjectVersion and, to
// read retention dates, s3:GetObjectRetention.
func (p *Provider) EraseVersions(ctx context.Context, key string) (time.Time, error) {
	var retained time.Time
	var keyMarker, versionMarker *string
	for {
		out, err := p.client.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(p.cfg.Bucket),
			Prefix: aws.String(key), KeyMarker: keyMarker, VersionIdMarker: versionMarker})
		if err != nil {
			return retained, p.fail("erase", key, err)
		}
		var ids []*string
		for _, v := range out.Versions {
			if aws.ToString(v.Key) == key {
				ids = append(ids, v.VersionId)
			}
		}
		for _, m := range out.DeleteMarkers {
			if aws.ToString(m.Key) == key {
				ids = append(ids, m.VersionId)
			}
		}
		for _, id := range ids {
			until, err := p.deleteVersion(ctx, key, id)
			if err != nil {
				return retained, err
			}
			if until.After(retained) {
				retained = until
			}
		}
		if !aws.ToBool(out.IsTruncated) {
			break
		}
		keyMarker, versionMarker = out.NextKeyMarker, out.NextVersionIdMarker
	}
	if !retained.IsZero() {
		// The locked version stays; a delete marker makes reads of the key
		// answer not found meanwhile.
		if _, err := p.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(p.cfg.Bucket), Key: aws.String(key)}); err != nil {
			return retained, p.fail("erase", key, err)
		}
	}
	return retained, nil
}

// deleteVersion deletes one version of key. When S3 refuses because the
// version is under retention, it returns the retain-until date instead.
func (p *Provider) deleteVersion(ctx context.Context, key string, id *string) (time.Time, error) {
	_, err := p.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(p.cfg.Bucket), Key: aws.String(key), VersionId: id})
	if err == nil {
		return time.Time{}, nil
	}
	err = p.fail("erase", key, err)
	switch storage.KindOf(err) {
	case storage.NotFound:
		return time.Time{}, nil
	case storage.Unauthorized:
	default:
		return time.Time{}, err
	}
	head, herr := p.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(p.cfg.Bucket), Key: aws.String(key), VersionId: id})
	if herr != nil {
		return time.Time{}, err
	}
	until := aws.ToTime(head.ObjectLockRetainUntilDate)
	locked := head.ObjectLockMode == types.ObjectLockModeGovernance || head.ObjectLockMode == types.ObjectLockModeCompliance
	if head.ObjectLockLegalHoldStatus == types.ObjectLockLegalHoldStatusOn {
		return time.Time{}, &storage.Error{Op: "erase", Provider: p.name, Key: key, Kind: storage.Permanent,
			Err: errors.New("a version is under legal hold: release the hold, then erase again")}
	}
	if !locked || !until.After(time.Now()) {
		return time.Time{}, err
	}
	return until.UTC(), nil
}
