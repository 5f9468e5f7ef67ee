package frontdoor

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
)

// refusal is an answer the front door gives instead of distribution: a
// registry error as the distribution spec defines it.
type refusal struct {
	status  int
	code    string // one of the spec's error codes, or NOT_FOUND
	message string
}

// errorBody is the spec's error envelope.
type errorBody struct {
	Errors []errorEntry `json:"errors"`
}

type errorEntry struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
}

// serve writes f with the headers distribution puts on its own errors.
func (f *refusal) serve(w http.ResponseWriter) {
	h := w.Header()
	h.Del("Content-Length")
	h.Set("Content-Type", "application/json")
	h.Set("Docker-Distribution-API-Version", "registry/2.0")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(f.status)
	_ = json.NewEncoder(w).Encode(errorBody{Errors: []errorEntry{{Code: f.code, Message: f.message}}})
}

// guard stands between distribution and the client's ResponseWriter. It
// turns distribution's few answers that are not registry errors (the
// text/plain 405 of a method a route lacks, a bare 400) into registry
// errors; it answers a 401 with a DENIED error that says why when the
// access controller recorded why (Deny); it turns a 5xx caused by a request body the client did not send
// in full into a 4xx; and it logs every other 5xx, the server's own
// faults, at error level.
type guard struct {
	w        http.ResponseWriter
	r        *http.Request
	gate     *gate
	logger   *slog.Logger
	decided  bool // the status is written
	replaced bool // the front door answered; distribution's body is dropped
}

func (g *guard) Header() http.Header { return g.w.Header() }

func (g *guard) WriteHeader(status int) {
	if g.decided {
		return // distribution sometimes writes twice (499, then its error)
	}
	g.decided = true
	if status >= 400 && !g.gate.opened.Load() && g.r.ContentLength != 0 && g.r.ProtoMajor == 1 {
		// Refused before authorization: the body stays unread (see refuse).
		g.w.Header().Set("Connection", "close")
	}
	switch {
	case status >= 500 && g.gate.bodyFailed() != nil:
		g.replace(&refusal{http.StatusBadRequest, "BLOB_UPLOAD_INVALID", "the request body could not be read in full"})
		return
	case status == http.StatusUnauthorized && g.gate.denial() != "":
		g.replaced = true
		serveDenied(g.w, g.gate.denial())
		return
	case status >= 500:
		g.logger.Error("registry server error", "method", g.r.Method, "path", g.r.URL.Path, "status", status, "remote", g.r.RemoteAddr)
	case status >= 400 && !isJSON(g.w.Header()):
		code, ok := plainCodes[status]
		if !ok {
			code = "UNSUPPORTED"
		}
		g.replace(&refusal{status, code, "request refused: " + http.StatusText(status)})
		return
	}
	g.w.WriteHeader(status)
}

// replace answers with f instead of what distribution started to write.
func (g *guard) replace(f *refusal) {
	g.replaced = true
	f.serve(g.w)
}

func (g *guard) Write(b []byte) (int, error) {
	if !g.decided {
		g.WriteHeader(http.StatusOK)
	}
	if g.replaced {
		return len(b), nil
	}
	return g.w.Write(b)
}

func (g *guard) Flush() {
	if !g.replaced {
		_ = http.NewResponseController(g.w).Flush()
	}
}

func (g *guard) Unwrap() http.ResponseWriter { return g.w }

// plainCodes name the registry error code for a status distribution answers
// without one; any other status gets UNSUPPORTED.
var plainCodes = map[int]string{
	http.StatusNotFound:                     "NOT_FOUND",
	http.StatusRequestEntityTooLarge:        "SIZE_INVALID",
	http.StatusRequestedRangeNotSatisfiable: "RANGE_INVALID", // a Range a blob cannot satisfy
}

func isJSON(h http.Header) bool {
	return strings.HasPrefix(h.Get("Content-Type"), "application/json")
}
