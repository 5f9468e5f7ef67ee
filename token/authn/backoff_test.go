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
	SprayUsers:      DefaultSprayUsers,
	LockoutAttempts: DefaultLockoutAttempts,
	PerUser:         DefaultPerUser,
	PerAddress:      DefaultPerAddress,
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
// configuration (free 3, base 1s, max 5m, spray threshold 10 users,
// Keystone lockout 5):
//
//   - one user from one address, one attempt a second (t = 0…299 s): calls
//     at 0, 1, 2 (free), 3 (held 1s after the 3rd); the 4th failure reaches
//     the lockout guard 5−1 = 4, and the user is held until a success. 4 calls.
//   - the same from 300 addresses: the per-user hold is the same. 4 calls.
//   - 300 users from one address: only the spray threshold applies; calls
//     at 0…9 (ten distinct users), then 10, 12, 16, 24, 40, 72, 136, 264
//     (each hold doubles from 1s). 18 calls.
//   - each of those three as a burst at one instant: 3, 3 and 10 calls.
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
		{"many users one address", time.Second, func(i int) string { return fmt.Sprint("u", i) }, func(int) netip.Addr { return addr(1) }, 18},
		{"burst one user one address", 0, func(int) string { return "admin" }, func(int) netip.Addr { return addr(1) }, 3},
		{"burst one user many addresses", 0, func(int) string { return "admin" }, addr, 3},
		{"burst many users one address", 0, func(i int) string { return fmt.Sprint("u", i) }, func(int) netip.Addr { return addr(1) }, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, backend, clk, m := newTestBackoff(defaultBackoff, map[string]string{"admin": "right"})
			var limited int64
			for i := range 300 {
				_, err := b.Authenticate(context.Background(), Credentials{User: tt.user(i), Password: fmt.Sprint("guess", i), Client: tt.addr(i)})
				var ra *RetryAfterError
				switch {
				case errors.As(err, &ra), errors.Is(err, ErrHeld):
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
	// However long: never more than N−1 without a success.
	if got := MaxBackendFailures(defaultBackoff, 100000, 1000*time.Hour); got != 4 {
		t.Errorf("MaxBackendFailures(default, 100000, 1000h) = %d, want 4", got)
	}
	noGuard := defaultBackoff
	noGuard.LockoutAttempts = 0
	// Without the guard (users file): 3 free, then after holds of 1, 2, 4 …
	// 256 s, at 1, 3, 7 … 511 s, then one every 5 minutes: 10 more in the
	// first hour.
	if got := MaxBackendFailures(noGuard, 100000, time.Hour); got != 3+9+10 {
		t.Errorf("MaxBackendFailures(no guard, 100000, 1h) = %d", got)
	}
}

// The fastest possible attacker, retrying the instant a hold ends, gets
// exactly MaxBackendFailures calls through, and never more than N−1 bad
// passwords in all.
func TestBackoffMatchesModel(t *testing.T) {
	configs := []BackoffConfig{
		defaultBackoff,
		{Free: 1, Max: time.Hour, LockoutAttempts: 0},
		{Free: 5, Max: 10 * time.Second, LockoutAttempts: 10},
		{Free: 3, Max: 5 * time.Minute, LockoutAttempts: 3},
		{Free: 2, Max: 30 * time.Second, LockoutAttempts: 0},
	}
	for _, elapsed := range []time.Duration{0, time.Minute, 31 * time.Minute, 3 * time.Hour} {
		for i, cfg := range configs {
			t.Run(fmt.Sprintf("%d/%v", i, elapsed), func(t *testing.T) {
				b, backend, clk, _ := newTestBackoff(cfg, nil)
				start := clk.t
				for n := 0; n < 5000 && clk.t.Sub(start) <= elapsed; n++ {
					_, err := b.Authenticate(context.Background(), Credentials{User: "admin", Password: fmt.Sprint(n), Client: addr(n)})
					var ra *RetryAfterError
					if errors.Is(err, ErrHeld) {
						break
					}
					if errors.As(err, &ra) {
						clk.advance(ra.After)
					}
				}
				want := MaxBackendFailures(cfg, 5000, elapsed)
				if got := int(backend.calls.Load()); got != want {
					t.Fatalf("%d backend calls, model says %d", got, want)
				}
				if n := cfg.LockoutAttempts; n > 0 && want > n-1 {
					t.Fatalf("%d failures, the guard allows %d", want, n-1)
				}
			})
		}
	}
}

func TestBackoffHoldAndForget(t *testing.T) {
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
	// The user is held 1s, from any address.
	var ra *RetryAfterError
	if err := try("right", 2); !errors.As(err, &ra) || ra.After != time.Second {
		t.Fatalf("user not held 1s: %v", err)
	}
	clk.advance(500 * time.Millisecond)
	if err := try("right", 1); !errors.As(err, &ra) || ra.After != 500*time.Millisecond {
		t.Fatalf("remaining hold: %v", err)
	}
	clk.advance(500 * time.Millisecond)
	if err := try("right", 1); err != nil {
		t.Fatal(err)
	}
	// A success does not forget the failures: the next one holds 2s.
	if err := try("again", 1); !errors.Is(err, ErrBadCredentials) {
		t.Fatal(err)
	}
	if err := try("again2", 1); !errors.As(err, &ra) || ra.After != 2*time.Second {
		t.Fatalf("second hold: %v", err)
	}
	// The password that last succeeded passes the hold.
	if err := try("right", 3); err != nil {
		t.Fatalf("last good password held: %v", err)
	}
	// 15 minutes of quiet forget it all.
	clk.advance(backoffForget)
	calls := backend.calls.Load()
	for i := range 3 {
		try(fmt.Sprint("later", i), 1)
	}
	if backend.calls.Load() != calls+3 {
		t.Fatal("failures not forgotten after 15 minutes")
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
		if got := backoffDelay(defaultBackoff.Free, defaultBackoff.Max, tt.k); got != tt.want {
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
	if r := b.records[b.userKey("alice")]; r.fails != 1 || r.strikes != 1 {
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
	// 4 failures: the lockout guard holds alice until unlocked; then the
	// right password is not a duplicate of anything.
	clk.advance(time.Hour)
	right := Credentials{User: "alice", Password: "right", Client: addr(1)}
	if _, err := b.Authenticate(ctx, right); !errors.Is(err, ErrHeld) {
		t.Fatalf("after 4 failures: %v", err)
	}
	if !b.Unlock("alice") {
		t.Fatal("nothing to unlock")
	}
	if _, err := b.Authenticate(ctx, right); err != nil {
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
	cfg.Free = 100 // only the lockout guard applies
	cfg.PerUser, cfg.PerAddress = 10, 10
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
	if _, err := b.Authenticate(context.Background(), Credentials{User: "admin", Password: "right", Client: addr(9)}); !errors.Is(err, ErrHeld) {
		t.Fatalf("after 4 failures: %v", err)
	}
}

// cache(backoff(backend)): a flood of bad passwords holds the user, but a
// password verified within the cache TTL still works, at once. The hit is
// confirmed with the backend once, in the background, which clears the
// strikes (in Keystone too).
func TestBackoffBehindCache(t *testing.T) {
	backend := &fakeAuth{users: map[string]string{"admin": "right"}}
	c := Chain(backend, ChainConfig{Cache: CacheConfig{TTL: DefaultCacheTTL, Size: 10, Domain: "Default"}, Backoff: defaultBackoff}, nil)
	b := c.Backoff()
	ctx := context.Background()
	good := Credentials{User: "admin", Password: "right", Client: addr(1)}
	if _, err := c.Authenticate(ctx, good); err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		c.Authenticate(ctx, Credentials{User: "admin", Password: fmt.Sprint(i), Client: addr(i)})
	}
	// The guard stops at 4 failures; holds and in-flight caps stop the
	// rest of this burst earlier.
	calls := backend.calls.Load()
	if calls > 1+4 {
		t.Fatalf("%d backend calls, want the login and at most 4 failures", calls)
	}
	if id, err := c.Authenticate(ctx, good); err != nil || id.Name != "admin" {
		t.Fatalf("cached admin refused during the flood: %v", err)
	}
	// The confirming login: one backend call, then no strikes left.
	deadline := time.Now().Add(5 * time.Second)
	for {
		b.mu.Lock()
		r := b.records[b.userKey("admin")]
		done := r != nil && r.strikes == 0 && !r.confirming
		b.mu.Unlock()
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the cache hit was not confirmed")
		}
		time.Sleep(time.Millisecond)
	}
	if got := backend.calls.Load(); got != calls+1 {
		t.Fatalf("%d backend calls after the hit, want %d", got, calls+1)
	}
	// From an address that failed too, and again: no more backend calls.
	good.Client = addr(7)
	if _, err := c.Authenticate(ctx, good); err != nil {
		t.Fatal(err)
	}
	if backend.calls.Load() != calls+1 {
		t.Fatal("a cache hit without strikes reached the backend")
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

// The table is bounded, records that hold anyone back are never evicted,
// and at the bound a new name is refused (ErrBusy) without a backend call.
func TestBackoffBound(t *testing.T) {
	b, backend, clk, _ := newTestBackoff(defaultBackoff, nil)
	b.maxKeys = 10
	ctx := context.Background()
	for i := range 100 {
		b.Authenticate(ctx, Credentials{User: fmt.Sprint("u", i), Password: "x", Client: addr(i)})
	}
	if len(b.records) != 10 || backend.calls.Load() != 5 {
		t.Fatalf("%d records, %d backend calls; want 10 (5 users, 5 addresses) and 5", len(b.records), backend.calls.Load())
	}
	for i := range 5 {
		if _, ok := b.records[b.userKey(fmt.Sprint("u", i))]; !ok {
			t.Fatalf("u%d was evicted", i)
		}
	}
	if _, err := b.Authenticate(ctx, Credentials{User: "new", Password: "x", Client: addr(1)}); !errors.Is(err, ErrBusy) {
		t.Fatalf("a new name at the bound: %v", err)
	}
	// Strikes never expire; forgotten address failures may go.
	clk.advance(backoffForget)
	if _, err := b.Authenticate(ctx, Credentials{User: "new", Password: "x", Client: addr(1)}); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("a new name after the addresses' failures are forgotten: %v", err)
	}
	for i := range 5 {
		if _, ok := b.records[b.userKey(fmt.Sprint("u", i))]; !ok {
			t.Fatalf("u%d was evicted", i)
		}
	}
}
