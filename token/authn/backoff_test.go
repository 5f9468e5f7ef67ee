package authn

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"stx-registry/token/metrics"
)

var defaultBackoff = BackoffConfig{
	Free:            DefaultBackoffFree,
	Max:             DefaultBackoffMax,
	LockoutAttempts: DefaultLockoutAttempts,
	LockoutWindow:   DefaultLockoutWindow,
}

// fakeClock is the injected clock of the backoff tests.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newTestBackoff(cfg BackoffConfig, users map[string]string) (*Backoff, *fakeAuth, *fakeClock, *metrics.Metrics) {
	backend := &fakeAuth{users: users}
	m := metrics.New("keystone", "test")
	b := NewBackoff(backend, cfg, m)
	clk := &fakeClock{time.Unix(1_000_000, 0)}
	b.now = clk.now
	return b, backend, clk, m
}

func addr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
}

// The exact number of backend calls for 300 bad passwords, with the default
// configuration (free 3, base 1s, max 5m, Keystone lockout 5 in 30m):
//
//   - one user from one address, one attempt a second (t = 0…299 s): calls
//     at 0, 1, 2 (free), 3 (held 1s after the 3rd); the 4th failure reaches
//     the lockout cap 5−1 = 4, so the user is held until 3 s + 30 min. 4 calls.
//   - the same from 300 addresses: the per-user hold is the same. 4 calls.
//   - 300 users from one address: only the address backoff applies; calls
//     at 0, 1, 2, 3, 5, 9, 17, 33, 65, 129, 257 (each hold doubles from 1s).
//     11 calls.
//   - each of those three as a burst at one instant: 3 calls (the free ones).
func TestBackoffBackendCalls(t *testing.T) {
	tests := []struct {
		name string
		step time.Duration // clock advance between attempts
		user func(i int) string
		addr func(i int) netip.Addr
		want int64
	}{
		{"one user one address", time.Second, func(int) string { return "admin" }, func(int) netip.Addr { return addr(1) }, 4},
		{"one user many addresses", time.Second, func(int) string { return "admin" }, addr, 4},
		{"many users one address", time.Second, func(i int) string { return fmt.Sprint("u", i) }, func(int) netip.Addr { return addr(1) }, 11},
		{"burst one user one address", 0, func(int) string { return "admin" }, func(int) netip.Addr { return addr(1) }, 3},
		{"burst one user many addresses", 0, func(int) string { return "admin" }, addr, 3},
		{"burst many users one address", 0, func(i int) string { return fmt.Sprint("u", i) }, func(int) netip.Addr { return addr(1) }, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, backend, clk, m := newTestBackoff(defaultBackoff, map[string]string{"admin": "right"})
			var limited int64
			for i := range 300 {
				_, err := b.Authenticate(context.Background(), Credentials{User: tt.user(i), Password: fmt.Sprint("guess", i), Client: tt.addr(i)})
				var ra *RetryAfterError
				switch {
				case errors.As(err, &ra):
					limited++
				case !errors.Is(err, ErrBadCredentials):
					t.Fatalf("attempt %d: %v", i, err)
				}
				clk.advance(tt.step)
			}
			if got := backend.calls.Load(); got != tt.want {
				t.Fatalf("%d backend calls, want %d", got, tt.want)
			}
			if limited != 300-tt.want || m.BackoffRejectionCount() != uint64(limited) {
				t.Fatalf("%d rejected, metric %d, want %d", limited, m.BackoffRejectionCount(), 300-tt.want)
			}
		})
	}
	if got := MaxBackendFailures(defaultBackoff, 300, 299*time.Second); got != 4 {
		t.Errorf("MaxBackendFailures(default, 300, 299s) = %d, want 4", got)
	}
	if got := MaxBackendFailures(defaultBackoff, 300, 0); got != 3 {
		t.Errorf("MaxBackendFailures(default, 300, 0) = %d, want 3", got)
	}
	// Over two hours: 4 per lockout window (at 0, 1801, 3602, 5403 s).
	if got := MaxBackendFailures(defaultBackoff, 1000, 2*time.Hour); got != 16 {
		t.Errorf("MaxBackendFailures(default, 1000, 2h) = %d, want 16", got)
	}
}

