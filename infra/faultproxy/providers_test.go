package faultproxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/wedsync/backup-replication/infra/emulator"
	"github.com/wedsync/backup-replication/shared/secret"
	"github.com/wedsync/backup-replication/shared/storage"
	"github.com/wedsync/backup-replication/shared/storage/gcs"
	"github.com/wedsync/backup-replication/shared/storage/s3"
	"github.com/wedsync/backup-replication/shared/storage/supabase"
)

// The providers read the proxy's answers as they would read the real
// provider's: 5xx is transient, throttling is throttled (with the hint),
// a reset is transient, a flipped byte is an integrity failure.
func TestProvidersClassifyInjectedFaults(t *testing.T) {
	ctx := t.Context()
	g, err := emulator.StartGCS()
	emulator.Require(t, err)
	defer g.Close()
	if err := g.CreateBucket("faults"); err != nil {
		t.Fatal(err)
	}
	sb, err := emulator.StartSupabase("")
	emulator.Require(t, err)
	defer sb.Close()

	gp := startProxy(t, g.URL, GCS)
	sp := startProxy(t, sb.URL, Supabase)
	// The S3 flavor answers errors itself; the origin behind it only needs
	// to exist for the reset and flip cases, which S3 is not used for.
	origin := httptest.NewServer(http.NotFoundHandler())
	defer origin.Close()
	s3p := startProxy(t, origin.URL, S3)

	gcsProv, err := gcs.New(ctx, gcs.Config{Name: "gcs", Bucket: "faults", Endpoint: gp.URL + "/storage/v1/"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	supaProv, err := supabase.New(supabase.Config{Name: "supabase", URL: sp.URL, ServiceKey: secret.Secret(sb.ServiceKey), Bucket: "faults"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := supaProv.EnsureBucket(ctx); err != nil {
		t.Fatal(err)
	}
	s3Prov, err := s3.New(ctx, s3.Config{Name: "s3", Bucket: "faults", Region: "us-east-1", Endpoint: s3p.URL,
		UsePathStyle: true, AccessKeyID: "test", SecretAccessKey: "test"}, nil)
	if err != nil {
		t.Fatal(err)
	}

	data := bytes.Repeat([]byte("guest list, table plan; "), 2000)
	sum := sha256.Sum256(data)
	want := hex.EncodeToString(sum[:])
	for _, c := range []struct {
		name string
		p    storage.Provider
		px   *Server
	}{{"gcs", gcsProv, gp}, {"supabase", supaProv, sp}} {
		if _, err := c.p.Put(ctx, "backups/org/b1", bytes.NewReader(data), int64(len(data)), storage.PutOptions{SHA256: want}); err != nil {
			t.Fatalf("%s: put through a passing proxy: %v", c.name, err)
		}
	}

	for _, c := range []struct {
		name  string
		p     storage.Provider
		px    *Server
		fault Fault
		kind  storage.Kind
	}{
		{"s3 5xx", s3Prov, s3p, Fault{Mode: Error5xx}, storage.Transient},
		{"s3 slowdown", s3Prov, s3p, Fault{Mode: Throttle}, storage.Throttled},
		{"gcs 5xx", gcsProv, gp, Fault{Mode: Error5xx}, storage.Transient},
		{"gcs throttle", gcsProv, gp, Fault{Mode: Throttle}, storage.Throttled},
		// Google's client reopens a broken download at its offset.
		{"gcs reset", gcsProv, gp, Fault{Mode: Reset, After: 1000, Count: 1}, resumed},
		{"gcs flip", gcsProv, gp, Fault{Mode: Flip, After: 5}, storage.Integrity},
		{"supabase 5xx", supaProv, sp, Fault{Mode: Error5xx}, storage.Transient},
		{"supabase throttle", supaProv, sp, Fault{Mode: Throttle}, storage.Throttled},
		{"supabase reset", supaProv, sp, Fault{Mode: Reset, After: 1000}, storage.Transient},
		{"supabase flip", supaProv, sp, Fault{Mode: Flip, After: 5}, storage.Integrity},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := c.px.Set(c.fault); err != nil {
				t.Fatal(err)
			}
			defer c.px.Pass()
			before := c.px.Injected()
			err := readAndCheck(ctx, c.p, "backups/org/b1", want)
			if c.px.Injected() == before {
				t.Fatalf("no fault injected")
			}
			if c.kind == resumed {
				if err != nil {
					t.Fatalf("the client should resume the read after a reset: %v", err)
				}
				return
			}
			if err == nil || storage.KindOf(err) != c.kind {
				t.Fatalf("error %v (kind %v), want kind %v", err, storage.KindOf(err), c.kind)
			}
			if c.kind == storage.Throttled && storage.RetryAfterOf(err) == 0 {
				t.Errorf("throttle carried no Retry-After hint: %v", err)
			}
		})
	}
}

// resumed marks a case where the client recovers by itself.
const resumed storage.Kind = -1

// readAndCheck reads key whole and compares its SHA-256 with want.
func readAndCheck(ctx context.Context, p storage.Provider, key, want string) error {
	rc, err := p.Get(ctx, key, 0, -1)
	if err != nil {
		return err
	}
	defer rc.Close()
	h := sha256.New()
	if _, err := io.Copy(h, rc); err != nil {
		return storage.NewError("get", p.Name(), key, storage.KindOf(err), err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return storage.NewError("get", p.Name(), key, storage.Integrity, errors.New("sha256 "+got+", want "+want))
	}
	return nil
}
