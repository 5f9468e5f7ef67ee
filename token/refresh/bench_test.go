package refresh

import (
	"fmt"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"stx-registry/token/internal/fixture"
)

// BenchmarkStore measures a login's Issue (an append and its fsync, and
// the drop of the user's oldest token) and a refresh grant's Lookup, at 1k
// and 100k entries. Neither should grow with the store.
func BenchmarkStore(b *testing.B) {
	for _, n := range []int{1000, 100000} {
		clock := fixture.NewClock()
		now := clock.Now()
		dir := fixture.StateDir(b)
		toks := seedFile(b, dir, n, now)
		s, err := NewFileStore(dir, Limits{Max: MaxRefreshTokenMax, UserMax: DefaultUserMax, ClientMax: DefaultClientMax}, slog.New(slog.DiscardHandler))
		if err != nil {
			b.Fatal(err)
		}
		s.SetClock(clock.Now)
		b.Run(fmt.Sprintf("add/%d", n), func(b *testing.B) {
			for b.Loop() {
				if _, err := s.Issue(entry("bench", "svc", now, time.Hour)); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("lookup/%d", n), func(b *testing.B) {
			i := 0
			for b.Loop() {
				if _, err := s.Lookup(toks[i%len(toks)], "svc", now); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// TestRefreshStoreMemory: the index costs a bounded number of bytes per
// live entry, as refresh_token_max's documentation says: about 500 when
// every entry has a user of its own (the worst case, measured here with
// names of 5 to 9 bytes), less when users hold several.
func TestRefreshStoreMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("loads 100000 entries")
	}
	const n = 100000
	clock := fixture.NewClock()
	dir := fixture.StateDir(t)
	seedFile(t, dir, n, clock.Now())
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	s, err := NewFileStore(dir, DefaultLimits, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	s.SetClock(clock.Now)
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / n
	t.Logf("%d entries: %.0f bytes each", s.Len(), per)
	if s.Len() != n || per > 600 {
		t.Errorf("%d entries take %.0f bytes each, documented as about 500", s.Len(), per)
	}
	runtime.KeepAlive(s)
}
