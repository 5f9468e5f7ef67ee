package authn

import (
	"container/list"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"sync"
	"time"

	"stx-registry/token/access"
	"stx-registry/token/metrics"
)

// Backoff defaults and fixed parameters.
const (
	// DefaultBackoffFree is backoff_free: failures a user or an address
	// gets before it is held at all. Three covers a typo and a retry.
	DefaultBackoffFree = 3
	// DefaultBackoffMax is backoff_max: the longest hold for one failure.
	DefaultBackoffMax = 5 * time.Minute
	// DefaultLockoutAttempts is keystone_lockout_attempts: StarlingX sets
	// Keystone's [security_compliance] lockout_failure_attempts to 5.
	DefaultLockoutAttempts = 5
	// DefaultLockoutWindow is keystone_lockout_window: StarlingX sets
	// Keystone's lockout_duration to 1800 s, and the window must not be
	// shorter.
	DefaultLockoutWindow = 30 * time.Minute

	// backoffBase is the first hold; each further failure doubles it.
	backoffBase = time.Second
	// backoffForget: a user or address with no failure for this long
	// starts again from zero.
	backoffForget = 15 * time.Minute
	// duplicateWindow: containerd follows a refused POST with the same
	// credentials by GET within milliseconds; a repeat of the same failure
	// within this time is answered without asking the backend again.
	duplicateWindow = 2 * time.Second
	// maxBackoffKeys bounds the table of users and addresses (about 200
	// bytes each, so some 13 MB at most). When full the least recently
	// used record goes. Filling it takes 65536 failures, and the address
	// backoff makes that take months from one address, so evicting a
	// held key is not a practical way around the holds.
	maxBackoffKeys = 65536
)

// BackoffConfig is the backoff part of the configuration.
type BackoffConfig struct {
	Free            int           // backoff_free
	Max             time.Duration // backoff_max
	LockoutAttempts int           // keystone_lockout_attempts; 0 turns the lockout cap off
	LockoutWindow   time.Duration // keystone_lockout_window
}

// Backoff slows down password guessing. It sits between the credential
// cache and the backend, cache(backoff(backend)), so a password verified
// recently keeps working from the cache whatever happens here: a flood of
// bad passwords for admin does not stop an admin who logged in recently.
//
// The policy, for bad passwords (ErrBadCredentials from the backend):
//
//   - Failures are counted per user and per client address. After the
//     k-th failure, k ≥ Free, the user and the address are each held for
//     min(1s·2^(k−Free), Max). While either is held, a request is answered
//     with *RetryAfterError without calling the backend. A success through
//     the backend resets the counters of that user and that address; 15
//     minutes without a failure forget them.
//   - Keystone lockout cap: with LockoutAttempts = N > 0, at most N−1
//     backend failures (counting calls in flight) are let through for a
//     user before a success; then the user is held until LockoutWindow has
//     passed since the last failure. A wrong password therefore never
//     reaches Keystone's lockout_failure_attempts through this server
//     within a window. The trade-off: an attacker can hold an uncached user
//     for the window (that user's cached password still works), but can
//     never lock the account in Keystone within the window. Keystone does
//     not forget failures with time, only on a success or after a lockout
//     has expired, so failures from later windows do add up there; the
//     window slows an attacker to N−1 guesses per window instead.
//   - A failure with the same user, address and password as the previous
//     failure from that address, within 2 s, is answered as the same
//     failure without calling the backend and without counting
//     (containerd's POST-then-GET fallback).
//
// Backend errors other than bad credentials (unavailable, Keystone's own
// 429) are passed on and not counted: a Keystone outage must not hold every
// user once it is over. A call that timed out may still have reached
// Keystone; that is the one way Keystone may see more failures than the cap.
type Backoff struct {
	next    Authenticator
	cfg     BackoffConfig
	metrics *metrics.Metrics
	key     [32]byte // HMAC key for the duplicate check, drawn at start
	now     func() time.Time
	maxKeys int

	mu      sync.Mutex
	lru     *list.List // of *backoffRecord, most recently used first
	records map[string]*list.Element
}

// backoffRecord is the state of one user ("u\x00NAME") or one client
// address ("a\x00ADDR").
type backoffRecord struct {
	key       string
	fails     int       // backend failures, forgotten after backoffForget without one
	lastFail  time.Time // time of the last backend failure
	heldUntil time.Time // exponential backoff hold

	// user records only
	lockFails int // backend failures since a success, forgotten after LockoutWindow without one
	inflight  int // backend calls under way

	// address records only: the last failure, for the duplicate check
	dupMAC [sha256.Size]byte
	dupAt  time.Time
}

// NewBackoff wraps next; m may be nil.
func NewBackoff(next Authenticator, cfg BackoffConfig, m *metrics.Metrics) *Backoff {
	b := &Backoff{
		next:    next,
		cfg:     cfg,
		metrics: m,
		now:     time.Now,
		maxKeys: maxBackoffKeys,
		lru:     list.New(),
		records: make(map[string]*list.Element),
	}
	rand.Read(b.key[:]) // never fails (crypto/rand panics rather)
	return b
}

