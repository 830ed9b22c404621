package s3

import (
	"context"
	"io"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/middleware"

	"github.com/wedsync/backup-replication/shared/storage"
)

// tailGate passes a verifying reader through but holds back the stream's
// last byte until the whole source has been read and matched its declared
// size and SHA-256. An HTTP request whose body fails before its last byte
// cannot complete, so the server never commits mismatching bytes, whether or
// not it checks the checksum headers itself.
type tailGate struct {
	v    *storage.VerifyingReader
	size int64
	n    int64
	err  error // the error the gate returned, if any
}

func (g *tailGate) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	if g.n == g.size {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	if rem := g.size - 1 - g.n; rem > 0 {
		if int64(len(p)) > rem {
			p = p[:rem]
		}
		n, err := g.v.Read(p)
		g.n += int64(n)
		if err != nil {
			// The verifier answers io.EOF only after the full size: an
			// early end is an integrity error it reports itself.
			g.err = err
		}
		return n, err
	}
	// The last byte: read it, make sure the source ends here and matches,
	// and only then release it.
	var last [1]byte
	if _, err := io.ReadFull(g.v, last[:]); err != nil {
		g.err = err
		return 0, err
	}
	if err := g.v.Verify(); err != nil {
		g.err = err
		return 0, err
	}
	p[0] = last[0]
	g.n++
	return 1, nil
}

// withPayloadHash signs the request with a payload hash we already know
// (the expected SHA-256 of the body), so the SDK does not read the body to
// compute one: the body can then stream unbuffered over plain HTTP as well,
// and a server that checks x-amz-content-sha256 refuses other bytes.
func withPayloadHash(hexSHA256 string) func(*s3.Options) {
	return func(o *s3.Options) {
		o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
			return stack.Finalize.Insert(middleware.FinalizeMiddlewareFunc("KnownPayloadHash",
				func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
					return next.HandleFinalize(v4.SetPayloadHash(ctx, hexSHA256), in)
				}), (*v4.ComputePayloadSHA256)(nil).ID(), middleware.Before)
		})
	}
}

// body classifies the errors of a Get stream, so a caller reading it sees
// the same kinds as from the provider's methods.
type body struct {
	rc  io.ReadCloser
	p   *Provider
	key string
}

func (b *body) Read(buf []byte) (int, error) {
	n, err := b.rc.Read(buf)
	if err != nil && err != io.EOF {
		err = b.p.fail("get", b.key, err)
	}
	return n, err
}

func (b *body) Close() error { return b.rc.Close() }
