package decorate

import (
	"context"
	"errors"
	"io"

	"github.com/wedsync/backup-replication/shared/retry"
	"github.com/wedsync/backup-replication/shared/storage"
)

// WithRetry returns p with each operation retried by retry.Do under policy
// (transient and throttled errors only, bounded by the context deadline):
//
//   - Get, Stat, Delete and Copy are retried freely (Get: opening the
//     stream; an error while reading the body is the caller's to handle).
//   - List is retried too, and on a retry fn is not called again for keys
//     it has already seen (restic's way); an error returned by fn itself is
//     never retried and is returned as is.
//   - Put is retried only when its reader is an io.Seeker, which is sought
//     back to where it was at the call before each retry. Any other reader
//     has been consumed by the failed attempt and cannot be replayed, so
//     its Put is tried once and its error goes back to the caller (and the
//     message back to its queue). Wrap a seekable source so that it still
//     implements io.Seeker if retries are wanted.
//   - PutResumable is retried freely (its Source reopens at any offset),
//     each retry passing the latest state its save func received, so a
//     retry resumes the upload rather than starting again.
func WithRetry(p storage.Provider, policy retry.Policy) storage.Provider {
	return expose(&retrying{p: p, policy: policy})
}

type retrying struct {
	p      storage.Provider
	policy retry.Policy
}

// Unwrap returns the provider beneath.
func (d *retrying) Unwrap() storage.Provider { return d.p }

// Name returns the provider's name.
func (d *retrying) Name() string { return d.p.Name() }

// Put retries only when r can be sought back (see WithRetry).
func (d *retrying) Put(ctx context.Context, key string, r io.Reader, size int64, opts storage.PutOptions) (storage.ObjectInfo, error) {
	s, ok := r.(io.Seeker)
	if !ok {
		return d.p.Put(ctx, key, r, size, opts)
	}
	start, err := s.Seek(0, io.SeekCurrent)
	if err != nil { // claims to seek but cannot: one attempt only
		return d.p.Put(ctx, key, r, size, opts)
	}
	var info storage.ObjectInfo
	first := true
	err = retry.Do(ctx, d.policy, func(ctx context.Context) error {
		if !first {
			if _, err := s.Seek(start, io.SeekStart); err != nil {
				return storage.NewError("put", d.p.Name(), key, storage.Permanent, err)
			}
		}
		first = false
		var err error
		info, err = d.p.Put(ctx, key, r, size, opts)
		return err
	})
	return info, err
}

// Get retries opening the stream.
func (d *retrying) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	var rc io.ReadCloser
	err := retry.Do(ctx, d.policy, func(ctx context.Context) error {
		var err error
		rc, err = d.p.Get(ctx, key, offset, length)
		return err
	})
	return rc, err
}

// Stat retries freely.
func (d *retrying) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	var info storage.ObjectInfo
	err := retry.Do(ctx, d.policy, func(ctx context.Context) error {
		var err error
		info, err = d.p.Stat(ctx, key)
		return err
	})
	return info, err
}

// Delete retries freely: deleting is idempotent.
func (d *retrying) Delete(ctx context.Context, key string) error {
	return retry.Do(ctx, d.policy, func(ctx context.Context) error { return d.p.Delete(ctx, key) })
}

// List retries, skipping keys fn has already seen; fn's own error ends it.
func (d *retrying) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	seen := map[string]struct{}{}
	var fnErr error
	err := retry.Do(ctx, d.policy, func(ctx context.Context) error {
		err := d.p.List(ctx, prefix, func(o storage.ObjectInfo) error {
			if _, ok := seen[o.Key]; ok {
				return nil
			}
			if err := fn(o); err != nil {
				fnErr = err
				return err
			}
			seen[o.Key] = struct{}{}
			return nil
		})
		if fnErr != nil {
			return nil // stop retrying; fnErr is returned below
		}
		return err
	})
	if fnErr != nil {
		return fnErr
	}
	return err
}

func (d *retrying) copy(ctx context.Context, c storage.Copier, src storage.Locator, key string, opts storage.PutOptions) (storage.ObjectInfo, error) {
	var info storage.ObjectInfo
	var cannot error
	err := retry.Do(ctx, d.policy, func(ctx context.Context) error {
		var err error
		info, err = c.Copy(ctx, src, key, opts)
		if errors.Is(err, storage.ErrCannotCopy) {
			cannot = err // the caller falls back to streaming: never retried
			return nil
		}
		return err
	})
	if cannot != nil {
		return info, cannot
	}
	return info, err
}

func (d *retrying) putResumable(ctx context.Context, r storage.Resumer, key string, src storage.Source, opts storage.PutOptions,
	state string, save func(string) error) (storage.ObjectInfo, error) {
	var info storage.ObjectInfo
	err := retry.Do(ctx, d.policy, func(ctx context.Context) error {
		var err error
		info, err = r.PutResumable(ctx, key, src, opts, state, func(s string) error {
			if err := save(s); err != nil {
				return err
			}
			state = s // a retry resumes from here
			return nil
		})
		return err
	})
	return info, err
}
