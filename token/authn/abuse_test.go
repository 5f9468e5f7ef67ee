package authn

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"stx-registry/token/access"
)

// refuser is a backend stand-in that refuses every password except those
// in good, counts the calls per user and, when block is set, holds every
// refused call until block is closed.
type refuser struct {
	good  map[string]string
	block chan struct{}

	mu       sync.Mutex
	calls    map[string]int
	inflight int
	peak     int // most calls in flight at once
	total    atomic.Int64
}

func (f *refuser) Authenticate(_ context.Context, c Credentials) (access.Identity, error) {
	f.total.Add(1)
	f.mu.Lock()
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls[c.User]++
	f.inflight++
	f.peak = max(f.peak, f.inflight)
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.inflight--
		f.mu.Unlock()
	}()
	if pw, ok := f.good[c.User]; ok && pw == c.Password {
		return access.Identity{Name: c.User}, nil
	}
	if f.block != nil {
		<-f.block
	}
	return access.Identity{}, ErrBadCredentials
}

func (f *refuser) count(user string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[user]
}

// newTestChain is cache(backoff(backend)) on a fake clock.
func newTestChain(backend Authenticator, cfg BackoffConfig) (*CredentialCache, *Backoff, *fakeClock) {
	clk := &fakeClock{time.Unix(1_000_000, 0)}
	b := NewBackoff(backend, cfg, nil)
	b.now = clk.now
	c := NewCredentialCache(b, CacheConfig{TTL: DefaultCacheTTL, Size: DefaultCacheSize, Domain: "Default"}, nil)
	c.now = clk.now
	return c, b, clk
}

// Issue 10 §1: a flood of made-up user names from one address must not push
// the victim's record out of the table. Before the fix every refused
// request made a record, and 65536 of them evicted the victim's.
func TestFloodKeepsHolds(t *testing.T) {
	backend := &refuser{}
	auth, _, clk := newTestChain(backend, defaultBackoff)
	ctx := context.Background()
	a, b := addr(1), addr(2)
	// admin from A until the server stops asking the backend.
	var ra *RetryAfterError
	for i := 0; ; i++ {
		_, err := auth.Authenticate(ctx, Credentials{User: "admin", Password: fmt.Sprint("guess", i), Client: a})
		if (errors.As(err, &ra) || errors.Is(err, ErrHeld)) && backend.count("admin") == DefaultLockoutAttempts-1 {
			break
		}
		if i > 100 {
			t.Fatalf("admin never held: %d backend calls, last %v", backend.count("admin"), err)
		}
		clk.advance(time.Minute)
	}
	before := backend.count("admin")
	for i := range 70_000 {
		auth.Authenticate(ctx, Credentials{User: fmt.Sprint("nobody", i), Password: "x", Client: b})
	}
	for i := range 4 {
		clk.advance(time.Minute)
		_, err := auth.Authenticate(ctx, Credentials{User: "admin", Password: fmt.Sprint("again", i), Client: a})
		if errors.Is(err, ErrBadCredentials) {
			t.Errorf("bad password %d after the flood answered by the backend", i)
		}
	}
	if got := backend.count("admin"); got != before {
		t.Fatalf("the flood let %d more bad passwords for admin reach the backend", got-before)
	}
}

// Issue 10 §1b: no pattern of bad passwords, however spread over time and
// addresses, makes the backend see N failures for one user without a
// success in between; the last password that worked still does.
func TestLockoutNeverReached(t *testing.T) {
	backend := &refuser{good: map[string]string{"admin": "right"}}
	b := NewBackoff(backend, defaultBackoff, nil)
	clk := &fakeClock{time.Unix(1_000_000, 0)}
	b.now = clk.now
	ctx := context.Background()
	if _, err := b.Authenticate(ctx, Credentials{User: "admin", Password: "right", Client: addr(9)}); err != nil {
		t.Fatal(err)
	}
	for i := range 2000 { // 2000 guesses, one every 37 s: about 20 hours
		b.Authenticate(ctx, Credentials{User: "admin", Password: fmt.Sprint("guess", i), Client: addr(i % 50)})
		clk.advance(37 * time.Second)
	}
	if got := backend.count("admin") - 1; got > DefaultLockoutAttempts-1 {
		t.Fatalf("%d failures for admin reached the backend, Keystone locks at %d", got, DefaultLockoutAttempts)
	}
	if _, err := b.Authenticate(ctx, Credentials{User: "admin", Password: "right", Client: addr(99)}); err != nil {
		t.Fatalf("the last good password is refused: %v", err)
	}
}

