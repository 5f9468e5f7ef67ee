package server

import (
	"log/slog"
	"testing"

	"stx-registry/token/internal/fixture"
	"stx-registry/token/refresh"
)

// newStore is a refresh store in dir on clock, logging nowhere.
func newStore(t testing.TB, dir string, max int, clock *fixture.Clock) *refresh.FileStore {
	t.Helper()
	s, err := refresh.NewFileStore(dir, refresh.Limits{Max: max, UserMax: max, ClientMax: max}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	s.SetClock(clock.Now)
	return s
}
