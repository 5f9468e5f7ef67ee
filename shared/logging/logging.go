// Package logging builds the daemons' slog logger from the log_format and
// log_level configuration keywords. Output goes to the writer given, normally
// standard error, which the service manager collects; there are no log files
// to rotate.
package logging

import (
	"fmt"
	"io"
	"log/slog"
)

// New returns a logger writing to w. format is "text" (logfmt-style
// key=value) or "json"; level is "debug", "info", "warn" or "error".
func New(w io.Writer, format, level string) (*slog.Logger, error) {
	var lvl slog.Level
	switch level {
	case "debug":
		lvl = slog.LevelDebug
	case "info":
		lvl = slog.LevelInfo
	case "warn":
		lvl = slog.LevelWarn
	case "error":
		lvl = slog.LevelError
	default:
		return nil, fmt.Errorf("log level %q not supported, use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q not supported, use text or json", format)
}
