package main

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestCredentialCache(t *testing.T) {
	backend := &fakeAuth{users: map[string]string{"alice": "pw-a", "bob": "pw-b", "carol": "pw-c"}}
	c := NewCredentialCache(backend, time.Minute, 2)
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

func TestCredentialCacheBound(t *testing.T) {
	backend := &fakeAuth{users: map[string]string{}}
	for i := range 50 {
		backend.users[fmt.Sprint("u", i)] = "pw"
	}
	c := NewCredentialCache(backend, time.Minute, 10)
	for i := range 50 {
		c.Authenticate(context.Background(), Credentials{User: fmt.Sprint("u", i), Password: "pw"})
	}
	if c.Len() != 10 {
		t.Fatalf("cache holds %d entries, bound is 10", c.Len())
	}
}
