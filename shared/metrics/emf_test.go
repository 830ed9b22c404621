package metrics

import (
	"bufio"
	"bytes"
	"encoding/json"
	"sync"
	"testing"
	"time"
)

func TestEMFLineIsCloudWatchEMF(t *testing.T) {
	var buf bytes.Buffer
	e := NewEMF(&buf)
	e.now = func() time.Time { return time.UnixMilli(1767225600000) }
	e.Emit(Measurement{Provider: "gcs", Operation: "put", Count: 1, Bytes: 1 << 20, Duration: 1500 * time.Microsecond,
		Properties: map[string]string{"backup_id": "b1", "Provider": "spoofed"}})

	var line struct {
		AWS struct {
			Timestamp         int64
			CloudWatchMetrics []struct {
				Namespace  string
				Dimensions [][]string
				Metrics    []struct{ Name, Unit string }
			}
		} `json:"_aws"`
		Provider, Operation, BackupID string
		Count, Errors, Bytes          int64
		DurationMs                    float64
	}
	raw := buf.Bytes()
	if bytes.Count(raw, []byte("\n")) != 1 || raw[len(raw)-1] != '\n' {
		t.Fatalf("not one line: %q", raw)
	}
	if err := json.Unmarshal(raw, &line); err != nil {
		t.Fatal(err)
	}
	var props map[string]any
	json.Unmarshal(raw, &props)
	cw := line.AWS.CloudWatchMetrics
	if line.AWS.Timestamp != 1767225600000 || len(cw) != 1 || cw[0].Namespace != "WS191" ||
		len(cw[0].Dimensions) != 1 || len(cw[0].Dimensions[0]) != 2 {
		t.Fatalf("directive %+v", line.AWS)
	}
	// Every declared metric and dimension must be present at the top level,
	// or CloudWatch drops the line.
	for _, d := range cw[0].Dimensions[0] {
		if _, ok := props[d]; !ok {
			t.Errorf("dimension %s missing", d)
		}
	}
	for _, m := range cw[0].Metrics {
		if _, ok := props[m.Name]; !ok {
			t.Errorf("metric %s missing", m.Name)
		}
	}
	if line.Provider != "gcs" || line.Operation != "put" || line.Count != 1 || line.Bytes != 1<<20 || line.DurationMs != 1.5 {
		t.Fatalf("values %+v", line)
	}
	if props["backup_id"] != "b1" {
		t.Fatalf("property lost: %v", props)
	}
}

func TestEMFConcurrentLinesStayWhole(t *testing.T) {
	var buf bytes.Buffer
	e := NewEMF(&buf)
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.Emit(Measurement{Provider: "s3", Operation: "replicate", Count: 1})
		}()
	}
	wg.Wait()
	sc := bufio.NewScanner(&buf)
	n := 0
	for sc.Scan() {
		if !json.Valid(sc.Bytes()) {
			t.Fatalf("broken line %q", sc.Text())
		}
		n++
	}
	if n != 50 {
		t.Fatalf("%d lines", n)
	}
	Discard.Emit(Measurement{}) // must not panic
}
