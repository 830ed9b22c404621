package api_test

import (
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/wedsync/backup-replication/shared/api"
	"github.com/wedsync/backup-replication/shared/breaker"
	"github.com/wedsync/backup-replication/shared/storage"
)

// TestBreakerHealth reads real breakers in DynamoDB (moto): one tripped by
// five transient failures shows as down in GET /providers and /status, and
// downloads skip it.
func TestBreakerHealth(t *testing.T) {
	m := startMoto(t)
	awsCfg, _ := m.AWSConfig(t.Context())
	db := dynamodb.NewFromConfig(awsCfg)
	table := fmt.Sprintf("api-breakers-%d", seq.Add(1))
	if err := breaker.EnsureTable(t.Context(), db, table); err != nil {
		t.Fatal(err)
	}
	bs, err := breaker.NewDynamoStore(db, table)
	if err != nil {
		t.Fatal(err)
	}
	var brs []*breaker.Breaker
	for _, name := range []string{"supabase", "s3", "gcs"} {
		b, err := breaker.New(bs, breaker.Settings{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		brs = append(brs, b)
	}
	for range breaker.DefaultTripAfter {
		done, err := brs[0].Allow(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		done(&storage.Error{Op: "put", Provider: "supabase", Kind: storage.Transient})
	}
	e := newEnv(t, func(_ *api.Config, d *api.Deps) { d.Health = api.BreakerHealth(brs...) })
	var out struct{ Providers []api.ProviderSummary }
	if r := e.call("GET", "/providers", "org1", nil); r.Status != 200 {
		t.Fatalf("providers: %d %s", r.Status, r.Body)
	} else {
		r.decode(t, &out)
	}
	got := map[string]api.ProviderSummary{}
	for _, p := range out.Providers {
		got[p.Name] = p
	}
	if h := got["supabase"].Health; h.State != api.HealthDown || h.Breaker != "open" || h.Since == nil {
		t.Errorf("tripped supabase: %+v", h)
	}
	for _, n := range []string{"s3", "gcs"} {
		if h := got[n].Health; h.State != api.HealthUp || h.Breaker != "closed" {
			t.Errorf("%s: %+v", n, h)
		}
	}
	if p := got["supabase"]; p.Role != "primary" || p.FailureDomain != "supabase/default" || p.Configured {
		t.Errorf("supabase row: %+v", p)
	}
}
