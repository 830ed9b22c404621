package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/keys"
	"github.com/wedsync/backup-replication/shared/seal"
	"github.com/wedsync/backup-replication/shared/secret"
	"github.com/wedsync/backup-replication/shared/storage"
	"github.com/wedsync/backup-replication/shared/storage/gcs"
	s3p "github.com/wedsync/backup-replication/shared/storage/s3"
	"github.com/wedsync/backup-replication/shared/storage/supabase"
)

// headerRead is how much of a copy is read to find its clear header.
const headerRead = 80 << 10

// restoreFrom restores one provider's copy without the API: the header
// names the backup, the keys table and KMS give its data key.
func restoreFrom(ctx context.Context, o options, getenv func(string) string, stderr io.Writer) error {
	scheme, bucket, key, err := parseFrom(o.from)
	if err != nil {
		return err
	}
	var opts []func(*awsconfig.LoadOptions) error
	if o.region != "" {
		opts = append(opts, awsconfig.WithRegion(o.region))
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return fmt.Errorf("AWS configuration: %w", err)
	}
	prov, err := openProvider(ctx, scheme, bucket, o, awsCfg, getenv)
	if err != nil {
		return err
	}
	rc, err := prov.Get(ctx, key, 0, headerRead)
	if err != nil {
		return fmt.Errorf("read %s: %w", o.from, err)
	}
	h, _, err := seal.ReadHeader(rc)
	rc.Close()
	if err != nil {
		return fmt.Errorf("%s is not a sealed backup: %w", o.from, err)
	}
	fmt.Fprintf(stderr, "restore: %s holds backup %s of organization %s (%s, %s plaintext, key %s)\n",
		o.from, h.BackupID, h.OrganizationID, h.Format, mib(h.PlaintextSize), h.KMSKeyID)

	db := dynamodb.NewFromConfig(awsCfg)
	ks, err := keys.New(keys.Config{Table: o.keysTable, DefaultKeyID: h.KMSKeyID}, kms.NewFromConfig(awsCfg), db)
	if err != nil {
		return err
	}
	dataKey, _, err := ks.Open(ctx, h.OrganizationID, h.BackupID)
	if errors.Is(err, keys.ErrShredded) {
		return fmt.Errorf("backup %s was erased: its data key is destroyed and no copy can be decrypted", h.BackupID)
	}
	if err != nil {
		return fmt.Errorf("unwrap the data key of %s: %w", h.BackupID, err)
	}
	want, err := expectedSHA256(ctx, o, db, h)
	if err != nil {
		return err
	}

	out, err := newOutput(o.out)
	if err != nil {
		return err
	}
	defer out.discard()
	body, err := prov.Get(ctx, key, 0, -1)
	if err != nil {
		return fmt.Errorf("read %s: %w", o.from, err)
	}
	defer body.Close()
	prog := newProgress(stderr, "from "+scheme, h.PlaintextSize)
	sum, _, _, err := decrypt(body, dataKey, io.MultiWriter(out.f, prog))
	switch {
	case err != nil:
		prog.done("failed")
		return err
	case want != "" && !sameHex(sum, want):
		prog.done("SHA-256 mismatch")
		return fmt.Errorf("plaintext SHA-256 %s, declared %s", sum, want)
	case want == "":
		prog.done("SHA-256 " + sum + " (authenticated; no declared SHA-256 to compare: give -sha256 or -backups-table)")
	default:
		prog.done("SHA-256 " + sum + " matches")
	}
	return out.commit()
}

// expectedSHA256 is -sha256, or the declared SHA-256 from the backups
// table, or "" when neither is given.
func expectedSHA256(ctx context.Context, o options, db *dynamodb.Client, h seal.Header) (string, error) {
	if o.sha256 != "" || o.backupsTable == "" {
		return strings.ToLower(o.sha256), nil
	}
	cat, err := catalog.NewDynamo(db, catalog.Config{BackupsTable: o.backupsTable, ReplicasTable: o.backupsTable})
	if err != nil {
		return "", err
	}
	b, err := cat.GetBackup(ctx, h.BackupID)
	if err != nil {
		return "", fmt.Errorf("read backup %s from %s: %w", h.BackupID, o.backupsTable, err)
	}
	if b.OrganizationID != h.OrganizationID || b.Size != h.PlaintextSize {
		return "", fmt.Errorf("the catalog's backup %s (organization %s, %d bytes) does not match the copy's header", b.ID, b.OrganizationID, b.Size)
	}
	return b.SHA256, nil
}

// parseFrom splits s3://bucket/key, gs://bucket/key or supabase://bucket/key.
func parseFrom(from string) (scheme, bucket, key string, err error) {
	u, err := url.Parse(from)
	if err != nil || u.Host == "" || strings.Trim(u.Path, "/") == "" {
		return "", "", "", fmt.Errorf("-from %q is not scheme://bucket/key", from)
	}
	switch u.Scheme {
	case "s3", "gs", "supabase":
	default:
		return "", "", "", fmt.Errorf("-from %q: the scheme must be s3, gs or supabase", from)
	}
	return u.Scheme, u.Host, strings.TrimPrefix(u.Path, "/"), nil
}

// openProvider builds the provider that reads bucket.
func openProvider(ctx context.Context, scheme, bucket string, o options, awsCfg aws.Config, getenv func(string) string) (storage.Provider, error) {
	switch scheme {
	case "s3":
		endpoint := o.s3Endpoint
		if endpoint == "" {
			endpoint = aws.ToString(awsCfg.BaseEndpoint)
		}
		cfg := s3p.Config{Name: "s3", Bucket: bucket, Region: awsCfg.Region, Endpoint: endpoint, UsePathStyle: endpoint != ""}
		return s3p.NewWithClient(cfg, awss3.NewFromConfig(awsCfg, s3p.ClientOptions(cfg)), nil)
	case "gs":
		cfg := gcs.Config{Name: "gcs", Bucket: bucket, Endpoint: o.gcsEndpoint}
		if o.gcsCreds != "" {
			b, err := os.ReadFile(o.gcsCreds)
			if err != nil {
				return nil, fmt.Errorf("-gcs-credentials: %w", err)
			}
			cfg.CredentialsJSON = gcs.Secret(b)
		}
		return gcs.New(ctx, cfg, nil)
	default:
		if o.supabaseURL == "" || getenv("SUPABASE_SERVICE_KEY") == "" {
			return nil, errors.New("supabase:// needs -supabase-url and $SUPABASE_SERVICE_KEY")
		}
		return supabase.New(supabase.Config{Name: "supabase", URL: o.supabaseURL, Bucket: bucket,
			ServiceKey: secret.Secret(getenv("SUPABASE_SERVICE_KEY"))}, nil)
	}
}
