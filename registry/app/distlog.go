package app

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
)

// configureDistributionLog points distribution's logrus output at w with our
// level and format; its lines about 4xx answers are logged at info. Distribution logs per request the method, host, URI,
// user agent, remote address (from X-Forwarded-For when present), content
// type and user name, never the Authorization header or the token; the
// query is cut from the URI by queryScrubber.
func configureDistributionLog(w io.Writer, format, level string) error {
	lvl, err := logrus.ParseLevel(level)
	if err != nil {
		return fmt.Errorf("log_level: %w", err)
	}
	var f logrus.Formatter = &logrus.TextFormatter{DisableColors: true, FullTimestamp: true, TimestampFormat: time.RFC3339Nano}
	if format == "json" {
		f = &logrus.JSONFormatter{TimestampFormat: time.RFC3339Nano}
	}
	logrus.SetOutput(w)
	logrus.SetLevel(lvl)
	logrus.SetFormatter(clientErrorsAtInfo{queryScrubber{f}})
	return nil
}

// clientErrorsAtInfo moves distribution's error-level lines about a request
// answered with a 4xx (its "response completed with error" for an unknown
// blob, a bad name, a refused token…) to info: they are the client's
// mistakes. A 5xx, the server's own fault, stays at error level.
type clientErrorsAtInfo struct{ logrus.Formatter }

func (c clientErrorsAtInfo) Format(e *logrus.Entry) ([]byte, error) {
	status, ok := e.Data["http.response.status"].(int)
	if ok && status >= 400 && status < 500 && e.Level < logrus.InfoLevel {
		if !e.Logger.IsLevelEnabled(logrus.InfoLevel) {
			return nil, nil // below the configured level: not written
		}
		e.Level = logrus.InfoLevel // e is this log call's own copy
	}
	return c.Formatter.Format(e)
}

// queryScrubber removes the query string from the URIs distribution puts in
// its log lines, as package accesslog does: a /v2 query holds no credentials, but a
// client may put anything there.
type queryScrubber struct{ logrus.Formatter }

func (q queryScrubber) Format(e *logrus.Entry) ([]byte, error) {
	// e.Data is this log call's own copy (logrus clones it per call).
	for _, k := range []string{"http.request.uri", "http.request.referer"} {
		if v, ok := e.Data[k].(string); ok {
			e.Data[k], _, _ = strings.Cut(v, "?")
		}
	}
	return q.Formatter.Format(e)
}
