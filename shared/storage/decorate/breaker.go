package decorate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/wedsync/backup-replication/shared/breaker"
	"github.com/wedsync/backup-replication/shared/storage"
)

// WithBreaker returns p with every operation guarded by b: it asks b
// before the operation and reports the outcome after.
//
// When b refuses, the operation is not attempted and the error is a
// *storage.Error of kind Transient whose chain matches breaker.ErrOpen and
// whose RetryAfter is the time left until the breaker lets a trial through
// (0 while half-open). Callers tell "provider down, wait" from a failure
// with errors.Is(err, breaker.ErrOpen): the replicate handler returns such
// a message to its queue without counting it as a failed attempt. When b's
// store cannot be read, the error is a Transient *storage.Error that does
// not match ErrOpen (the work is retried later like any transient failure;
// the breaker never fails open, which could let more than MaxRequests
// trials through).
//
// What is reported to b: the operation's error as is, except what says
// nothing about the provider, which is reported as excluded
// (breaker.Ignore): a Put whose source reader failed (the reader is wrapped
// to watch for this and keeps io.Seeker when it had it), a PutResumable
// whose Source failed, a List stopped by fn's error, and a Copy that
// answered storage.ErrCannotCopy. A Get is reported when its body is
// closed, with the first error met while reading it (an unclassified one
// counts as Transient): callers must close the body, or a half-open trial
// holds its slot until its lease expires.
func WithBreaker(p storage.Provider, b *breaker.Breaker) storage.Provider {
	return expose(&breaking{p: p, b: b})
}

type breaking struct {
	p storage.Provider
	b *breaker.Breaker
}

// Unwrap returns the provider beneath.
func (d *breaking) Unwrap() storage.Provider { return d.p }

// Name returns the provider's name.
func (d *breaking) Name() string { return d.p.Name() }

// allow asks the breaker, mapping a refusal to a Transient *storage.Error.
func (d *breaking) allow(ctx context.Context, op, key string) (func(error), error) {
	done, err := d.b.Allow(ctx)
	if err == nil {
		return done, nil
	}
	var rej *breaker.Rejection
	if errors.As(err, &rej) {
		se := &storage.Error{Op: op, Provider: d.p.Name(), Key: key, Kind: storage.Transient, Err: err}
		if !rej.RetryAt.IsZero() {
			se.RetryAfter = max(time.Until(rej.RetryAt), 0)
		}
		return nil, se
	}
	return nil, &storage.Error{Op: op, Provider: d.p.Name(), Key: key, Kind: storage.Transient,
		Err: fmt.Errorf("circuit breaker state unavailable: %w", err)}
}

// Put reports a failure of r itself as excluded.
func (d *breaking) Put(ctx context.Context, key string, r io.Reader, size int64, opts storage.PutOptions) (storage.ObjectInfo, error) {
	done, err := d.allow(ctx, "put", key)
	if err != nil {
		return storage.ObjectInfo{}, err
	}
	src := &watched{r: r}
	var in io.Reader = src
	if s, ok := r.(io.Seeker); ok {
		in = &watchedSeeker{watched: src, s: s}
	}
	info, err := d.p.Put(ctx, key, in, size, opts)
	done(src.blame(err))
	return info, err
}

// Get reports when the body is closed.
func (d *breaking) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	done, err := d.allow(ctx, "get", key)
	if err != nil {
		return nil, err
	}
	rc, err := d.p.Get(ctx, key, offset, length)
	if err != nil {
		done(err)
		return nil, err
	}
	return &guardedBody{ReadCloser: rc, done: done, provider: d.p.Name(), key: key}, nil
}

// Stat reports its outcome.
func (d *breaking) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	done, err := d.allow(ctx, "stat", key)
	if err != nil {
		return storage.ObjectInfo{}, err
	}
	info, err := d.p.Stat(ctx, key)
	done(err)
	return info, err
}

// Delete reports its outcome.
func (d *breaking) Delete(ctx context.Context, key string) error {
	done, err := d.allow(ctx, "delete", key)
	if err != nil {
		return err
	}
	err = d.p.Delete(ctx, key)
	done(err)
	return err
}

