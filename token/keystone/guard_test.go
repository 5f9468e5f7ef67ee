package keystone

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"sync"
	"testing"
	"time"

	"stx-registry/shared/testrig"
	"stx-registry/token/access"
	"stx-registry/token/authn"
)

// guardClock is the fake clock of the lockout guard test.
type guardClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *guardClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *guardClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Issue 10 §1b against the real Keystone, locking after 3 failures for an
// hour: no pattern of bad passwords sent through the chain, in bursts and
// one by one, from several addresses, spread over many of the old 30-minute
// windows, locks the user. Afterwards the right password still works
// straight against Keystone, and through the chain.
func TestLockoutGuardRealKeystone(t *testing.T) {
	const attempts = 3
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	k, err := testrig.StartKeystoneWith(ctx, t.TempDir(), testrig.KeystoneOptions{LockoutAttempts: attempts, LockoutDuration: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Stop()
	const user, password = "victim", "victim-right-pw"
	if _, err := k.CreateUser(user, password); err != nil {
		t.Fatal(err)
	}
	// Keystone does lock after 3 failures: a control user shows it.
	if _, err := k.CreateUser("control", "control-pw"); err != nil {
		t.Fatal(err)
	}
	for range attempts {
		k.Login("control", "wrong", "")
	}
	if status, err := k.Login("control", "control-pw", ""); err != nil || status != http.StatusUnauthorized {
		t.Fatalf("control user after %d failures: %d %v; the test Keystone does not lock", attempts, status, err)
	}

	backend, err := New(Config{URL: k.URL, UserDomain: "Default", Timeout: 5 * time.Second}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	counted := &countingKeystone{next: backend}
	chain := authn.Chain(counted, authn.ChainConfig{
		Cache:   authn.CacheConfig{TTL: time.Nanosecond, Size: 16, Domain: "Default"}, // every login reaches the backoff
		Backoff: authn.BackoffConfig{LockoutAttempts: attempts},
	}, nil)
	clk := &guardClock{t: time.Now()}
	chain.Backoff().SetClock(clk.now)
	login := func(pw string, from int) error {
		_, err := chain.Authenticate(ctx, authn.Credentials{User: user, Password: pw, Client: netip.AddrFrom4([4]byte{10, 9, 0, byte(from)})})
		return err
	}
	if err := login(password, 1); err != nil {
		t.Fatal(err)
	}
	guess := 0
	for window := range 6 { // six of the old 30-minute windows, and more
		var wg sync.WaitGroup
		for from := range 8 { // a burst from 8 addresses
			wg.Add(1)
			go func() {
				defer wg.Done()
				login(fmt.Sprintf("burst-%d-%d", window, from), from)
			}()
		}
		wg.Wait()
		for range 10 { // then one by one, whenever allowed
			guess++
			err := login(fmt.Sprint("guess", guess), guess%8)
			var ra *authn.RetryAfterError
			if errors.As(err, &ra) {
				clk.advance(ra.After)
			}
		}
		clk.advance(31 * time.Minute)
	}
	if n := counted.failures(); n > attempts-1 {
		t.Errorf("%d bad passwords reached Keystone, it locks at %d", n, attempts)
	}
	if status, err := k.Login(user, password, ""); err != nil || status != http.StatusCreated {
		t.Fatalf("straight to Keystone after the attack: status %d, %v: the account is locked", status, err)
	}
	// That success reset Keystone's count but not ours: still held, except
	// for the password that last worked here.
	if err := login("another-guess", 1); !errors.Is(err, authn.ErrHeld) {
		t.Errorf("another guess: %v, want held", err)
	}
	if err := login(password, 2); err != nil {
		t.Fatalf("the last good password through the chain: %v", err)
	}
}

// countingKeystone counts the bad-password answers of the real backend.
type countingKeystone struct {
	next *Backend
	mu   sync.Mutex
	bad  int
}

func (c *countingKeystone) Authenticate(ctx context.Context, cr authn.Credentials) (id access.Identity, err error) {
	id, err = c.next.Authenticate(ctx, cr)
	if errors.Is(err, authn.ErrBadCredentials) {
		c.mu.Lock()
		c.bad++
		c.mu.Unlock()
	}
	return id, err
}

func (c *countingKeystone) failures() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bad
}
