package credentials

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/wedsync/backup-replication/shared/storage"
)

// Build makes a provider from one version of its secret (S3, GCS and
// Supabase in build.go). It is called at start and again whenever the
// credentials change, so it must not do network round trips it can avoid.
type Build func(ctx context.Context, v Version) (storage.Provider, error)

// maxBuilds bounds the providers kept per secret: the active one and the
// few versions a rotation window can offer.
const maxBuilds = 4

// Provider returns a storage.Provider called name whose credentials are the
// secret secretID, read through loader. The first provider is built now
// from the AWSCURRENT version, so a missing or malformed secret is an error
// at start, not mid-transfer.
//
// Every operation then:
//   - runs on the provider built from the AWSCURRENT version the loader
//     holds (cached for its TTL), rebuilding it when the version changed;
//   - when refused with storage.Unauthorized, reads the secret again
//     (AWSCURRENT, then AWSPENDING and AWSPREVIOUS) and retries once with
//     each version it has not tried yet, in that order; the first whose
//     answer is not Unauthorized becomes the active one. A non-current
//     version chosen that way is kept for the loader's TTL before the
//     current version is tried again.
//
// Put is retried only when its reader is an io.Seeker (sought back before
// the retry); otherwise its refusal is returned, after a Stat of the same
// key has found which version is accepted, so the next operation uses it. PutResumable is retried with
// the last state its save func received.
//
// The result implements storage.Unwrapper (the active provider), and
// storage.Copier, storage.Resumer and a SignedURL(ctx, key, ttl) method
// when, and only when, the first provider built has them; those calls get
// the same refetch-and-retry.
func Provider(ctx context.Context, name, secretID string, loader *Loader, build Build, logger *slog.Logger) (storage.Provider, error) {
	if loader == nil || build == nil || secretID == "" {
		return nil, errors.New("credentials: Provider needs a loader, a build func and a secret id")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	v, err := loader.Get(ctx, secretID)
	if err != nil {
		return nil, fmt.Errorf("provider %s: %w", name, err)
	}
	r := &rotating{name: name, id: secretID, loader: loader, build: build,
		log: logger.With("provider", name), builds: map[string]*built{}}
	b, err := r.buildLocked(ctx, v)
	if err != nil {
		return nil, err
	}
	r.active = b
	return expose(r, b.p), nil
}

// built is a provider made from one version.
type built struct {
	v Version
	p storage.Provider
}

// pin keeps a non-current version active after the current one was refused.
type pin struct {
	refused string // the AWSCURRENT version id that was refused
	until   time.Time
}

type rotating struct {
	name, id string
	loader   *Loader
	build    Build
	log      *slog.Logger

	mu     sync.Mutex
	active *built
	pin    *pin
	builds map[string]*built // by version id
}

// Name returns the provider's name.
func (r *rotating) Name() string { return r.name }

// Unwrap returns the provider built from the active credentials.
func (r *rotating) Unwrap() storage.Provider {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.active.p
}

// buildLocked returns the provider for v, building it once. r.mu is held
// (or r is not shared yet).
func (r *rotating) buildLocked(ctx context.Context, v Version) (*built, error) {
	if b, ok := r.builds[v.VersionID]; ok {
		return b, nil
	}
	p, err := r.build(ctx, v)
	if err != nil {
		return nil, fmt.Errorf("provider %s: credentials version %s (%s): %w", r.name, v.VersionID, v.Stage, err)
	}
	b := &built{v: v, p: p}
	if len(r.builds) >= maxBuilds {
		for id := range r.builds {
			if r.active == nil || id != r.active.v.VersionID {
				delete(r.builds, id)
			}
		}
	}
	r.builds[v.VersionID] = b
	return b, nil
}

// current returns the provider for the AWSCURRENT version the loader
// holds, switching to it when it changed (unless it was refused lately).
func (r *rotating) current(ctx context.Context) *built {
	v, err := r.loader.Get(ctx, r.id)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil || v.VersionID == r.active.v.VersionID {
		return r.active
	}
	if r.pin != nil && v.VersionID == r.pin.refused && r.loader.cfg.Now().Before(r.pin.until) {
		return r.active
	}
	b, err := r.buildLocked(ctx, v)
	if err != nil {
		r.log.WarnContext(ctx, "new credentials unusable, keeping the active ones", "op", "credentials", "error", err.Error())
		return r.active
	}
	r.switchLocked(ctx, b, "secret rotated", StageCurrent)
	r.pin = nil
	return b
}

// candidates are the providers to retry with after failed was refused:
// the active one when another operation already moved on, otherwise one per
// version, not yet tried, of AWSCURRENT (read again), AWSPENDING and
// AWSPREVIOUS.
func (r *rotating) candidates(ctx context.Context, failed *built) []*built {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.active != failed {
		return []*built{r.active}
	}
	seen := map[string]bool{failed.v.VersionID: true}
	var out []*built
	for _, stage := range []string{StageCurrent, StagePending, StagePrevious} {
		v, err := r.loader.Fetch(ctx, r.id, stage)
		if err != nil {
			if !errors.Is(err, ErrNoVersion) {
				r.log.WarnContext(ctx, "cannot read credentials", "op", "credentials", "stage", stage, "error", err.Error())
			}
			continue
		}
		if seen[v.VersionID] {
			continue
		}
		seen[v.VersionID] = true
		b, err := r.buildLocked(ctx, v)
		if err != nil {
			r.log.WarnContext(ctx, "credentials unusable", "op", "credentials", "stage", stage, "error", err.Error())
			continue
		}
		out = append(out, b)
	}
	return out
}

// adopt makes b active after it was accepted where failed was refused.
func (r *rotating) adopt(ctx context.Context, failed, b *built) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.active == b || r.active != failed {
		return
	}
	r.switchLocked(ctx, b, "credentials refused", b.v.Stage)
	r.pin = nil
	if cur, err := r.loader.Fetch(ctx, r.id, StageCurrent); err == nil && cur.VersionID != b.v.VersionID {
		r.pin = &pin{refused: cur.VersionID, until: r.loader.cfg.Now().Add(r.loader.cfg.TTL)}
	}
}