// Authenticate implements Authenticator.
func (b *Backoff) Authenticate(ctx context.Context, cr Credentials) (access.Identity, error) {
	userKey, addrKey := "u\x00"+cr.User, "a\x00"+cr.Client.String()
	mac := b.mac(cr)
	now := b.now()

	b.mu.Lock()
	u := b.get(userKey, now, true)
	a := b.get(addrKey, now, false)
	if a != nil && !a.dupAt.IsZero() && now.Sub(a.dupAt) < duplicateWindow && hmac.Equal(a.dupMAC[:], mac[:]) {
		b.mu.Unlock()
		return access.Identity{}, ErrBadCredentials
	}
	if wait := max(b.userHold(u, now), holdLeft(a, now)); wait > 0 {
		b.mu.Unlock()
		b.metrics.BackoffRejection()
		return access.Identity{}, &RetryAfterError{After: wait}
	}
	u.inflight++
	b.mu.Unlock()

	id, err := b.next.Authenticate(ctx, cr)

	now = b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	u.inflight-- // u may have been evicted meanwhile; then this is harmless
	switch {
	case err == nil:
		u.fails, u.lockFails, u.heldUntil = 0, 0, time.Time{}
		if u.inflight == 0 {
			b.remove(userKey)
		}
		b.remove(addrKey)
	case errors.Is(err, ErrBadCredentials):
		u = b.get(userKey, now, true)
		b.fail(u, now)
		u.lockFails++
		a = b.get(addrKey, now, true)
		b.fail(a, now)
		a.dupMAC, a.dupAt = mac, now
	default:
		if r := b.get(userKey, now, false); r != nil && r.fails == 0 && r.lockFails == 0 && r.inflight == 0 {
			b.remove(userKey)
		}
	}
	return id, err
}

// fail counts one backend failure on r.
func (b *Backoff) fail(r *backoffRecord, now time.Time) {
	r.fails++
	r.lastFail = now
	if r.fails >= b.cfg.Free {
		r.heldUntil = now.Add(backoffDelay(b.cfg, r.fails))
	}
}

// backoffDelay is the hold after the k-th failure, k ≥ cfg.Free:
// min(backoffBase·2^(k−Free), Max).
func backoffDelay(cfg BackoffConfig, k int) time.Duration {
	shift := min(k-cfg.Free, 30) // 2^30 s is decades: far above any Max
	return min(backoffBase<<shift, cfg.Max)
}

// holdLeft is how long r is still held by its exponential backoff.
func holdLeft(r *backoffRecord, now time.Time) time.Duration {
	if r == nil || !r.heldUntil.After(now) {
		return 0
	}
	return r.heldUntil.Sub(now)
}

// userHold adds the lockout cap to the exponential backoff of user record u.
func (b *Backoff) userHold(u *backoffRecord, now time.Time) time.Duration {
	wait := holdLeft(u, now)
	n := b.cfg.LockoutAttempts
	if n == 0 || u.lockFails+u.inflight < n-1 {
		return wait
	}
	until := u.lastFail.Add(b.cfg.LockoutWindow)
	if u.lockFails < n-1 {
		until = now.Add(time.Second) // calls in flight may yet succeed
	}
	if until.After(now) {
		wait = max(wait, until.Sub(now))
	}
	return wait
}

// get returns the record for key, first forgetting what has expired, and
// creates it if asked. Called with b.mu held.
func (b *Backoff) get(key string, now time.Time, create bool) *backoffRecord {
	if el, ok := b.records[key]; ok {
		r := el.Value.(*backoffRecord)
		quiet := now.Sub(r.lastFail)
		if quiet >= backoffForget {
			r.fails, r.heldUntil = 0, time.Time{}
		}
		if quiet >= b.cfg.LockoutWindow {
			r.lockFails = 0
		}
		b.lru.MoveToFront(el)
		return r
	}
	if !create {
		return nil
	}
	r := &backoffRecord{key: key}
	b.records[key] = b.lru.PushFront(r)
	for b.lru.Len() > b.maxKeys {
		b.remove(b.lru.Back().Value.(*backoffRecord).key)
	}
	return r
}

func (b *Backoff) remove(key string) {
	if el, ok := b.records[key]; ok {
		delete(b.records, key)
		b.lru.Remove(el)
	}
}

func (b *Backoff) mac(cr Credentials) (sum [sha256.Size]byte) {
	h := hmac.New(sha256.New, b.key[:])
	h.Write([]byte(cr.User))
	h.Write([]byte{0})
	h.Write([]byte(cr.Password))
	h.Sum(sum[:0])
	return sum
}

// MaxBackendFailures is the most bad-password calls the backoff lets through
// to the backend for ONE user within elapsed of the first, whatever the
// number of client addresses, when all of n attempts fail and each comes at
// the earliest moment the user is not held. It follows the policy
// documented on Backoff step by step, independently of the implementation,
// so that tests (the Keystone end-to-end test too) can compute the bound
// from the configuration.
func MaxBackendFailures(cfg BackoffConfig, n int, elapsed time.Duration) int {
	var t time.Duration // time of the next call, from the first
	fails, lockFails, calls := 0, 0, 0
	for calls < n && t <= elapsed {
		calls++
		fails++
		lockFails++
		next := t
		if fails >= cfg.Free {
			next = t + backoffDelay(cfg, fails)
		}
		if cfg.LockoutAttempts > 0 && lockFails >= cfg.LockoutAttempts-1 {
			next = max(next, t+cfg.LockoutWindow)
		}
		if next-t >= backoffForget {
			fails = 0
		}
		if next-t >= cfg.LockoutWindow {
			lockFails = 0
		}
		t = next
	}
	return calls
}
