package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
)

// healthPath answers monitoring probes (the OCF agent's monitor) without
// authentication. It reveals only whether the storage root is usable.
const healthPath = "/healthz"

// rootHealth checks that the storage root opened at start is still the
// directory at its path, and still healthy.
type rootHealth struct {
	path         string
	requireMount bool
	// root is the directory opened at start. Comparing it with a fresh
	// lookup of path notices a root that was unmounted, remounted or
	// replaced under the running registry.
	root   *os.Root
	logger *slog.Logger
}

// openRootHealth opens the storage root for the health check; call it after
// checkRoot passed.
func openRootHealth(path string, requireMount bool, logger *slog.Logger) (*rootHealth, error) {
	root, err := os.OpenRoot(path)
	if err != nil {
		return nil, fmt.Errorf("root_directory: %w", err)
	}
	return &rootHealth{path: path, requireMount: requireMount, root: root, logger: logger}, nil
}

// Close releases the directory handle.
func (h *rootHealth) Close() error { return h.root.Close() }

// check returns nil while the root is healthy, else the reason.
func (h *rootHealth) check() error {
	if err := checkRoot(h.path, h.requireMount); err != nil {
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

// healthHandler answers GET and HEAD on /healthz itself and passes every
// other request to next.
func healthHandler(h *rootHealth, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != healthPath {
			next.ServeHTTP(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		status, body := http.StatusOK, map[string]string{"status": "ok"}
		if err := h.check(); err != nil {
			h.logger.Error("health check failed", "err", err)
			status, body = http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "reason": err.Error()}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(status)
		if r.Method == http.MethodGet {
			_ = json.NewEncoder(w).Encode(body)
		}
	})
}
