package authn

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"stx-registry/token/access"
	"stx-registry/token/metrics"
)

func TestCredentialCache(t *testing.T) {
	backend := &fakeAuth{users: map[string]string{"alice": "pw-a", "bob": "pw-b", "carol": "pw-c"}}
	m := metrics.New("users", "test")
	c := NewCredentialCache(backend, CacheConfig{TTL: time.Minute, Size: 2, Domain: "Default"}, m)
	now := time.Unix(1_000_000, 0)
	c.now = func() time.Time { return now }
	ctx := context.Background()
	login := func(user, pw string) error {
		_, err := c.Authenticate(ctx, Credentials{User: user, Password: pw})
		return err
	}
	calls := func() int64 { return backend.calls.Load() }

	for range 100 {
		if err := login("alice", "pw-a"); err != nil {
			t.Fatal(err)
		}
	}
	if calls() != 1 {
		t.Fatalf("100 logins made %d backend calls, want 1", calls())
	}
	if m.CacheHitCount() != 99 || m.CacheMissCount() != 1 || m.CacheEntryCount() != 1 {
		t.Errorf("metrics: %d hits, %d misses, %d entries", m.CacheHitCount(), m.CacheMissCount(), m.CacheEntryCount())
	}
	// A wrong password is never answered from the cache, nor cached.
	for range 3 {
		if err := login("alice", "wrong"); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("wrong password: %v", err)
		}
	}
	if calls() != 4 {
		t.Fatalf("wrong passwords made %d calls, want 3 more", calls()-1)
	}
	// The right one still hits the cache after failures.
	login("alice", "pw-a")
	if calls() != 4 {
		t.Fatal("failure evicted the cached success")
	}
	// Expiry is per entry.
	now = now.Add(time.Minute + time.Second)
	login("alice", "pw-a")
	if calls() != 5 {
		t.Fatal("expired entry answered from cache")
	}
	// LRU bound: alice, bob, then carol evicts the least recently used (alice).
	login("bob", "pw-b")
	login("alice", "pw-a") // alice now most recent
	login("carol", "pw-c") // evicts bob
	if c.Len() != 2 {
		t.Fatalf("len %d, want 2", c.Len())
	}
	before := calls()
	login("alice", "pw-a")
	if calls() != before {
		t.Fatal("alice was evicted instead of bob")
	}
	login("bob", "pw-b")
	if calls() != before+1 {
		t.Fatal("bob should have been evicted")
	}
}

// A hit never calls the backend, so a verified password keeps working for
// its TTL while the backend is down, and stops working after.
func TestCredentialCacheBackendDown(t *testing.T) {
	backend := &fakeAuth{users: map[string]string{"alice": "pw-a"}}
	c := NewCredentialCache(backend, CacheConfig{TTL: time.Minute, Size: 10, Domain: "Default"}, nil)
	now := time.Unix(1_000_000, 0)
	c.now = func() time.Time { return now }
	ctx := context.Background()
	cr := Credentials{User: "alice", Password: "pw-a"}
	if _, err := c.Authenticate(ctx, cr); err != nil {
		t.Fatal(err)
	}
	backend.err = ErrUnavailable
	now = now.Add(59 * time.Second)
	if id, err := c.Authenticate(ctx, cr); err != nil || id.Name != "alice" {
		t.Fatalf("cached login while the backend is down: %v %v", id, err)
	}
	now = now.Add(time.Second)
	if _, err := c.Authenticate(ctx, cr); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("expired entry while the backend is down: %v", err)
	}
	if backend.calls.Load() != 2 {
		t.Fatalf("%d backend calls, want 2", backend.calls.Load())
	}
}

func TestCredentialCacheBound(t *testing.T) {
	backend := &fakeAuth{users: map[string]string{}}
	for i := range 50 {
		backend.users[fmt.Sprint("u", i)] = "pw"
	}
	c := NewCredentialCache(backend, CacheConfig{TTL: time.Minute, Size: 10}, nil)
	for i := range 50 {
		c.Authenticate(context.Background(), Credentials{User: fmt.Sprint("u", i), Password: "pw"})
	}
	if c.Len() != 10 {
		t.Fatalf("cache holds %d entries, bound is 10", c.Len())
	}
}

