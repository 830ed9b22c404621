package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Tools in the tables.
const (
	toolOurs   = "ours"
	toolRclone = "rclone"
	toolAWS    = "aws s3 cp"
	toolCurl   = "curl (ceiling)"
)

// row is one line of the copies table, measured once per run.
type row struct {
	pair, tool, mode, command string
	do                        func(ctx context.Context) (result, error)
}

// result is one measurement of a row.
type result struct {
	m          measured
	child      *childResult // our children only
	serverCPU  time.Duration
	serverPeak int64 // peak RSS of a server started for this row alone
}

// ours measures a child of this binary doing sp. srv, when set, is the
// destination server whose CPU time the row also reports.
func (e *benchEnv) ours(ctx context.Context, sp spec, srv *server, timeout time.Duration) (result, error) {
	in, _ := json.Marshal(sp)
	before := cpuOf(srv)
	m, err := job{argv: []string{e.self, "-child"}, env: childEnv(), stdin: in, timeout: timeout}.run(ctx)
	r := result{m: m, serverCPU: cpuOf(srv) - before}
	if err != nil {
		return r, err
	}
	var cr childResult
	if err := json.Unmarshal(m.stdout, &cr); err != nil {
		return r, fmt.Errorf("child said %q: %w", m.stdout, err)
	}
	r.child = &cr
	return r, nil
}

// tool measures an external program.
func (e *benchEnv) tool(ctx context.Context, argv, env []string, srv *server, timeout time.Duration) (result, error) {
	before := cpuOf(srv)
	m, err := job{argv: argv, env: env, timeout: timeout}.run(ctx)
	return result{m: m, serverCPU: cpuOf(srv) - before}, err
}

func cpuOf(s *server) time.Duration {
	if s == nil {
		return 0
	}
	return s.cpu()
}

// withFakeGCS runs measure against a fresh fake-gcs-server and records the
// emulator's own CPU time and peak memory.
func (e *benchEnv) withFakeGCS(ctx context.Context, measure func(g *server) (result, error)) (result, error) {
	g, err := e.startFakeGCS(ctx)
	if err != nil {
		return result{}, err
	}
	r, err := measure(g)
	r.serverPeak = g.stop()
	return r, err
}

// rcloneEnv configures rclone's remotes "vgw" (versitygw) and "fgcs"
// (fake-gcs-server at url) through the environment, with no config file.
func (e *benchEnv) rcloneEnv(gcsURL string) []string {
	return childEnv("RCLONE_CONFIG="+filepath.Join(e.dir, "rclone.conf"),
		"RCLONE_CONFIG_VGW_TYPE=s3", "RCLONE_CONFIG_VGW_PROVIDER=Other",
		"RCLONE_CONFIG_VGW_ENDPOINT="+e.vgw.url, "RCLONE_CONFIG_VGW_REGION="+region,
		"RCLONE_CONFIG_VGW_ACCESS_KEY_ID="+e.ak, "RCLONE_CONFIG_VGW_SECRET_ACCESS_KEY="+e.sk,
		"RCLONE_CONFIG_FGCS_TYPE=google cloud storage", "RCLONE_CONFIG_FGCS_ANONYMOUS=true",
		"RCLONE_CONFIG_FGCS_ENDPOINT="+gcsURL+"/storage/v1/")
}

// curlConfig writes a curl config file holding a credential line, so that
// the credential stays off the command line.
func (e *benchEnv) curlConfig(name, line string) (string, error) {
	p := filepath.Join(e.dir, name+".curlrc")
	return p, os.WriteFile(p, []byte(line+"\n"), 0o600)
}