// List reports an error of fn's as excluded.
func (d *breaking) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	done, err := d.allow(ctx, "list", prefix)
	if err != nil {
		return err
	}
	var fnErr error
	err = d.p.List(ctx, prefix, func(o storage.ObjectInfo) error {
		fnErr = fn(o)
		return fnErr
	})
	if err != nil && fnErr != nil {
		done(breaker.Ignore(err))
	} else {
		done(err)
	}
	return err
}

func (d *breaking) copy(ctx context.Context, c storage.Copier, src storage.Locator, key string, opts storage.PutOptions) (storage.ObjectInfo, error) {
	done, err := d.allow(ctx, "copy", key)
	if err != nil {
		return storage.ObjectInfo{}, err
	}
	info, err := c.Copy(ctx, src, key, opts)
	if errors.Is(err, storage.ErrCannotCopy) {
		done(breaker.Ignore(err))
	} else {
		done(err)
	}
	return info, err
}

func (d *breaking) putResumable(ctx context.Context, r storage.Resumer, key string, src storage.Source, opts storage.PutOptions,
	state string, save func(string) error) (storage.ObjectInfo, error) {
	done, err := d.allow(ctx, "put", key)
	if err != nil {
		return storage.ObjectInfo{}, err
	}
	ws := &watchedSource{src: src}
	info, err := r.PutResumable(ctx, key, ws, opts, state, save)
	done(ws.blame(err))
	return info, err
}

// watched is a source reader that remembers its last failure.
type watched struct {
	r   io.Reader
	mu  sync.Mutex
	err error
}

func (w *watched) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	if err != nil && err != io.EOF {
		w.mu.Lock()
		w.err = err
		w.mu.Unlock()
	}
	return n, err
}

// blame marks err as the source's, not the provider's, when the source
// failed.
func (w *watched) blame(err error) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil && w.err != nil {
		return breaker.Ignore(err)
	}
	return err
}

// watchedSeeker keeps io.Seeker for WithRetry beneath; a seek starts a new
// attempt, so it forgets the failure of the last one.
type watchedSeeker struct {
	*watched
	s io.Seeker
}

func (w *watchedSeeker) Seek(offset int64, whence int) (int64, error) {
	w.mu.Lock()
	w.err = nil
	w.mu.Unlock()
	return w.s.Seek(offset, whence)
}

// watchedSource is a storage.Source whose readers are watched.
type watchedSource struct {
	src storage.Source
	mu  sync.Mutex
	err error
}

func (w *watchedSource) Size() int64 { return w.src.Size() }

func (w *watchedSource) Open(ctx context.Context, offset int64) (io.ReadCloser, error) {
	rc, err := w.src.Open(ctx, offset)
	if err != nil {
		w.fail(err)
		return nil, err
	}
	return &watchedBody{ReadCloser: rc, w: w}, nil
}

func (w *watchedSource) fail(err error) {
	w.mu.Lock()
	w.err = err
	w.mu.Unlock()
}

func (w *watchedSource) blame(err error) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil && w.err != nil {
		return breaker.Ignore(err)
	}
	return err
}

type watchedBody struct {
	io.ReadCloser
	w *watchedSource
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		b.w.fail(err)
	}
	return n, err
}

// guardedBody reports a Get's outcome to the breaker when closed.
type guardedBody struct {
	io.ReadCloser
	done          func(error)
	provider, key string
	mu            sync.Mutex
	err           error
}

func (g *guardedBody) Read(p []byte) (int, error) {
	n, err := g.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		g.mu.Lock()
		if g.err == nil {
			g.err = err
		}
		g.mu.Unlock()
	}
	return n, err
}

func (g *guardedBody) Close() error {
	cerr := g.ReadCloser.Close()
	g.mu.Lock()
	err := g.err
	g.mu.Unlock()
	var se *storage.Error
	if err != nil && !errors.As(err, &se) && !errors.Is(err, context.Canceled) {
		// A broken body stream is the provider's failure.
		err = storage.NewError("get", g.provider, g.key, storage.Transient, err)
	}
	g.done(err) // only the first Close counts
	return cerr
}
