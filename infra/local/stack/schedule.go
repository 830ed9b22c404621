package stack

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/uuid"

	"github.com/wedsync/backup-replication/infra/local/rie"
)

// schedule plays an EventBridge schedule rule: it invokes the function with
// a "Scheduled Event" every interval, the first time right away.
type schedule struct {
	fn        *rie.Function
	interval  time.Duration
	ruleArn   string
	accountID string
	region    string
	log       *slog.Logger
}

func (s *schedule) run(ctx context.Context) {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		payload, _ := json.Marshal(ScheduledEvent(s.accountID, s.region, s.ruleArn, time.Now()))
		resp, err := s.fn.Invoke(ctx, payload)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			s.log.Warn("scheduled invoke failed", "op", "schedule", "error", err.Error())
		case resp.FunctionError != "":
			s.log.Warn("scheduled invoke returned an error", "op", "schedule", "function_error", resp.FunctionError)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ScheduledEvent is the event an EventBridge schedule rule sends.
func ScheduledEvent(accountID, region, ruleArn string, at time.Time) events.EventBridgeEvent {
	return events.EventBridgeEvent{
		Version: "0", ID: uuid.NewString(), DetailType: "Scheduled Event", Source: "aws.events",
		AccountID: accountID, Time: at.UTC().Truncate(time.Second), Region: region,
		Resources: []string{ruleArn}, Detail: json.RawMessage(`{}`),
	}
}

var rateExpr = regexp.MustCompile(`^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$`)

// RateInterval parses a rate(...) expression; cron(...) is not played locally.
func RateInterval(expr string) (time.Duration, error) {
	m := rateExpr.FindStringSubmatch(expr)
	if m == nil {
		return 0, fmt.Errorf("schedule %q: only rate(N unit) is played locally", expr)
	}
	n, _ := strconv.Atoi(m[1])
	unit := map[string]time.Duration{"minute": time.Minute, "minutes": time.Minute, "hour": time.Hour, "hours": time.Hour, "day": 24 * time.Hour, "days": 24 * time.Hour}[m[2]]
	return time.Duration(n) * unit, nil
}