// The fastest possible attacker, retrying the instant a hold ends, gets
// exactly MaxBackendFailures calls through, and never more than N−1 bad
// passwords per lockout window.
func TestBackoffMatchesModel(t *testing.T) {
	configs := []BackoffConfig{
		defaultBackoff,
		{Free: 1, Max: time.Hour, LockoutAttempts: 0, LockoutWindow: time.Minute},
		{Free: 5, Max: 10 * time.Second, LockoutAttempts: 10, LockoutWindow: 20 * time.Minute},
		{Free: 3, Max: 5 * time.Minute, LockoutAttempts: 3, LockoutWindow: time.Hour},
		{Free: 2, Max: 30 * time.Second, LockoutAttempts: 0, LockoutWindow: time.Minute},
	}
	for _, elapsed := range []time.Duration{0, time.Minute, 31 * time.Minute, 3 * time.Hour} {
		for i, cfg := range configs {
			t.Run(fmt.Sprintf("%d/%v", i, elapsed), func(t *testing.T) {
				b, backend, clk, _ := newTestBackoff(cfg, nil)
				start := clk.t
				var fails []time.Time
				for n := 0; n < 5000 && clk.t.Sub(start) <= elapsed; n++ {
					_, err := b.Authenticate(context.Background(), Credentials{User: "admin", Password: fmt.Sprint(n), Client: addr(n)})
					var ra *RetryAfterError
					if errors.As(err, &ra) {
						clk.advance(ra.After)
					} else {
						fails = append(fails, clk.t)
					}
				}
				want := MaxBackendFailures(cfg, 5000, elapsed)
				if got := int(backend.calls.Load()); got != want {
					t.Fatalf("%d backend calls, model says %d", got, want)
				}
				if cfg.LockoutAttempts == 0 {
					return
				}
				// No window of LockoutWindow holds N−1+1 failures.
				for j := range fails {
					k := j + cfg.LockoutAttempts - 1
					if k < len(fails) && fails[k].Sub(fails[j]) < cfg.LockoutWindow {
						t.Fatalf("%d failures within %v", cfg.LockoutAttempts, fails[k].Sub(fails[j]))
					}
				}
			})
		}
	}
}

func TestBackoffHoldAndReset(t *testing.T) {
	cfg := defaultBackoff
	cfg.LockoutAttempts = 0
	b, backend, clk, _ := newTestBackoff(cfg, map[string]string{"alice": "right"})
	ctx := context.Background()
	try := func(pw string, client int) error {
		_, err := b.Authenticate(ctx, Credentials{User: "alice", Password: pw, Client: addr(client)})
		return err
	}
	for i := range 3 {
		if err := try(fmt.Sprint("bad", i), 1); !errors.Is(err, ErrBadCredentials) {
			t.Fatal(err)
		}
	}
	// Held by the user and the address: 1s.
	var ra *RetryAfterError
	if err := try("right", 2); !errors.As(err, &ra) || ra.After != time.Second {
		t.Fatalf("user not held 1s: %v", err)
	}
	clk.advance(500 * time.Millisecond)
	if err := try("right", 1); !errors.As(err, &ra) || ra.After != 500*time.Millisecond {
		t.Fatalf("remaining hold: %v", err)
	}
	clk.advance(500 * time.Millisecond)
	// A success through the backend resets user and address.
	if err := try("right", 1); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := try(fmt.Sprint("again", i), 1); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("after reset, failure %d: %v", i, err)
		}
	}
	// 4th failure after 1s: held 2s; then 15 minutes of quiet forget it all.
	clk.advance(time.Second)
	try("x", 1)
	if err := try("y", 1); !errors.As(err, &ra) || ra.After != 2*time.Second {
		t.Fatalf("second hold: %v", err)
	}
	clk.advance(backoffForget)
	calls := backend.calls.Load()
	for i := range 3 {
		try(fmt.Sprint("later", i), 1)
	}
	if backend.calls.Load() != calls+3 {
		t.Fatal("counters not forgotten after 15 minutes")
	}
}

func TestBackoffDelay(t *testing.T) {
	tests := []struct {
		k    int
		want time.Duration
	}{
		{3, time.Second}, {4, 2 * time.Second}, {5, 4 * time.Second}, {11, 256 * time.Second},
		{12, 5 * time.Minute}, {100, 5 * time.Minute}, {1 << 20, 5 * time.Minute},
	}
	for _, tt := range tests {
		if got := backoffDelay(defaultBackoff, tt.k); got != tt.want {
			t.Errorf("backoffDelay(%d) = %v, want %v", tt.k, got, tt.want)
		}
	}
}

