package replicate

// Immutable copies (issue 5 §6, the first 1 of 3-2-1-1-0): a provider
// configured to write under retention (S3 Object Lock with
// s3.Config.ObjectLockMode/ObjectLockRetention, GCS object retention with
// gcs.Config.Retention) sets it on every write, and fails the write when
// its bucket cannot hold it (S3 refuses lock headers and
// PutObjectRetention on a bucket without object lock; GCS refuses a
// retention on a bucket without object retention). So a copy verified on
// such a provider is under retention: replicate records it Immutable,
// and policy.Evaluate counts it. Config.Immutable must name the same
// retention as the provider's configuration; both come from one loader
// (config.Locks) in Wire.
//
// The copy is retained at least until the transfer began plus the
// retention: the provider computes its retain-until date when it writes,
// which is no earlier.

import "time"

// retainedUntil is the earliest end of the retention of the copy this run
// wrote; zero when its provider writes none.
func (r *run) retainedUntil() time.Time {
	d := r.h.cfg.Immutable[r.tg.name]
	if d <= 0 || r.began.IsZero() {
		return time.Time{}
	}
	return r.began.Add(d).UTC()
}