// Issue 10 §2: 500 concurrent bad logins from one address make at most the
// per-address cap of backend calls, and a correct login from another
// address is served meanwhile.
func TestBurstBoundedBackendCalls(t *testing.T) {
	backend := &refuser{good: map[string]string{"demo": "demo-pw"}, block: make(chan struct{})}
	auth, _, _ := newTestChain(backend, defaultBackoff)
	ctx := context.Background()
	const n = 500
	var returned atomic.Int64
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			auth.Authenticate(ctx, Credentials{User: fmt.Sprint("user", i), Password: "bad", Client: addr(1)})
			returned.Add(1)
		}()
	}
	// Every request has either returned or is in the backend.
	deadline := time.Now().Add(20 * time.Second)
	for {
		backend.mu.Lock()
		in := backend.inflight
		backend.mu.Unlock()
		if int(returned.Load())+in == n || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := auth.Authenticate(ctx, Credentials{User: "demo", Password: "demo-pw", Client: addr(2)}); err != nil {
		t.Errorf("a correct login from another address during the burst: %v", err)
	}
	close(backend.block)
	wg.Wait()
	calls := backend.total.Load() - 1 // demo's
	if limit := int64(defaultBackoff.PerAddress); calls > limit || backend.peak > defaultBackoff.PerAddress+1 {
		t.Fatalf("500 concurrent bad logins from one address made %d backend calls, %d at once; the cap is %d", calls, backend.peak, limit)
	}
}

// Issue 10 §4: one user's failures do not hold back another user's correct
// password from the same address.
func TestSharedAddress(t *testing.T) {
	backend := &refuser{good: map[string]string{"demo": "demo-pw"}}
	auth, _, _ := newTestChain(backend, defaultBackoff)
	ctx := context.Background()
	for i := range 4 {
		auth.Authenticate(ctx, Credentials{User: "mallory", Password: fmt.Sprint("guess", i), Client: addr(1)})
	}
	if _, err := auth.Authenticate(ctx, Credentials{User: "demo", Password: "demo-pw", Client: addr(1)}); err != nil {
		t.Fatalf("demo from mallory's address: %v", err)
	}
}

// barrier is a backend whose correct logins answer only once n of them are
// under way at once (or after a second), so that they overlap for sure.
type barrier struct {
	n       int
	mu      sync.Mutex
	waiting int
	all     chan struct{}
}

func (b *barrier) Authenticate(_ context.Context, c Credentials) (access.Identity, error) {
	b.mu.Lock()
	if b.waiting++; b.waiting == b.n {
		close(b.all)
	}
	b.mu.Unlock()
	select {
	case <-b.all:
	case <-time.After(time.Second):
	}
	if c.Password != c.User+"-pw" {
		return access.Identity{}, ErrBadCredentials
	}
	return access.Identity{Name: c.User}, nil
}

// The first logins of several users of one StarlingX node, whose pods share
// its address, run side by side: with the defaults none is refused for the
// address's calls in flight. (With backend_per_address 2, the garbage
// collection test's three concurrent skopeo users got 429.)
func TestSharedAddressConcurrentFirstLogins(t *testing.T) {
	const users = 3
	backend := &barrier{n: users, all: make(chan struct{})}
	auth, _, _ := newTestChain(backend, defaultBackoff)
	errs := make(chan error, users)
	for i := range users {
		go func() {
			u := fmt.Sprint("user", i)
			_, err := auth.Authenticate(context.Background(), Credentials{User: u, Password: u + "-pw", Client: addr(1)})
			errs <- err
		}()
	}
	for range users {
		if err := <-errs; err != nil {
			t.Errorf("a first login from a shared address: %v", err)
		}
	}
}
