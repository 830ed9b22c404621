package samtemplate

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"
)

// Function is an AWS::Serverless::Function with Globals.Function merged in
// and its event sources decoded (goformation's SAM schema drops properties
// it does not know, such as FunctionResponseTypes, so events are read here).
type Function struct {
	LogicalID string
	// Name is the function name (FunctionName, or the local default).
	Name          string
	Runtime       string
	Handler       string
	Architectures []string
	CodeURI       string
	// BuildMethod is Metadata.BuildMethod ("makefile").
	BuildMethod string
	// Role is the resolved Role property (an ARN).
	Role     string
	Timeout  time.Duration
	MemoryMB int
	// Env is the environment: Globals' variables overridden by the
	// function's own, every value as text.
	Env map[string]string

	SQS       []SQSEvent
	HTTP      []HTTPEvent
	Schedules []ScheduleEvent
	// Other lists events of types not decoded here, by name.
	Other map[string]string
}

// SQSEvent is an SQS event source mapping.
type SQSEvent struct {
	Name     string
	QueueArn string
	// BatchSize is the most messages per invocation (SAM default 10).
	BatchSize int
	// ReportBatchItemFailures is set when FunctionResponseTypes lists it.
	ReportBatchItemFailures bool
	// MaximumConcurrency is ScalingConfig.MaximumConcurrency (0: unset).
	MaximumConcurrency int
}

// HTTPEvent is an HttpApi route.
type HTTPEvent struct {
	Name   string
	Method string
	Path   string
	ApiID  string
}

// ScheduleEvent is a Schedule event (rate(...) or cron(...)).
type ScheduleEvent struct {
	Name       string
	Expression string
	Input      string
}

type rawFunction struct {
	Metadata struct {
		BuildMethod string
	}
	Properties functionProps
}

type functionProps struct {
	Runtime       string
	Handler       string
	Architectures []string
	CodeUri       any
	Role          any
	Timeout       *float64
	MemorySize    *float64
	Environment   struct {
		Variables map[string]any
	}
	Events map[string]struct {
		Type       string
		Properties map[string]any
	}
}

func newFunction(id, name string, raw, globals json.RawMessage) (*Function, error) {
	var rf rawFunction
	if err := json.Unmarshal(raw, &rf); err != nil {
		return nil, fmt.Errorf("function %s: %w", id, err)
	}
	var g functionProps
	if len(globals) > 0 {
		if err := json.Unmarshal(globals, &g); err != nil {
			return nil, fmt.Errorf("Globals.Function: %w", err)
		}
	}
	p := rf.Properties
	f := &Function{
		LogicalID: id, Name: name, BuildMethod: rf.Metadata.BuildMethod,
		Runtime: first(p.Runtime, g.Runtime), Handler: first(p.Handler, g.Handler),
		Architectures: p.Architectures, CodeURI: text(p.CodeUri), Role: text(p.Role),
		Timeout: 3 * time.Second, MemoryMB: 128,
		Env: map[string]string{}, Other: map[string]string{},
	}
	if f.CodeURI == "" {
		f.CodeURI = text(g.CodeUri)
	}
	if len(f.Architectures) == 0 {
		f.Architectures = g.Architectures
	}
	for _, t := range []*float64{g.Timeout, p.Timeout} {
		if t != nil {
			f.Timeout = time.Duration(*t) * time.Second
		}
	}
	for _, m := range []*float64{g.MemorySize, p.MemorySize} {
		if m != nil {
			f.MemoryMB = int(*m)
		}
	}
	for _, vars := range []map[string]any{g.Environment.Variables, p.Environment.Variables} {
		for k, v := range vars {
			f.Env[k] = text(v)
		}
	}
	names := make([]string, 0, len(p.Events))
	for n := range p.Events {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		ev := p.Events[n]
		props := ev.Properties
		switch ev.Type {
		case "SQS":
			s := SQSEvent{Name: n, QueueArn: text(props["Queue"]), BatchSize: 10}
			if b, ok := props["BatchSize"].(float64); ok {
				s.BatchSize = int(b)
			}
			if types, ok := props["FunctionResponseTypes"].([]any); ok {
				for _, t := range types {
					if t == "ReportBatchItemFailures" {
						s.ReportBatchItemFailures = true
					}
				}
			}
			if sc, ok := props["ScalingConfig"].(map[string]any); ok {
				if m, ok := sc["MaximumConcurrency"].(float64); ok {
					s.MaximumConcurrency = int(m)
				}
			}
			f.SQS = append(f.SQS, s)
		case "HttpApi":
			f.HTTP = append(f.HTTP, HTTPEvent{Name: n, Method: text(props["Method"]), Path: text(props["Path"]), ApiID: text(props["ApiId"])})
		case "Schedule":
			f.Schedules = append(f.Schedules, ScheduleEvent{Name: n, Expression: text(props["Schedule"]), Input: text(props["Input"])})
		default:
			f.Other[n] = ev.Type
		}
	}
	return f, nil
}

// text renders a resolved value as an environment variable would carry it.
func text(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64:
		if x == float64(int64(x)) {
			return fmt.Sprint(int64(x))
		}
		return fmt.Sprint(x)
	default:
		b, _ := json.Marshal(x)
		return string(b)
	}
}

func first(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
