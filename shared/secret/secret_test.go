package secret

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestSecretNeverPrints(t *testing.T) {
	type cfg struct {
		User string
		Key  Secret
	}
	c := cfg{User: "u", Key: "hunter2"}
	var logBuf bytes.Buffer
	slog.New(slog.NewJSONHandler(&logBuf, nil)).Info("cfg", "key", c.Key, "cfg", c)
	js, _ := json.Marshal(c)
	for _, out := range []string{fmt.Sprint(c.Key), fmt.Sprintf("%v %+v %#v %s %q", c, c, c, c.Key, c.Key), string(js), logBuf.String()} {
		if strings.Contains(out, "hunter2") {
			t.Errorf("secret leaked: %s", out)
		}
		if !strings.Contains(out, Redacted) {
			t.Errorf("no redaction marker in %s", out)
		}
	}
	if c.Key.Reveal() != "hunter2" {
		t.Errorf("Reveal = %q", c.Key.Reveal())
	}
	if Secret("").String() != "" || !Secret("").IsZero() {
		t.Errorf("empty secret should print empty")
	}
}
