package decorate

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/wedsync/backup-replication/shared/breaker"
	"github.com/wedsync/backup-replication/shared/storage"
)

// Metrics receives one observation per provider operation (an EMF writer,
// for example). Implementations must be safe for concurrent use and cheap.
type Metrics interface {
	// Observe records one finished operation: provider and op name it
	// ("put", "get", "stat", "delete", "list", "copy", "put_resumable"),
	// d how long it took (a Get until its body was closed), bytes the bytes
	// moved (0 when none or unknown) and err its error, nil on success.
	Observe(provider, op string, d time.Duration, bytes int64, err error)
}

// WithLogging returns p with one log line per operation on logger and one
// observation on m (which may be nil). Lines use the shared keys: provider,
// op, key, backup_id (when the key is backups/{org}/{backupId}), bytes,
// duration_ms, and on failure kind and error. Successful reads (get, stat,
// list) log at Debug, other successes at Info; not-found answers and
// breaker refusals (errors.Is(err, breaker.ErrOpen)) at Info; other
// failures at Warn. A Get is logged when its body is closed, with the
// bytes read. Query strings of URLs in error text are redacted: some carry
// credentials (presigned URLs, resumable-session ids).
func WithLogging(p storage.Provider, logger *slog.Logger, m Metrics) storage.Provider {
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return expose(&logging{p: p, log: logger.With("provider", p.Name()), m: m})
}

type logging struct {
	p   storage.Provider
	log *slog.Logger
	m   Metrics
}

// Unwrap returns the provider beneath.
func (d *logging) Unwrap() storage.Provider { return d.p }

// Name returns the provider's name.
func (d *logging) Name() string { return d.p.Name() }

// Put logs the stored size.
func (d *logging) Put(ctx context.Context, key string, r io.Reader, size int64, opts storage.PutOptions) (storage.ObjectInfo, error) {
	start := time.Now()
	info, err := d.p.Put(ctx, key, r, size, opts)
	d.done(ctx, "put", key, start, info.Size, err)
	return info, err
}

// Get logs when the body is closed.
func (d *logging) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	start := time.Now()
	rc, err := d.p.Get(ctx, key, offset, length)
	if err != nil {
		d.done(ctx, "get", key, start, 0, err)
		return nil, err
	}
	return &loggedBody{ReadCloser: rc, d: d, ctx: ctx, key: key, start: start}, nil
}

// Stat logs the object's size.
func (d *logging) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	start := time.Now()
	info, err := d.p.Stat(ctx, key)
	d.done(ctx, "stat", key, start, 0, err)
	return info, err
}

// Delete logs its outcome.
func (d *logging) Delete(ctx context.Context, key string) error {
	start := time.Now()
	err := d.p.Delete(ctx, key)
	d.done(ctx, "delete", key, start, 0, err)
	return err
}

// List logs the prefix as its key and the number of objects listed.
func (d *logging) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	start := time.Now()
	n := 0
	err := d.p.List(ctx, prefix, func(o storage.ObjectInfo) error {
		n++
		return fn(o)
	})
	d.done(ctx, "list", prefix, start, 0, err, "objects", n)
	return err
}

func (d *logging) copy(ctx context.Context, c storage.Copier, src storage.Locator, key string, opts storage.PutOptions) (storage.ObjectInfo, error) {
	start := time.Now()
	info, err := c.Copy(ctx, src, key, opts)
	d.done(ctx, "copy", key, start, info.Size, err)
	return info, err
}

func (d *logging) putResumable(ctx context.Context, r storage.Resumer, key string, src storage.Source, opts storage.PutOptions,
	state string, save func(string) error) (storage.ObjectInfo, error) {
	start := time.Now()
	info, err := r.PutResumable(ctx, key, src, opts, state, save)
	d.done(ctx, "put_resumable", key, start, info.Size, err, "resumed", state != "")
	return info, err
}

// done writes the line and the observation of one operation.
func (d *logging) done(ctx context.Context, op, key string, start time.Time, bytes int64, err error, extra ...any) {
	elapsed := time.Since(start)
	if d.m != nil {
		d.m.Observe(d.p.Name(), op, elapsed, bytes, err)
	}
	attrs := append([]any{"op", op, "key", key}, backupID(key)...)
	attrs = append(attrs, "bytes", bytes, "duration_ms", elapsed.Milliseconds())
	attrs = append(attrs, extra...)
	level := slog.LevelInfo
	switch {
	case err == nil && (op == "get" || op == "stat" || op == "list"):
		level = slog.LevelDebug
	case err == nil:
	case errors.Is(err, breaker.ErrOpen):
		attrs = append(attrs, "kind", "breaker_open", "error", redact(err.Error()))
	case storage.KindOf(err) == storage.NotFound:
		attrs = append(attrs, "kind", storage.NotFound.String())
	default:
		level = slog.LevelWarn
		attrs = append(attrs, "kind", storage.KindOf(err).String(), "error", redact(err.Error()))
	}
	msg := "provider " + op
	if err != nil {
		msg += " failed"
	}
	d.log.Log(ctx, level, msg, attrs...)
}

// backupID returns the backup_id attribute of a key shaped
// backups/{organizationId}/{backupId}, or nothing.
func backupID(key string) []any {
	rest, ok := strings.CutPrefix(key, "backups/")
	if !ok {
		return nil
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 2 || parts[0] == "" || parts[1] == "" {
		return nil
	}
	return []any{"backup_id", parts[1]}
}

var urlQuery = regexp.MustCompile(`(https?://[^\s"'?]+)\?[^\s"']*`)

// redact removes the query strings of URLs in s.
func redact(s string) string { return urlQuery.ReplaceAllString(s, "$1?REDACTED") }

// logRetry is the OnRetry that Chain installs when it logs.
func logRetry(logger *slog.Logger, provider string) func(context.Context, int, error, time.Duration) {
	log := logger.With("provider", provider)
	return func(ctx context.Context, attempt int, err error, wait time.Duration) {
		attrs := []any{"attempt", attempt, "wait_ms", wait.Milliseconds(), "kind", storage.KindOf(err).String(), "error", redact(err.Error())}
		var se *storage.Error
		if errors.As(err, &se) {
			attrs = append(attrs, "op", se.Op, "key", se.Key)
			attrs = append(attrs, backupID(se.Key)...)
		}
		log.Log(ctx, slog.LevelInfo, "provider retry", attrs...)
	}
}

// loggedBody logs a Get when it is closed.
type loggedBody struct {
	io.ReadCloser
	d     *logging
	ctx   context.Context
	key   string
	start time.Time
	once  sync.Once
	mu    sync.Mutex
	n     int64
	err   error
}

func (b *loggedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.mu.Lock()
	b.n += int64(n)
	if err != nil && err != io.EOF && b.err == nil {
		b.err = err
	}
	b.mu.Unlock()
	return n, err
}

func (b *loggedBody) Close() error {
	cerr := b.ReadCloser.Close()
	b.once.Do(func() {
		b.mu.Lock()
		n, err := b.n, b.err
		b.mu.Unlock()
		b.d.done(b.ctx, "get", b.key, b.start, n, err)
	})
	return cerr
}
