package gc

import (
	"log/slog"
	"net/http"
	"time"

	"stx-registry/registry/route"
)

// IsCommitStep reports whether r is one of the short steps that make a
// push visible: the final PUT of a blob upload, a POST that mounts a blob
// or uploads it whole (mount= or digest=), and a manifest PUT.
func IsCommitStep(r *http.Request) bool {
	rt := route.Parse(r.URL.Path)
	switch {
	case rt.Class == route.Upload && r.Method == http.MethodPut:
		return true
	case rt.Class == route.Upload && r.Method == http.MethodPost:
		q := r.URL.Query()
		return q.Has("mount") || q.Has("digest")
	case rt.Class == route.Manifest && r.Method == http.MethodPut:
		return true
	}
	return false
}

// heldLogged is the wait above which a held commit step is logged; taking
// a free lock takes microseconds.
const heldLogged = 10 * time.Millisecond

// CommitSteps holds lock shared around every commit step (IsCommitStep)
// before passing it to next, so that none runs beside a collection; every
// other request, pulls included, passes without waiting. A client that
// goes away while waiting gets nothing. A step held longer than heldLogged
// is logged with the time it waited.
func CommitSteps(lock *Lock, logger *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !IsCommitStep(r) {
			next.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		release, err := lock.Shared(r.Context())
		if err != nil {
			if r.Context().Err() == nil {
				http.Error(w, "storage lock unavailable", http.StatusServiceUnavailable)
			}
			return
		}
		defer release()
		if held := time.Since(start); held > heldLogged {
			logger.Info("push commit step held by garbage collection", "method", r.Method, "held", held.String())
		}
		next.ServeHTTP(w, r)
	})
}
