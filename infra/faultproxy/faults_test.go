package faultproxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestStallUntilTheClientGivesUp(t *testing.T) {
	b := newBackend(t, 10)
	p := startProxy(t, b.URL, GCS)
	p.Set(Fault{Mode: Stall})
	for _, method := range []string{http.MethodGet, http.MethodPut} {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		req, _ := http.NewRequestWithContext(ctx, method, p.URL+"/o", strings.NewReader("some bytes"))
		_, err := http.DefaultClient.Do(req)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s: err %v, want the client's deadline", method, err)
		}
	}
	if n := len(b.requests()); n != 0 {
		t.Errorf("backend saw %d stalled requests", n)
	}
	if p.Injected() != 2 {
		t.Errorf("injected %d", p.Injected())
	}
}

func TestStallForThenGoOn(t *testing.T) {
	b := newBackend(t, 50_000)
	p := startProxy(t, b.URL, S3)
	p.Set(Fault{Mode: Stall, For: Duration(50 * time.Millisecond), After: 1000})
	resp, body, err := get(t, p.URL+"/o")
	if err != nil || resp.StatusCode != 200 || !bytes.Equal(body, b.body) {
		t.Fatalf("after a stall the body should arrive whole: %v, %d bytes", err, len(body))
	}
}

func TestStallUploadMidBody(t *testing.T) {
	b := newBackend(t, 10)
	p := startProxy(t, b.URL, Supabase)
	p.Set(Fault{Mode: Stall, Direction: Request, After: 4096})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, p.URL+"/o", bytes.NewReader(make([]byte, 100_000)))
	if _, err := http.DefaultClient.Do(req); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want the client's deadline", err)
	}
	p.Close() // ends the held upstream request, if the client's hang-up was not seen
	waitFor(t, func() bool { return len(b.requests()) == 1 })
	got := b.requests()[0]
	if got.bodyErr == nil || len(got.body) > 4096 {
		t.Errorf("backend got %d bytes and err %v; want at most 4096 and a broken body", len(got.body), got.bodyErr)
	}
}

func TestResetResponseMidBody(t *testing.T) {
	b := newBackend(t, 200_000)
	p := startProxy(t, b.URL, S3)
	p.Set(Fault{Mode: Reset, After: 65_000})
	resp, err := http.Get(p.URL + "/o")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil {
		t.Fatalf("read %d bytes and no error; want a reset mid-body", len(body))
	}
	if len(body) != 65_000 || !bytes.Equal(body, b.body[:65_000]) {
		t.Errorf("got %d bytes before the reset, want the first 65000", len(body))
	}
	if p.Stats().ByMode[Reset] != 1 {
		t.Errorf("stats %+v", p.Stats())
	}
	// A body shorter than After passes whole and injects nothing.
	p.Set(Fault{Mode: Reset, After: 1 << 30})
	if _, body, err := get(t, p.URL+"/o"); err != nil || len(body) != len(b.body) {
		t.Errorf("short body: %d bytes, %v", len(body), err)
	}
	if p.Injected() != 1 {
		t.Errorf("injected %d, want 1", p.Injected())
	}
}

func TestResetUploadMidBody(t *testing.T) {
	b := newBackend(t, 10)
	p := startProxy(t, b.URL, GCS)
	p.Set(Fault{Mode: Reset, Direction: Request, After: 10_000})
	req, _ := http.NewRequest(http.MethodPut, p.URL+"/upload", bytes.NewReader(make([]byte, 300_000)))
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("upload answered %d; want a reset connection", resp.StatusCode)
	}
	waitFor(t, func() bool { return len(b.requests()) == 1 })
	got := b.requests()[0]
	if got.bodyErr == nil || len(got.body) > 10_000 {
		t.Errorf("backend got %d bytes, err %v: want a truncated request", len(got.body), got.bodyErr)
	}
	if p.Injected() != 1 {
		t.Errorf("injected %d", p.Injected())
	}
}

func TestFlipOneByte(t *testing.T) {
	b := newBackend(t, 100_000)
	p := startProxy(t, b.URL, S3)
	p.Set(Fault{Mode: Flip, After: 70_001, Count: 1})
	_, body, err := get(t, p.URL+"/o")
	if err != nil {
		t.Fatal(err)
	}
	if diff := differing(body, b.body); len(diff) != 1 || diff[0] != 70_001 {
		t.Errorf("downloaded body differs at %v; want exactly offset 70001", diff)
	}

	up := bytes.Repeat([]byte("wedding "), 10_000)
	p.Set(Fault{Mode: Flip, Direction: Request, After: 0, Methods: []string{"PUT"}})
	req, _ := http.NewRequest(http.MethodPut, p.URL+"/o", bytes.NewReader(up))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	got := b.requests()
	if diff := differing(got[len(got)-1].body, up); len(diff) != 1 || diff[0] != 0 {
		t.Errorf("uploaded body differs at %v; want exactly offset 0", diff)
	}
	if p.Stats().ByMode[Flip] != 2 {
		t.Errorf("stats %+v", p.Stats())
	}
}

func differing(a, b []byte) []int {
	var out []int
	if len(a) != len(b) {
		return []int{-1}
	}
	for i := range a {
		if a[i] != b[i] {
			out = append(out, i)
		}
	}
	return out
}
