package config

import (
	"strings"
	"testing"
)

func TestRetention(t *testing.T) {
	off, err := Retention(Map(nil))
	if err != nil || off.Enabled() {
		t.Fatalf("no RETENTION_POLICY: %+v %v", off, err)
	}
	c, err := Retention(Map(map[string]string{
		"RETENTION_POLICY":      `{"keepAllDays":30,"weeklyMonths":6,"monthlyYears":7,"organizations":{"org_a":{"keepAllDays":90}}}`,
		"RETENTION_MAX_PER_RUN": "10",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := c.For("org_b"); !ok || p.KeepAllDays != 30 || p.WeeklyMonths != 6 || p.MonthlyYears != 7 || c.MaxPerRun != 10 {
		t.Errorf("loaded %+v (%+v)", c, p)
	}
	_, err = Retention(Map(map[string]string{"RETENTION_POLICY": `{"keepAllDays":0}`, "RETENTION_MAX_PER_RUN": "many"}))
	if err == nil || !strings.Contains(err.Error(), "RETENTION_POLICY") || !strings.Contains(err.Error(), "RETENTION_MAX_PER_RUN") {
		t.Errorf("bad values: %v", err)
	}
}
