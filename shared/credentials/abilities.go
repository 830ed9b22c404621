package credentials

import (
	"context"
	"time"

	"github.com/wedsync/backup-replication/shared/storage"
)

// signer is the download-URL ability some providers have (Supabase); the
// API finds it with storage.As (shared/api's Signer has the same method).
type signer interface {
	SignedURL(ctx context.Context, key string, ttl time.Duration) (string, error)
}

// expose returns r with the optional methods the provider p has.
func expose(r *rotating, p storage.Provider) storage.Provider {
	_, c := storage.As[storage.Copier](p)
	_, u := storage.As[storage.Resumer](p)
	_, s := storage.As[signer](p)
	cp, rs, sg := copyAbility{r}, resumeAbility{r}, signAbility{r}
	switch {
	case c && u && s:
		return struct {
			*rotating
			copyAbility
			resumeAbility
			signAbility
		}{r, cp, rs, sg}
	case c && u:
		return struct {
			*rotating
			copyAbility
			resumeAbility
		}{r, cp, rs}
	case c && s:
		return struct {
			*rotating
			copyAbility
			signAbility
		}{r, cp, sg}
	case u && s:
		return struct {
			*rotating
			resumeAbility
			signAbility
		}{r, rs, sg}
	case c:
		return struct {
			*rotating
			copyAbility
		}{r, cp}
	case u:
		return struct {
			*rotating
			resumeAbility
		}{r, rs}
	case s:
		return struct {
			*rotating
			signAbility
		}{r, sg}
	}
	return r
}

type copyAbility struct{ r *rotating }

// Copy copies server-side with the active credentials, refetched and
// retried like every operation.
func (a copyAbility) Copy(ctx context.Context, src storage.Locator, key string, opts storage.PutOptions) (storage.ObjectInfo, error) {
	var info storage.ObjectInfo
	err := a.r.do(ctx, "copy", func(p storage.Provider) error {
		c, ok := storage.As[storage.Copier](p)
		if !ok {
			return storage.ErrCannotCopy
		}
		var err error
		info, err = c.Copy(ctx, src, key, opts)
		return err
	}, nil)
	return info, err
}

type resumeAbility struct{ r *rotating }

// PutResumable uploads resumably; a retry after a refusal resumes from the
// last state save received.
func (a resumeAbility) PutResumable(ctx context.Context, key string, src storage.Source, opts storage.PutOptions, state string, save func(string) error) (storage.ObjectInfo, error) {
	var info storage.ObjectInfo
	err := a.r.do(ctx, "put", func(p storage.Provider) error {
		u, ok := storage.As[storage.Resumer](p)
		if !ok {
			return storage.NewError("put", a.r.name, key, storage.Permanent, storage.ErrCannotCopy)
		}
		var err error
		info, err = u.PutResumable(ctx, key, src, opts, state, func(s string) error {
			state = s
			if save == nil {
				return nil
			}
			return save(s)
		})
		return err
	}, nil)
	return info, err
}

type signAbility struct{ r *rotating }

// SignedURL signs a download URL with the active credentials.
func (a signAbility) SignedURL(ctx context.Context, key string, ttl time.Duration) (string, error) {
	var u string
	err := a.r.do(ctx, "sign", func(p storage.Provider) error {
		s, ok := storage.As[signer](p)
		if !ok {
			return storage.NewError("sign", a.r.name, key, storage.Permanent, storage.ErrCannotCopy)
		}
		var err error
		u, err = s.SignedURL(ctx, key, ttl)
		return err
	}, nil)
	return u, err
}