// containerd's POST-then-GET repeat of one bad password is one failure.
func TestBackoffDuplicate(t *testing.T) {
	b, backend, clk, _ := newTestBackoff(defaultBackoff, map[string]string{"alice": "right"})
	ctx := context.Background()
	cr := Credentials{User: "alice", Password: "typo", Client: addr(1)}
	for range 2 {
		if _, err := b.Authenticate(ctx, cr); !errors.Is(err, ErrBadCredentials) {
			t.Fatal(err)
		}
	}
	if backend.calls.Load() != 1 {
		t.Fatalf("duplicate made %d calls", backend.calls.Load())
	}
	if r := b.get("u\x00alice", clk.t, false); r.fails != 1 || r.lockFails != 1 {
		t.Fatalf("duplicate counted: %+v", r)
	}
	// Another address, another password or 2 s later: a new call.
	other := cr
	other.Client = addr(2)
	b.Authenticate(ctx, other)
	other = cr
	other.Password = "typo2"
	b.Authenticate(ctx, other)
	if backend.calls.Load() != 3 {
		t.Fatalf("%d calls, want 3", backend.calls.Load())
	}
	clk.advance(duplicateWindow)
	b.Authenticate(ctx, Credentials{User: "alice", Password: "typo2", Client: addr(1)})
	if backend.calls.Load() != 4 {
		t.Fatalf("repeat after 2s not sent: %d calls", backend.calls.Load())
	}
	// The right password is not a duplicate of anything.
	clk.advance(time.Hour)
	if _, err := b.Authenticate(ctx, Credentials{User: "alice", Password: "right", Client: addr(1)}); err != nil {
		t.Fatal(err)
	}
}

// Calls in flight count against the lockout cap, so concurrent guesses with
// different passwords cannot overshoot it.
func TestBackoffLockoutInflight(t *testing.T) {
	backend := &blockingAuth{
		fakeAuth: fakeAuth{users: map[string]string{"admin": "right"}},
		started:  make(chan struct{}, 10),
		release:  make(chan struct{}),
	}
	cfg := defaultBackoff
	cfg.Free = 100 // only the lockout cap applies
	b := NewBackoff(backend, cfg, nil)
	errs := make(chan error, 10)
	for i := range 4 {
		go func() {
			_, err := b.Authenticate(context.Background(), Credentials{User: "admin", Password: fmt.Sprint(i), Client: addr(i)})
			errs <- err
		}()
		<-backend.started
	}
	var ra *RetryAfterError
	if _, err := b.Authenticate(context.Background(), Credentials{User: "admin", Password: "5th", Client: addr(9)}); !errors.As(err, &ra) || ra.After != time.Second {
		t.Fatalf("5th concurrent guess: %v", err)
	}
	close(backend.release)
	for range 4 {
		<-errs
	}
	if _, err := b.Authenticate(context.Background(), Credentials{User: "admin", Password: "right", Client: addr(9)}); !errors.As(err, &ra) || ra.After < 29*time.Minute {
		t.Fatalf("after 4 failures: %v", err)
	}
}

// cache(backoff(backend)): a flood of bad passwords holds the user, but a
// password verified within the cache TTL still works, without a backend call.
func TestBackoffBehindCache(t *testing.T) {
	b, backend, clk, _ := newTestBackoff(defaultBackoff, map[string]string{"admin": "right"})
	c := NewCredentialCache(b, CacheConfig{TTL: DefaultCacheTTL, Size: 10, Domain: "Default"}, nil)
	c.now = clk.now
	ctx := context.Background()
	good := Credentials{User: "admin", Password: "right", Client: addr(1)}
	if _, err := c.Authenticate(ctx, good); err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		c.Authenticate(ctx, Credentials{User: "admin", Password: fmt.Sprint(i), Client: addr(i)})
		clk.advance(100 * time.Millisecond)
	}
	calls := backend.calls.Load()
	if calls != 1+4 {
		t.Fatalf("%d backend calls, want the login and 4 failures", calls)
	}
	if id, err := c.Authenticate(ctx, good); err != nil || id.Name != "admin" {
		t.Fatalf("cached admin refused during the flood: %v", err)
	}
	// From an address that failed too.
	good.Client = addr(7)
	if _, err := c.Authenticate(ctx, good); err != nil {
		t.Fatal(err)
	}
	if backend.calls.Load() != calls {
		t.Fatal("a cache hit reached the backend")
	}
}

// Backend outages are passed on and not counted.
func TestBackoffUnavailableNotCounted(t *testing.T) {
	b, backend, _, _ := newTestBackoff(defaultBackoff, nil)
	backend.err = ErrUnavailable
	for i := range 50 {
		if _, err := b.Authenticate(context.Background(), Credentials{User: "alice", Password: fmt.Sprint(i), Client: addr(1)}); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	if backend.calls.Load() != 50 || len(b.records) != 0 {
		t.Fatalf("%d calls, %d records", backend.calls.Load(), len(b.records))
	}
}

func TestBackoffBound(t *testing.T) {
	b, _, _, _ := newTestBackoff(defaultBackoff, nil)
	b.maxKeys = 10
	for i := range 100 {
		b.Authenticate(context.Background(), Credentials{User: fmt.Sprint("u", i), Password: "x", Client: addr(i)})
	}
	if len(b.records) != 10 || b.lru.Len() != 10 {
		t.Fatalf("%d records, %d in the list, bound 10", len(b.records), b.lru.Len())
	}
}