// copyRows are the 1 GiB rows: each pair with our provider layer, rclone at
// the same settings, and the destination's one-request ceiling.
func (e *benchEnv) copyRows(withGCS bool) ([]row, error) {
	const t = 15 * time.Minute
	size, sum, file := e.size, e.sha256, e.file
	vgwCurl, err := e.curlConfig("vgw", fmt.Sprintf("user = %q", e.ak+":"+e.sk))
	if err != nil {
		return nil, err
	}
	supaCurl, err := e.curlConfig("supa", fmt.Sprintf("header = %q", "Authorization: Bearer "+e.supaKey))
	if err != nil {
		return nil, err
	}
	rcloneS3 := []string{"--expect-continue-timeout", "0", "--s3-no-check-bucket", "--stats", "0"}
	rows := []row{
		{"local → S3", toolOurs, "multipart, 64 MiB parts × 2", "s3.Provider.Put(file) [PartSize 64 MiB, Concurrency 2]",
			func(ctx context.Context) (result, error) {
				e.deleteS3(ctx, "ours-put")
				return e.ours(ctx, spec{Op: "put", Key: "ours-put", Size: size, SHA256: sum, File: file,
					S3: e.replica(64<<20, 2)}, e.vgw, t)
			}},
		{"local → S3", toolRclone, "multipart, 64 MiB parts × 2",
			"rclone copyto FILE vgw:replica/rclone-put --s3-chunk-size 64M --s3-upload-concurrency 2 --s3-upload-cutoff 64M " + strings.Join(rcloneS3, " "),
			func(ctx context.Context) (result, error) {
				e.deleteS3(ctx, "rclone-put")
				argv := append([]string{e.t.rclone, "copyto", file, "vgw:" + replicaBucket + "/rclone-put",
					"--s3-chunk-size", "64M", "--s3-upload-concurrency", "2", "--s3-upload-cutoff", "64M"}, rcloneS3...)
				return e.tool(ctx, argv, e.rcloneEnv(""), e.vgw, t)
			}},
	}
	if e.t.aws != "" {
		cfg := filepath.Join(e.dir, "aws.config")
		os.WriteFile(cfg, []byte("[default]\ns3 =\n  multipart_chunksize = 64MB\n  multipart_threshold = 64MB\n"), 0o600)
		rows = append(rows, row{"local → S3", toolAWS, "multipart, 64 MB parts × 10 (awscli default)",
			"aws --endpoint-url URL s3 cp FILE s3://replica/aws-put (multipart_chunksize 64MB)",
			func(ctx context.Context) (result, error) {
				e.deleteS3(ctx, "aws-put")
				env := childEnv("AWS_CONFIG_FILE="+cfg, "AWS_ACCESS_KEY_ID="+e.ak, "AWS_SECRET_ACCESS_KEY="+e.sk,
					"AWS_DEFAULT_REGION="+region, "AWS_SHARED_CREDENTIALS_FILE=/dev/null")
				return e.tool(ctx, []string{e.t.aws, "--endpoint-url", e.vgw.url, "s3", "cp", "--only-show-errors",
					file, "s3://" + replicaBucket + "/aws-put"}, env, e.vgw, t)
			}})
	}
	rows = append(rows,
		row{"local → S3", toolCurl, "one PUT, unsigned payload",
			`curl -K AUTH --aws-sigv4 aws:amz:us-east-1:s3 -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" -T FILE URL/replica/curl-put`,
			func(ctx context.Context) (result, error) {
				e.deleteS3(ctx, "curl-put")
				return e.tool(ctx, []string{e.t.curl, "-sS", "-f", "-o", "/dev/null", "-K", vgwCurl,
					"--aws-sigv4", "aws:amz:" + region + ":s3", "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD",
					"-H", "Expect:", "-T", file, e.vgw.url + "/" + replicaBucket + "/curl-put"}, childEnv(), e.vgw, t)
			}},
		row{"S3 read", toolCurl, "one GET to /dev/null (what every streamed copy first pays)",
			`curl -K AUTH --aws-sigv4 aws:amz:us-east-1:s3 -o /dev/null URL/landing/KEY`,
			func(ctx context.Context) (result, error) {
				return e.tool(ctx, []string{e.t.curl, "-sS", "-f", "-o", "/dev/null", "-K", vgwCurl,
					"--aws-sigv4", "aws:amz:" + region + ":s3", "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD",
					e.vgw.url + "/" + landingBucket + "/" + landingKey}, childEnv(), e.vgw, t)
			}},
		row{"S3 → S3", toolOurs, "server-side (storage.Copier: CopyObject)", "storage.As[storage.Copier](s3).Copy(landing locator)",
			func(ctx context.Context) (result, error) {
				e.deleteS3(ctx, "ours-copy")
				return e.ours(ctx, spec{Op: "copy", Key: "ours-copy", Size: size, SHA256: sum, Landing: e.landing(),
					LandingKey: landingKey, S3: e.replica(0, 0)}, e.vgw, t)
			}},
		row{"S3 → S3", toolRclone, "server-side (CopyObject)",
			"rclone copyto vgw:landing/KEY vgw:replica/rclone-copy " + strings.Join(rcloneS3, " "),
			func(ctx context.Context) (result, error) {
				e.deleteS3(ctx, "rclone-copy")
				argv := append([]string{e.t.rclone, "copyto", "vgw:" + landingBucket + "/" + landingKey,
					"vgw:" + replicaBucket + "/rclone-copy"}, rcloneS3...)
				return e.tool(ctx, argv, e.rcloneEnv(""), e.vgw, t)
			}},
	)
	rows = append(rows, e.sealRows(t)...)
	if withGCS {
		rows = append(rows, e.gcsRows(t)...)
	}
	rows = append(rows, e.supabaseRows(t, supaCurl)...)
	return rows, nil
}

