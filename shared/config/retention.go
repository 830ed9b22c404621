package config

import (
	"errors"

	"github.com/wedsync/backup-replication/shared/retention"
)

// Retention reads the retention policy (package retention) and validates it:
//
//	RETENTION_POLICY        the policy document (retention.ParseConfig), e.g.
//	                        {"keepAllDays":30,"weeklyMonths":6,"monthlyYears":7,
//	                         "organizations":{"org_123":{"keepAllDays":90,"weeklyMonths":12,"monthlyYears":10}}};
//	                        empty: retention is off and nothing expires
//	RETENTION_MAX_PER_RUN   backups one run erases at most (default: the document's maxPerRun, else 25)
//
// The health function calls it beside its own loader; its scheduled run
// applies the policy at most once an hour.
func Retention(getenv Getenv) (retention.Config, error) {
	r := &reader{get: getenv}
	var c retention.Config
	if raw := r.str("RETENTION_POLICY", ""); raw != "" {
		var err error
		if c, err = retention.ParseConfig([]byte(raw)); err != nil {
			r.fail("RETENTION_POLICY", "%v", err)
		}
	}
	if n := r.int("RETENTION_MAX_PER_RUN", 0); n > 0 {
		c.MaxPerRun = n
	}
	return c, errors.Join(r.err())
}
