// Package readiness answers GET and HEAD /readyz without authentication:
// 200 {"status":"ready"} while the registry can take pushes, else 503 with
// the first failed check as the reason. The checks, in order: the storage
// root is the healthy directory opened at start (mounted, with
// require_mount), a file can be written, read back and removed under it,
// free space is above storage_reserve, and a token certificate bundle is
// loaded.
//
// /healthz (package health) says whether the process should be restarted
// or failed over; /readyz says whether it can take pushes now. Service
// management (the OCF agent's monitor, "stx-registry probe") watches
// /healthz: a full disk is the same on the other controller, so failing
// over for it would only interrupt pulls. Alarms and dashboards watch
// /readyz.
package readiness

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"

	"stx-registry/registry/gc"
	"stx-registry/registry/health"
	"stx-registry/registry/reserve"
)

// Path is the readiness endpoint.
const Path = "/readyz"

// probeFile is written and removed under the state directory by every
// readiness check.
const probeFile = "readyz.probe"

// Checker runs the readiness checks.
type Checker struct {
	// Healthy is /healthz's check of the storage root.
	Healthy func() error
	// Root is root_directory; the write check happens in its
	// gc.StateDir.
	Root string
	// Guard gives the free space against storage_reserve.
	Guard *reserve.Guard
	// TokenKeys returns an error unless a token certificate bundle is
	// loaded.
	TokenKeys func() error
	Logger    *slog.Logger
}

// Check returns nil when ready, else the reason.
func (c *Checker) Check() error {
	if err := c.Healthy(); err != nil {
		return err
	}
	if err := c.writable(); err != nil {
		return err
	}
	below, sp, err := c.Guard.Below()
	if err != nil {
		return err
	}
	if below {
		return fmt.Errorf("storage below storage_reserve: %d bytes free of %d, reserve %d", sp.Free, sp.Total, c.Guard.Reserve.For(sp.Total))
	}
	return c.TokenKeys()
}

// writable writes, reads back and removes a small file in the state
// directory.
func (c *Checker) writable() error {
	root, err := os.OpenRoot(c.Root)
	if err != nil {
		return fmt.Errorf("root_directory %s is not readable: %w", c.Root, err)
	}
	defer root.Close()
	name := filepath.Join(gc.StateDir, probeFile)
	want := []byte("stx-registry readiness\n")
	if err := root.WriteFile(name, want, 0o600); err != nil {
		return fmt.Errorf("root_directory %s is not writable: %w", c.Root, err)
	}
	got, err := root.ReadFile(name)
	if err != nil || !bytes.Equal(got, want) {
		return errors.Join(fmt.Errorf("root_directory %s: a file written cannot be read back", c.Root), err)
	}
	if err := root.Remove(name); err != nil {
		return fmt.Errorf("root_directory %s: %w", c.Root, err)
	}
	return nil
}

// Handler answers GET and HEAD on /readyz itself and passes every other
// request to next.
func Handler(c *Checker, next http.Handler) http.Handler {
	return health.Endpoint(Path, "ready", "not ready", c.Check, func(err error) {
		c.Logger.Warn("not ready", "err", err)
	}, next)
}