func (e *benchEnv) gcsRows(t time.Duration) []row {
	size, sum := e.size, e.sha256
	gcsSpec := func(g *server, chunk int, key string) spec {
		return spec{Op: "stream", Key: key, Size: size, SHA256: sum, Landing: e.landing(), LandingKey: landingKey,
			GCS: &gcsConf{Endpoint: g.url, Bucket: gcsBucket, ChunkSize: chunk}}
	}
	return []row{
		{"S3 → GCS", toolOurs, "resumable, 16 MiB chunks", "landing.Source.Open → gcs.Provider.Put [ChunkSize 16 MiB]",
			func(ctx context.Context) (result, error) {
				return e.withFakeGCS(ctx, func(g *server) (result, error) {
					return e.ours(ctx, gcsSpec(g, 16<<20, "ours-16m"), g, 2*t)
				})
			}},
		{"S3 → GCS", toolOurs, "one request (ChunkSize 0)", "landing.Source.Open → gcs.Provider.Put [ChunkSize 0]",
			func(ctx context.Context) (result, error) {
				return e.withFakeGCS(ctx, func(g *server) (result, error) {
					return e.ours(ctx, gcsSpec(g, 0, "ours-one"), g, t)
				})
			}},
		{"S3 → GCS", toolRclone, "resumable, 16 MiB chunks (rclone 1.60's fixed default)",
			"rclone copyto vgw:landing/KEY fgcs:offsite/rclone --gcs-no-check-bucket --expect-continue-timeout 0",
			func(ctx context.Context) (result, error) {
				return e.withFakeGCS(ctx, func(g *server) (result, error) {
					return e.tool(ctx, []string{e.t.rclone, "copyto", "vgw:" + landingBucket + "/" + landingKey,
						"fgcs:" + gcsBucket + "/rclone", "--gcs-no-check-bucket", "--expect-continue-timeout", "0",
						"--stats", "0"}, e.rcloneEnv(g.url), g, 2*t)
				})
			}},
		{"S3 → GCS", toolCurl, "one POST, uploadType=media (from disk)",
			`curl -X POST -T FILE "URL/upload/storage/v1/b/offsite/o?uploadType=media&name=curl"`,
			func(ctx context.Context) (result, error) {
				return e.withFakeGCS(ctx, func(g *server) (result, error) {
					return e.tool(ctx, []string{e.t.curl, "-sS", "-f", "-o", "/dev/null", "-X", "POST", "-H", "Expect:",
						"-H", "Content-Type: application/octet-stream", "-T", e.file,
						g.url + "/upload/storage/v1/b/" + gcsBucket + "/o?uploadType=media&name=curl"}, childEnv(), g, t)
				})
			}},
	}
}

func (e *benchEnv) supabaseRows(t time.Duration, auth string) []row {
	size, sum := e.size, e.sha256
	supaSpec := func(threshold int64, key string) spec {
		return spec{Op: "stream", Key: key, Size: size, SHA256: sum, Landing: e.landing(), LandingKey: landingKey,
			Supabase: &supaConf{URL: e.supa.url, Key: e.supaKey, Bucket: supaBucket, TUSThreshold: threshold}}
	}
	return []row{
		{"S3 → Supabase", toolOurs, "TUS, 6 MiB chunks", "landing.Source.Open → supabase.Provider.Put [TUS above 6 MiB]",
			func(ctx context.Context) (result, error) {
				defer e.deleteSupabase(ctx, "ours-tus")
				return e.ours(ctx, supaSpec(0, "ours-tus"), e.supa, t)
			}},
		{"S3 → Supabase", toolOurs, "one request (TUSThreshold ≥ size)", "landing.Source.Open → supabase.Provider.Put [TUSThreshold = size]",
			func(ctx context.Context) (result, error) {
				defer e.deleteSupabase(ctx, "ours-one")
				return e.ours(ctx, supaSpec(size, "ours-one"), e.supa, t)
			}},
		{"S3 → Supabase", toolCurl, "one POST (from disk)",
			`curl -K AUTH -X POST -H "x-upsert: true" -T FILE URL/storage/v1/object/primary/curl`,
			func(ctx context.Context) (result, error) {
				defer e.deleteSupabase(ctx, "curl")
				return e.tool(ctx, []string{e.t.curl, "-sS", "-f", "-o", "/dev/null", "-K", auth, "-X", "POST",
					"-H", "Expect:", "-H", "x-upsert: true", "-H", "Content-Type: application/octet-stream",
					"-T", e.file, e.supa.url + "/storage/v1/object/" + supaBucket + "/curl"}, childEnv(), e.supa, t)
			}},
	}
}

// uploadLanding puts the object in the landing bucket (not measured).
func (e *benchEnv) uploadLanding(ctx context.Context) error {
	_, err := e.ours(ctx, spec{Op: "put", Key: landingKey, Size: e.size, SHA256: e.sha256, File: e.file,
		S3: &s3Conf{Endpoint: e.vgw.url, Bucket: landingBucket, AccessKey: e.ak, SecretKey: e.sk}}, nil, 15*time.Minute)
	return err
}
