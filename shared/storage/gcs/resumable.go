package gcs

import (
	"context"
	"fmt"
	"io"

	gcs "cloud.google.com/go/storage"

	"github.com/wedsync/backup-replication/shared/storage"
)

// PutResumable uploads src to key through a GCS resumable session that can
// outlive this call. state is the session URI a previous call saved ("" to
// start afresh); save is called with the new session URI once it exists and
// with "" once it is finished or abandoned for good.
//
// On resume it asks GCS how many bytes are persisted, re-reads that prefix
// from src only to hash it, and sends the rest in one PUT whose last byte is
// held back until the SHA-256 of the whole source is proved. A failure that
// leaves the session usable (network, 5xx, the context ending) returns the
// error and keeps the state, so the next call continues where GCS stopped;
// an integrity failure cancels the session.
//
// The session URI authorises uploads to this one object for a week: treat
// the state as a secret.
func (p *Provider) PutResumable(ctx context.Context, key string, src storage.Source, opts storage.PutOptions, state string, save func(state string) error) (storage.ObjectInfo, error) {
	if !storage.ValidSHA256(opts.SHA256) {
		return storage.ObjectInfo{}, &storage.Error{Op: "put", Provider: p.name, Key: key, Kind: storage.Permanent,
			Err: fmt.Errorf("expected SHA-256 %q is not 64 lowercase hex digits", opts.SHA256)}
	}
	size := src.Size()
	session, offset := state, int64(0)
	var committed *gcs.ObjectAttrs
	if session != "" {
		st, err := p.queryStatus(ctx, session, size)
		if err != nil {
			return storage.ObjectInfo{}, p.fail("put", key, err)
		}
		switch {
		case st.gone:
			session = "" // expired or cancelled: start again
		case st.done != nil:
			committed, offset = st.done, size
		default:
			offset = st.offset
		}
	}
	if session == "" {
		s, err := p.startSession(ctx, key, size, opts)
		if err != nil {
			return storage.ObjectInfo{}, p.fail("put", key, err)
		}
		if err := save(s); err != nil {
			p.cancelSession(ctx, s)
			return storage.ObjectInfo{}, p.fail("put", key, fmt.Errorf("saving the session: %w", err))
		}
		session = s
	}

	rc, err := src.Open(ctx, 0)
	if err != nil {
		return storage.ObjectInfo{}, p.fail("put", key, fmt.Errorf("opening the source: %w", err))
	}
	defer rc.Close()
	v := storage.NewVerifyingReader(rc, size, opts.SHA256, opts.Progress)
	// The prefix GCS already holds is read only to hash it.
	if _, err := io.CopyN(io.Discard, v, offset); err != nil {
		return storage.ObjectInfo{}, p.abandonOnIntegrity(ctx, key, session, save, err)
	}
	if committed == nil {
		committed, err = p.sendRest(ctx, session, v, offset, size)
		if err != nil {
			return storage.ObjectInfo{}, p.abandonOnIntegrity(ctx, key, session, save, err)
		}
	} else if err := v.Verify(); err != nil {
		// A previous call finished the upload but did not get to check it.
		p.removeCorrupt(ctx, key, committed.Generation, err)
		save("")
		return storage.ObjectInfo{}, p.integrity("put", key, err)
	}
	save("")
	if err := compare(committed, v); err != nil {
		p.removeCorrupt(ctx, key, committed.Generation, err)
		return storage.ObjectInfo{}, p.integrity("put", key, err)
	}
	return info(committed), nil
}

// abandonOnIntegrity classifies err; when the bytes themselves are wrong the
// session can never succeed, so it is cancelled and the state cleared.
// Other failures keep the session for the next call.
func (p *Provider) abandonOnIntegrity(ctx context.Context, key, session string, save func(string) error, err error) error {
	err = p.fail("put", key, err)
	if storage.KindOf(err) == storage.Integrity {
		p.cancelSession(ctx, session)
		save("")
	}
	return err
}
