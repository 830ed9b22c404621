package main

import (
	"context"
	"fmt"
	"time"
)

// memTarget is how far above its baseline a Put may go, whatever the size.
const memTarget = 64 << 20

// memConfig is one provider and mode whose Put is measured at every size,
// from the generated stream into a sink at the network edge.
type memConfig struct {
	provider, mode, sink string
	spec                 func(size int64, sum string) spec
	srv                  *server
	cleanup              func(ctx context.Context, key string)
}

// memPoint is one Put of one size.
type memPoint struct {
	size     int64
	peak     int64
	baseline int64
	mbps     float64
	err      error
}

// memConfigs lists what the memory table measures. sink is the GCS sink.
func (e *benchEnv) memConfigs(sink *server) []memConfig {
	s3Spec := func(part int64, conc int) func(int64, string) spec {
		return func(size int64, sum string) spec {
			return spec{Op: "put", Key: "mem", Size: size, SHA256: sum, S3: e.replica(part, conc)}
		}
	}
	gcsSpec := func(chunk int) func(int64, string) spec {
		return func(size int64, sum string) spec {
			return spec{Op: "put", Key: "mem", Size: size, SHA256: sum,
				GCS: &gcsConf{Endpoint: sink.url, Bucket: gcsBucket, ChunkSize: chunk}}
		}
	}
	supaSpec := func(one bool) func(int64, string) spec {
		return func(size int64, sum string) spec {
			c := &supaConf{URL: e.supa.url, Key: e.supaKey, Bucket: supaBucket}
			if one {
				c.TUSThreshold = size
			}
			return spec{Op: "put", Key: "mem", Size: size, SHA256: sum, Supabase: c}
		}
	}
	delS3 := func(ctx context.Context, key string) { e.deleteS3(ctx, key) }
	delSupa := func(ctx context.Context, key string) { e.deleteSupabase(ctx, key) }
	return []memConfig{
		{"S3", "multipart, 64 MiB parts × 2 (default)", "versitygw", s3Spec(64<<20, 2), e.vgw, delS3},
		{"S3", "multipart, 16 MiB parts × 2", "versitygw", s3Spec(16<<20, 2), e.vgw, delS3},
		{"GCS", "resumable, 16 MiB chunks", "GCS sink", gcsSpec(16 << 20), sink, nil},
		{"GCS", "one request (ChunkSize 0)", "GCS sink", gcsSpec(0), sink, nil},
		{"Supabase", "TUS, 6 MiB chunks", "supaemu", supaSpec(false), e.supa, delSupa},
		{"Supabase", "one request", "supaemu", supaSpec(true), e.supa, delSupa},
	}
}

// measureMemory runs every config at every size, once.
func (e *benchEnv) measureMemory(ctx context.Context, sizes []int64) ([]memConfig, [][]memPoint, error) {
	sums := map[int64]string{}
	for _, n := range sizes {
		e.logf("hashing the %s stream", sizeName(n))
		s, err := sha256Of(n)
		if err != nil {
			return nil, nil, err
		}
		sums[n] = s
	}
	sink, err := e.startGCSSink(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer sink.stop()
	cfgs := e.memConfigs(sink)
	points := make([][]memPoint, len(cfgs))
	for i, c := range cfgs {
		for _, n := range sizes {
			if ctx.Err() != nil {
				return cfgs, points, ctx.Err()
			}
			r, err := e.ours(ctx, c.spec(n, sums[n]), c.srv, 20*time.Minute)
			p := memPoint{size: n, peak: r.m.peakRSS, err: err}
			if err == nil {
				p.baseline = r.child.BaselineRSS
				p.mbps = float64(n) / 1e6 / r.m.wall.Seconds()
				e.logf("memory %s %s %s: peak %.0f MiB, baseline %.0f MiB, %.1f MB/s", c.provider, c.mode,
					sizeName(n), mib(p.peak), mib(p.baseline), p.mbps)
			} else {
				e.logf("memory %s %s %s: %v", c.provider, c.mode, sizeName(n), err)
			}
			if c.cleanup != nil {
				c.cleanup(ctx, "mem")
			}
			points[i] = append(points[i], p)
		}
	}
	return cfgs, points, nil
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// verdict says whether a config's Puts stayed within memTarget of their
// baselines at every size.
func verdict(ps []memPoint) string {
	worst := int64(0)
	for _, p := range ps {
		if p.err != nil {
			return "failed"
		}
		worst = max(worst, p.peak-p.baseline)
	}
	if worst <= memTarget {
		return fmt.Sprintf("met (max +%.0f MiB)", mib(worst))
	}
	return fmt.Sprintf("missed (max +%.0f MiB)", mib(worst))
}
