package emulator

import (
	"fmt"

	"github.com/fsouza/fake-gcs-server/fakestorage"
)

// GCS is an in-process fake-gcs-server listening on 127.0.0.1 over plain
// HTTP, so that clients configured the STORAGE_EMULATOR_HOST way (an
// http:// endpoint and no authentication) reach it.
//
// fake-gcs-server keeps objects in memory and rehashes the whole object for
// every resumable chunk: send it large objects in large chunks, and never
// more than about 1 GiB.
type GCS struct {
	// URL is the server's base URL, e.g. "http://127.0.0.1:40123". The JSON
	// API lives under URL + "/storage/v1/".
	URL string
	// Server is the running fake, for tests that want to look behind the API.
	Server *fakestorage.Server
}

// StartGCS starts fake-gcs-server in this process on a free loopback port
// with an in-memory backend, and returns once it is listening.
func StartGCS() (*GCS, error) {
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{
		Scheme: "http",
		Host:   "127.0.0.1",
		// Port 0: httptest picks a free loopback port. No Writer: no
		// request log.
	})
	if err != nil {
		return nil, fmt.Errorf("start fake-gcs-server: %w", err)
	}
	return &GCS{URL: srv.URL(), Server: srv}, nil
}

// Endpoint is the JSON API endpoint to give a storage client
// (option.WithEndpoint), e.g. "http://127.0.0.1:40123/storage/v1/".
func (g *GCS) Endpoint() string { return g.URL + "/storage/v1/" }

// CreateBucket creates the named bucket; creating an existing bucket is not
// an error.
func (g *GCS) CreateBucket(name string) (err error) {
	// fakestorage reports backend failures by panicking; turn that into an
	// error for the caller.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("fake-gcs-server: create bucket %q: %v", name, r)
		}
	}()
	g.Server.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: name})
	return nil
}

// Close stops the server and drops everything it held.
func (g *GCS) Close() error {
	g.Server.Stop()
	return nil
}