// The domain is part of the key: the same user and password verified for
// one domain is not a hit for a cache configured with another.
func TestCredentialCacheDomain(t *testing.T) {
	backend := &fakeAuth{users: map[string]string{"alice": "pw-a"}}
	a := NewCredentialCache(backend, CacheConfig{TTL: time.Minute, Size: 10, Domain: "Default"}, nil)
	b := NewCredentialCache(backend, CacheConfig{TTL: time.Minute, Size: 10, Domain: "Other"}, nil)
	b.key = a.key
	cr := Credentials{User: "alice", Password: "pw-a"}
	if a.mac(cr) == b.mac(cr) {
		t.Fatal("the MAC does not cover the domain")
	}
	a.Authenticate(context.Background(), cr)
	if _, ok := a.entries["Default\x00alice"]; !ok {
		t.Fatalf("entry key is not domain\\x00user: %v", a.entries)
	}
}

// blockingAuth holds every call until release is closed, counting calls.
type blockingAuth struct {
	fakeAuth
	started chan struct{} // one send per call
	release chan struct{}
}

func (b *blockingAuth) Authenticate(ctx context.Context, c Credentials) (access.Identity, error) {
	b.started <- struct{}{}
	<-b.release
	return b.fakeAuth.Authenticate(ctx, c)
}

// Concurrent identical misses share one backend call, success or failure;
// a different password for the same user gets its own call.
func TestCredentialCacheSingleflight(t *testing.T) {
	for _, pw := range []string{"pw-a", "wrong"} {
		t.Run(pw, func(t *testing.T) {
			backend := &blockingAuth{
				fakeAuth: fakeAuth{users: map[string]string{"alice": "pw-a"}},
				started:  make(chan struct{}, 100),
				release:  make(chan struct{}),
			}
			m := metrics.New("users", "test")
			c := NewCredentialCache(backend, CacheConfig{TTL: time.Minute, Size: 10}, m)
			const n = 20
			var wg sync.WaitGroup
			var ok, bad atomic.Int64
			for range n {
				wg.Go(func() {
					_, err := c.Authenticate(context.Background(), Credentials{User: "alice", Password: pw})
					switch {
					case err == nil:
						ok.Add(1)
					case errors.Is(err, ErrBadCredentials):
						bad.Add(1)
					}
				})
			}
			<-backend.started
			// Wait until every caller is either the leader or a waiter.
			for m.CacheMissCount() < n {
				time.Sleep(time.Millisecond)
			}
			// A different password is not merged into the flight.
			done := make(chan error)
			go func() {
				_, err := c.Authenticate(context.Background(), Credentials{User: "alice", Password: "other"})
				done <- err
			}()
			<-backend.started
			close(backend.release)
			wg.Wait()
			if err := <-done; !errors.Is(err, ErrBadCredentials) {
				t.Errorf("other password: %v", err)
			}
			if got := backend.calls.Load(); got != 2 {
				t.Fatalf("%d backend calls, want 1 shared and 1 for the other password", got)
			}
			if pw == "pw-a" && ok.Load() != n || pw == "wrong" && bad.Load() != n {
				t.Fatalf("results: %d ok, %d bad of %d", ok.Load(), bad.Load(), n)
			}
		})
	}
}

// A waiter whose client goes away returns at once; the shared call goes on.
func TestCredentialCacheWaiterCancel(t *testing.T) {
	backend := &blockingAuth{
		fakeAuth: fakeAuth{users: map[string]string{"alice": "pw-a"}},
		started:  make(chan struct{}, 10),
		release:  make(chan struct{}),
	}
	c := NewCredentialCache(backend, CacheConfig{TTL: time.Minute, Size: 10}, nil)
	cr := Credentials{User: "alice", Password: "pw-a"}
	leader := make(chan error)
	go func() { _, err := c.Authenticate(context.Background(), cr); leader <- err }()
	<-backend.started
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Authenticate(ctx, cr); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled waiter: %v", err)
	}
	close(backend.release)
	if err := <-leader; err != nil {
		t.Fatal(err)
	}
	if c.Len() != 1 {
		t.Fatal("the shared success was not cached")
	}
}

// TestCredentialCacheMAC: the pooled HMAC states give, from any goroutine
// and after any earlier password, what a newly keyed HMAC gives for
// domain NUL user NUL password.
func TestCredentialCacheMAC(t *testing.T) {
	c := NewCredentialCache(nil, CacheConfig{TTL: time.Minute, Size: 10, Domain: "Default"}, nil)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				cr := Credentials{User: fmt.Sprintf("user%d", g), Password: strings.Repeat("p", (i*7+g)%150)}
				h := hmac.New(sha256.New, c.key[:])
				h.Write([]byte("Default\x00" + cr.User + "\x00" + cr.Password))
				if got := c.mac(cr); !hmac.Equal(got[:], h.Sum(nil)) {
					t.Errorf("mac(%q, %d-byte password) differs from a new HMAC", cr.User, len(cr.Password))
					return
				}
			}
		})
	}
	wg.Wait()
}