func (r *rotating) switchLocked(ctx context.Context, b *built, reason, stage string) {
	r.log.InfoContext(ctx, "provider credentials changed", "op", "credentials", "reason", reason,
		"version_id", b.v.VersionID, "stage", stage, "previous_version_id", r.active.v.VersionID)
	r.active = b
}

// do runs f on the active provider and, when it is refused, on the
// candidates in turn. When f cannot be run again (check != nil: a Put whose
// reader is consumed), check, a cheap request, tries the candidates
// instead, so that the next operation runs on credentials that were
// accepted, and f's refusal is returned.
func (r *rotating) do(ctx context.Context, op string, f, check func(storage.Provider) error) error {
	b := r.current(ctx)
	err := f(b.p)
	if err == nil || storage.KindOf(err) != storage.Unauthorized || ctx.Err() != nil {
		return err
	}
	try := f
	if check != nil {
		try = check
	}
	for _, c := range r.candidates(ctx, b) {
		r.log.InfoContext(ctx, "operation refused, trying other credentials", "op", op,
			"stage", c.v.Stage, "version_id", c.v.VersionID, "replay", check == nil)
		cerr := try(c.p)
		if cerr == nil || storage.KindOf(cerr) != storage.Unauthorized {
			r.adopt(ctx, b, c)
			if check != nil {
				return err
			}
			return cerr
		}
	}
	return err
}

// Put stores the object; see Provider for when it is retried.
func (r *rotating) Put(ctx context.Context, key string, rd io.Reader, size int64, opts storage.PutOptions) (storage.ObjectInfo, error) {
	s, replayable := rd.(io.Seeker)
	var start int64
	if replayable {
		var err error
		start, err = s.Seek(0, io.SeekCurrent)
		replayable = err == nil
	}
	var check func(storage.Provider) error
	if !replayable {
		check = func(p storage.Provider) error { _, err := p.Stat(ctx, key); return err }
	}
	var info storage.ObjectInfo
	first := true
	err := r.do(ctx, "put", func(p storage.Provider) error {
		if !first {
			if _, err := s.Seek(start, io.SeekStart); err != nil {
				return storage.NewError("put", r.name, key, storage.Permanent, err)
			}
		}
		first = false
		var err error
		info, err = p.Put(ctx, key, rd, size, opts)
		return err
	}, check)
	return info, err
}

// Get opens the object; opening is retried, reading the body is not.
func (r *rotating) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	var rc io.ReadCloser
	err := r.do(ctx, "get", func(p storage.Provider) error {
		var err error
		rc, err = p.Get(ctx, key, offset, length)
		return err
	}, nil)
	return rc, err
}

// Stat describes the object.
func (r *rotating) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	var info storage.ObjectInfo
	err := r.do(ctx, "stat", func(p storage.Provider) error {
		var err error
		info, err = p.Stat(ctx, key)
		return err
	}, nil)
	return info, err
}

// Delete removes the object.
func (r *rotating) Delete(ctx context.Context, key string) error {
	return r.do(ctx, "delete", func(p storage.Provider) error { return p.Delete(ctx, key) }, nil)
}

// List lists by prefix; on a retry fn is not called again for keys it has
// already seen, and fn's own error ends the listing as is.
func (r *rotating) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	seen := map[string]struct{}{}
	var fnErr error
	err := r.do(ctx, "list", func(p storage.Provider) error {
		return p.List(ctx, prefix, func(o storage.ObjectInfo) error {
			if _, ok := seen[o.Key]; ok {
				return nil
			}
			seen[o.Key] = struct{}{}
			if err := fn(o); err != nil {
				fnErr = err
				return err
			}
			return nil
		})
	}, nil)
	if fnErr != nil {
		return fnErr
	}
	return err
}
