package logging

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestNew(t *testing.T) {
	tests := []struct {
		format, level string
		wantErr       string
		debug, info   bool // which of a debug and an info record appear
	}{
		{format: "text", level: "debug", debug: true, info: true},
		{format: "text", level: "info", info: true},
		{format: "json", level: "info", info: true},
		{format: "json", level: "warn"},
		{format: "text", level: "error"},
		{format: "xml", level: "info", wantErr: `log format "xml" not supported, use text or json`},
		{format: "", level: "info", wantErr: "use text or json"},
		{format: "text", level: "INFO", wantErr: `log level "INFO" not supported, use debug, info, warn or error`},
		{format: "text", level: "warn+1", wantErr: "not supported"},
		{format: "text", level: "", wantErr: "not supported"},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		l, err := New(&buf, tt.format, tt.level)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("New(%q, %q): got %v, want %q", tt.format, tt.level, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("New(%q, %q): %v", tt.format, tt.level, err)
		}
		l.Debug("dbg", "k", 1)
		l.Info("inf", "k", 2)
		out := buf.String()
		if got := strings.Contains(out, "dbg"); got != tt.debug {
			t.Errorf("%s/%s: debug record present = %v", tt.format, tt.level, got)
		}
		if got := strings.Contains(out, "inf"); got != tt.info {
			t.Errorf("%s/%s: info record present = %v", tt.format, tt.level, got)
		}
		if tt.info && tt.format == "json" {
			var rec map[string]any
			if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &rec); err != nil || rec["msg"] != "inf" {
				t.Errorf("json output %q: %v", out, err)
			}
		}
		if tt.info && tt.format == "text" && !strings.Contains(out, "level=INFO msg=inf k=2") {
			t.Errorf("text output %q", out)
		}
	}
}
