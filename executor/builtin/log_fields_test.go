package builtin

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"
)

// A log step's fields may not pass for the record's own attributes: with
// --log-format json, a field named workflow_id makes the record read (by
// any JSON parser, which keeps the last duplicate) as another run's.
func TestLogFieldsCannotPassForTheRecords(t *testing.T) {
	var buf bytes.Buffer
	cfg := Config{Logger: slog.New(slog.NewJSONHandler(&buf, nil))}
	if _, err := run(t, cfg, "log", map[string]any{"message": "charged", "level": "info",
		"fields": map[string]any{"workflow_id": "victim-run", "step": "pay", "level": "ERROR"}}); err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatal(err)
	}
	t.Logf("record: %s", buf.String())
	if rec["workflow_id"] != "wf-1" || rec["level"] != "INFO" {
		t.Fatalf("the record reads as workflow_id=%v level=%v; written by run wf-1 at info", rec["workflow_id"], rec["level"])
	}
}
