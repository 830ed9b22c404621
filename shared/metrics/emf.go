// Package metrics writes counts, bytes and durations per provider and
// operation as CloudWatch Embedded Metric Format: one JSON object per line,
// which CloudWatch Logs turns into metrics when a Lambda prints it. No agent,
// no API call, nothing to fail in the request path.
package metrics

import (
	"encoding/json"
	"io"
	"sync"
	"time"
)

// Namespace is the CloudWatch namespace of every metric we emit.
const Namespace = "WS191"

// Dimension names. Every metric is emitted with both.
const (
	DimProvider  = "Provider"
	DimOperation = "Operation"
)

// Metric names.
const (
	MetricCount      = "Count"
	MetricErrors     = "Errors"
	MetricBytes      = "Bytes"
	MetricDurationMs = "DurationMs"
)

// Measurement is one operation's outcome.
type Measurement struct {
	Provider  string        // "supabase", "s3", "gcs", …
	Operation string        // "replicate", "put", "copy", "verify", …
	Count     int64         // usually 1
	Errors    int64         // 1 when the operation failed
	Bytes     int64         // bytes moved
	Duration  time.Duration // wall time of the operation
	// Properties are extra searchable fields on the log line (not metrics,
	// not dimensions), e.g. backup_id. Never put secrets here.
	Properties map[string]string
}

// Emitter records measurements. Implementations must be safe for
// concurrent use and must not block for long.
type Emitter interface {
	Emit(m Measurement)
}

// Discard is an Emitter that drops everything.
var Discard Emitter = discard{}

type discard struct{}

func (discard) Emit(Measurement) {}

// EMF writes each measurement as one EMF JSON line to an io.Writer (on
// Lambda: os.Stdout). It is safe for concurrent use; lines never interleave.
type EMF struct {
	mu  sync.Mutex
	w   io.Writer
	now func() time.Time
}

// NewEMF returns an EMF emitter writing to w.
func NewEMF(w io.Writer) *EMF {
	return &EMF{w: w, now: time.Now}
}

type emfMetric struct {
	Name string `json:"Name"`
	Unit string `json:"Unit"`
}

type emfDirective struct {
	Namespace  string      `json:"Namespace"`
	Dimensions [][]string  `json:"Dimensions"`
	Metrics    []emfMetric `json:"Metrics"`
}

type emfMeta struct {
	Timestamp         int64          `json:"Timestamp"`
	CloudWatchMetrics []emfDirective `json:"CloudWatchMetrics"`
}

var directive = []emfDirective{{
	Namespace:  Namespace,
	Dimensions: [][]string{{DimProvider, DimOperation}},
	Metrics: []emfMetric{
		{Name: MetricCount, Unit: "Count"},
		{Name: MetricErrors, Unit: "Count"},
		{Name: MetricBytes, Unit: "Bytes"},
		{Name: MetricDurationMs, Unit: "Milliseconds"},
	},
}}

// Emit writes m as one line. Write errors are dropped: metrics must never
// fail the work they measure.
func (e *EMF) Emit(m Measurement) {
	line := make(map[string]any, 7+len(m.Properties))
	for k, v := range m.Properties {
		line[k] = v
	}
	line["_aws"] = emfMeta{Timestamp: e.now().UnixMilli(), CloudWatchMetrics: directive}
	line[DimProvider] = m.Provider
	line[DimOperation] = m.Operation
	line[MetricCount] = m.Count
	line[MetricErrors] = m.Errors
	line[MetricBytes] = m.Bytes
	line[MetricDurationMs] = float64(m.Duration.Microseconds()) / 1000
	b, err := json.Marshal(line)
	if err != nil {
		return
	}
	b = append(b, '\n')
	e.mu.Lock()
	defer e.mu.Unlock()
	e.w.Write(b)
}
