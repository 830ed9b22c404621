package storage

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"time"
)

// ProbePrefix is where canary objects live on every provider.
const ProbePrefix = "_health/"

// ProbeResult is the outcome of one canary round trip.
type ProbeResult struct {
	Provider string        `json:"provider"`
	OK       bool          `json:"ok"`
	Step     string        `json:"step,omitempty"` // the step that failed: put, get, verify, delete
	Kind     string        `json:"kind,omitempty"` // the failed step's error kind
	Error    string        `json:"error,omitempty"`
	Latency  time.Duration `json:"latency_ns"`
	At       time.Time     `json:"at"`
}

// Probe writes a small random canary object, reads it back, checks it and
// deletes it, in that order; the first failing step ends the probe and is
// reported (WAL-G's lesson: run checks in order, the first error wins).
func Probe(ctx context.Context, p Provider) (ProbeResult, error) {
	start := time.Now()
	res := ProbeResult{Provider: p.Name(), At: start.UTC()}
	payload := make([]byte, 1024)
	rand.Read(payload)
	sum := sha256.Sum256(payload)
	want := hex.EncodeToString(sum[:])
	key := fmt.Sprintf("%scanary-%d-%s", ProbePrefix, start.UnixNano(), want[:8])

	fail := func(step string, err error) (ProbeResult, error) {
		res.Step, res.Kind, res.Error = step, KindOf(err).String(), err.Error()
		res.Latency = time.Since(start)
		if step != "delete" {
			// Best effort: leave no canary behind.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			p.Delete(cctx, key)
			cancel()
		}
		return res, err
	}
	if _, err := p.Put(ctx, key, bytes.NewReader(payload), int64(len(payload)), PutOptions{SHA256: want, ContentType: "application/octet-stream"}); err != nil {
		return fail("put", err)
	}
	rc, err := p.Get(ctx, key, 0, -1)
	if err != nil {
		return fail("get", err)
	}
	got, err := io.ReadAll(io.LimitReader(rc, int64(len(payload))+1))
	rc.Close()
	if err != nil {
		return fail("get", NewError("probe", p.Name(), key, Transient, err))
	}
	if !bytes.Equal(got, payload) {
		return fail("verify", &Error{Op: "probe", Provider: p.Name(), Key: key, Kind: Integrity,
			Err: fmt.Errorf("canary read back %d bytes that differ from the %d written", len(got), len(payload))})
	}
	if err := p.Delete(ctx, key); err != nil {
		return fail("delete", err)
	}
	res.OK = true
	res.Latency = time.Since(start)
	return res, nil
}
