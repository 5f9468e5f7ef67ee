// Package health answers GET and HEAD /healthz without authentication:
// 200 while the storage root opened at start is still the healthy
// directory at its path, else 503 with the reason.
package health

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"

	"stx-registry/registry/storageroot"
)

// Path answers monitoring probes (the OCF agent's monitor) without
// authentication. It reveals only whether the storage root is usable.
const Path = "/healthz"

// Root checks that the storage root opened at start is still the
// directory at its path, and still healthy.
type Root struct {
	path         string
	requireMount bool
	// root is the directory opened at start. Comparing it with a fresh
	// lookup of path notices a root that was unmounted, remounted or
	// replaced under the running registry.
	root   *os.Root
	logger *slog.Logger
}

// Open opens the storage root for the health check; call it after
// storageroot.Check passed. logger receives failed checks.
func Open(path string, requireMount bool, logger *slog.Logger) (*Root, error) {
	root, err := os.OpenRoot(path)
	if err != nil {
		return nil, fmt.Errorf("root_directory: %w", err)
	}
	return &Root{path: path, requireMount: requireMount, root: root, logger: logger}, nil
}

// Close releases the directory handle.
func (h *Root) Close() error { return h.root.Close() }

// Check returns nil while the root is healthy, else the reason.
func (h *Root) Check() error {
	if err := storageroot.Check(h.path, h.requireMount); err != nil {
		return err
	}
	opened, err := h.root.Stat(".")
	if err != nil {
		return fmt.Errorf("root_directory %s is no longer readable: %w", h.path, err)
	}
	current, err := os.Lstat(h.path)
	if err != nil {
		return fmt.Errorf("root_directory: %w", err)
	}
	if !os.SameFile(opened, current) {
		return fmt.Errorf("root_directory %s is not the directory stx-registry started with (remounted or replaced): restart stx-registry", h.path)
	}
	return nil
}

// Handler answers GET and HEAD on /healthz itself and passes every
// other request to next.
func Handler(h *Root, next http.Handler) http.Handler {
	return Endpoint(Path, "ok", "unavailable", h.Check, func(err error) {
		h.logger.Error("health check failed", "err", err)
	}, next)
}

// Endpoint answers GET and HEAD on path with check's verdict and passes
// every other request to next: 200 {"status": ok}, or 503 {"status": bad,
// "reason": the error}, which logf logs first. Other methods get 405.
// /healthz and /readyz are both served by it.
func Endpoint(path, ok, bad string, check func() error, logf func(error), next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != path {
			next.ServeHTTP(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		status, body := http.StatusOK, map[string]string{"status": ok}
		if err := check(); err != nil {
			logf(err)
			status, body = http.StatusServiceUnavailable, map[string]string{"status": bad, "reason": err.Error()}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(status)
		if r.Method == http.MethodGet {
			_ = json.NewEncoder(w).Encode(body)
		}
	})
}
