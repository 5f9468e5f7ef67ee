package gc

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"stx-registry/shared/files"
)

// statusFile in StateDir keeps the running totals of every collection of
// this root, for the daemon's metrics (a collection may run in another
// process).
const statusFile = "gc-status.json"

// maxStatusBytes bounds the status file read.
const maxStatusBytes = 4 << 10

// Status is the running totals of the collections of one root.
type Status struct {
	Runs             uint64  `json:"runs"`
	Blobs            uint64  `json:"blobs"`
	Manifests        uint64  `json:"manifests"`
	Bytes            uint64  `json:"bytes"`
	DurationSeconds  float64 `json:"duration_seconds"`      // all runs together
	LastDuration     float64 `json:"last_duration_seconds"` // the last run
	LastFinishedUnix int64   `json:"last_finished_unix"`
}

// ReadStatus reads the totals of root; a root never collected has zero
// totals.
func ReadStatus(root string) (Status, error) {
	var s Status
	b, err := files.Read(filepath.Join(root, StateDir, statusFile), maxStatusBytes)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("gc: %w", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("gc: %s: %w", statusFile, err)
	}
	return s, nil
}

// addStatus adds res to the totals of root; call it holding the lock
// exclusive. A damaged status file starts the totals again.
func addStatus(root string, res Result, finished int64) error {
	s, _ := ReadStatus(root)
	s.Runs++
	s.Blobs += uint64(res.Blobs)
	s.Manifests += uint64(res.Manifests)
	s.Bytes += uint64(res.Bytes)
	s.DurationSeconds += res.Duration.Seconds()
	s.LastDuration = res.Duration.Seconds()
	s.LastFinishedUnix = finished
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if err := files.WriteAtomic(filepath.Join(root, StateDir, statusFile), b, 0o600); err != nil {
		return fmt.Errorf("gc: %w", err)
	}
	return nil
}
