package authn

import (
	"container/list"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"net/netip"
	"sync"
	"time"

	"stx-registry/token/access"
	"stx-registry/token/metrics"
)

// Backoff defaults and fixed parameters.
const (
	// DefaultBackoffFree is backoff_free: failures a user gets before it is
	// held at all. Three covers a typo and a retry.
	DefaultBackoffFree = 3
	// DefaultBackoffMax is backoff_max: the longest hold for one failure.
	DefaultBackoffMax = 5 * time.Minute
	// DefaultSprayUsers is backoff_spray_users: distinct users that may
	// fail from one client address before the address itself is held. A
	// node's pods share its address, and a few of them with stale
	// credentials must not hold back the others.
	DefaultSprayUsers = 10
	// MaxSprayUsers bounds backoff_spray_users, and so the per-address set
	// of failing users (4 bytes each).
	MaxSprayUsers = 64
	// DefaultLockoutAttempts is keystone_lockout_attempts: StarlingX sets
	// Keystone's [security_compliance] lockout_failure_attempts to 5.
	DefaultLockoutAttempts = 5
	// DefaultPerUser is backend_per_user: backend calls in flight for one
	// user. Identical concurrent logins share one call in the cache, so
	// more than one at a time means different passwords.
	DefaultPerUser = 1
	// DefaultPerAddress is backend_per_address: backend calls in flight
	// (running or queued) for one client address. Half of
	// DefaultConcurrency, so that one address can never take every slot;
	// enough for the first logins of a few users of one StarlingX node,
	// whose pods all share the node's address.
	DefaultPerAddress = 4

	// backoffBase is the first hold; each further failure doubles it.
	backoffBase = time.Second
	// backoffForget: a user's or address's failures with no new failure
	// for this long are forgotten by the exponential backoff (not by the
	// Keystone lockout guard, which forgets only on a success).
	backoffForget = 15 * time.Minute
	// duplicateWindow: containerd follows a refused POST with the same
	// credentials by GET within milliseconds; a repeat of the same failure
	// within this time is answered without asking the backend again.
	duplicateWindow = 2 * time.Second
	// inflightRetry is the Retry-After of a request refused because calls
	// already in flight for its user or address may yet fail: by then
	// they have an answer.
	inflightRetry = time.Second
	// maxBackoffRecords bounds the table of users and client addresses.
	// A record is a fixed size whatever the user name (the key is a
	// 128-bit keyed hash of it): about 300 bytes with the map and list
	// overhead, plus 4 bytes per backoff_spray_users for an address. That
	// is about 20 MB with the defaults (TestBackoffMemory measures it) and
	// 40 MB at most. Records are made only for calls that reach the
	// backend, and one that holds anyone back is never evicted: see
	// Backoff.
	maxBackoffRecords = 1 << 16
	// evictScan is how many of the least recently used records are looked
	// at for one that may go, before a new name is refused.
	evictScan = 16
)

// BackoffConfig is the backoff part of the configuration.
type BackoffConfig struct {
	Free            int           // backoff_free
	Max             time.Duration // backoff_max
	SprayUsers      int           // backoff_spray_users
	LockoutAttempts int           // keystone_lockout_attempts; 0 turns the lockout guard off
	PerUser         int           // backend_per_user
	PerAddress      int           // backend_per_address
}

// ErrHeld means the user has had keystone_lockout_attempts−1 failed logins
// since the last success this server saw, so only the password that last
// succeeded is sent to Keystone; this one was refused without asking it.
var ErrHeld = errors.New("held to keep the account below Keystone's lockout")

// ErrBusy means the server is checking as many passwords as it may, or its
// abuse table is full of records it must keep; the server answers 503 with
// Retry-After.
var ErrBusy = errors.New("too many password checks under way")

// Backoff slows down password guessing and keeps the backend, Keystone in
// particular, from locking an account because of traffic sent through this
// server. It sits between the credential cache and the backend,
// cache(backoff(gate(backend))), so a password verified recently keeps
// working from the cache whatever happens here.
//
// The policy, for bad passwords (ErrBadCredentials from the backend):
//
//   - Users: after the k-th failure of a user, k ≥ Free, the user is held
//     for min(1s·2^(k−Free), Max) from any address. Failures are forgotten
//     after 15 minutes without one; a success does not forget them, so
//     a user's own logins cannot speed up guessing.
//   - Addresses: one address's failures do not hold back other users from
//     it. Only an address from which SprayUsers distinct users have failed
//     (a password sprayer) is held: after the k-th distinct failing user,
//     k ≥ SprayUsers, for min(1s·2^(k−SprayUsers), Max). IPv6 addresses
//     count by /64.
//   - Keystone lockout guard, with LockoutAttempts = N > 0: the backend
//     failures of each user since the last success through this server
//     ("strikes") are counted, counting calls in flight, and never forgotten
//     with time (Keystone's failed_auth_count is not either). At N−1 only
//     the password that last succeeded for the user (its HMAC, under a key
//     drawn at start, in memory only) is sent on; every other password is
//     refused at once with ErrHeld. A success, a cache hit confirmed by the
//     backend or Unlock clears the strikes.
//   - A password equal to the one that last succeeded for the user is not
//     a guess: it passes the user's and the address's holds (not the
//     in-flight caps).
//   - In flight: at most PerUser backend calls per user and PerAddress per
//     address at once, and calls in flight count as failures in every hold
//     above until they answer, so a burst counts like the same requests in
//     sequence. Excess gets *RetryAfterError at once.
//   - A failure with the same user, address and password as the previous
//     failure from that address, within 2 s, is answered as the same
//     failure without calling the backend and without counting
//     (containerd's POST-then-GET fallback).
//
// Backend errors other than bad credentials (unavailable, Keystone's own
// 429, the gate's ErrBusy) are passed on and not counted. A call that timed
// out may still have reached Keystone; that is the one way Keystone may see
// more failures than the guard allows.
//
// Memory: a request that is refused, or that never reaches the backend,
// creates no record. The table holds at most maxBackoffRecords. A record
// that holds anyone back, has a call in flight, has failures not yet
// forgotten, or has strikes (with the guard on), is never evicted; others
// (forgotten failures, a remembered success) go least recently used first.
// When none of the evictScan least recently used records may go, a request
// that would need a new record gets ErrBusy: closed for names the table
// does not know, never open for those it does.
type Backoff struct {
	next    Authenticator
	cfg     BackoffConfig
	metrics *metrics.Metrics
	key     [32]byte // HMAC key for record keys, passwords and the duplicate check, drawn at start
	now     func() time.Time
	maxKeys int

	mu      sync.Mutex
	lru     *list.List // of *backoffRecord that strikes do not pin, most recently used first
	records map[recordKey]*backoffRecord
}

// recordKey names a user or a client address in the table: a keyed hash,
// so that a record's size does not depend on the name.
type recordKey [16]byte

// backoffRecord is the state of one user or one client address.
type backoffRecord struct {
	key       recordKey
	el        *list.Element // in Backoff.lru; nil while strikes pin the record
	fails     int           // failures, forgotten after backoffForget without one
	lastFail  time.Time     // time of the last failure
	heldUntil time.Time     // exponential backoff hold
	inflight  int           // backend calls under way

	// user records only
	strikes    int               // backend failures since the last success here; not forgotten with time
	good       [sha256.Size]byte // HMAC of the password that last succeeded, if hasGood
	hasGood    bool
	confirming bool // a cache hit's confirming login is under way

	// address records only
	users  []uint32 // distinct users that failed from here (keyed hashes), at most SprayUsers
	others int      // failures of users beyond that set
	dupMAC [sha256.Size]byte
	dupAt  time.Time
}

// NewBackoff wraps next; m may be nil. Zero fields of cfg take their
// defaults.
func NewBackoff(next Authenticator, cfg BackoffConfig, m *metrics.Metrics) *Backoff {
	if cfg.Free == 0 {
		cfg.Free = DefaultBackoffFree
	}
	if cfg.Max == 0 {
		cfg.Max = DefaultBackoffMax
	}
	if cfg.SprayUsers == 0 {
		cfg.SprayUsers = DefaultSprayUsers
	}
	if cfg.PerUser == 0 {
		cfg.PerUser = DefaultPerUser
	}
	if cfg.PerAddress == 0 {
		cfg.PerAddress = DefaultPerAddress
	}
	b := &Backoff{
		next:    next,
		cfg:     cfg,
		metrics: m,
		now:     time.Now,
		maxKeys: maxBackoffRecords,
		lru:     list.New(),
		records: make(map[recordKey]*backoffRecord),
	}
	rand.Read(b.key[:]) // never fails (crypto/rand panics rather)
	return b
}

// Authenticate implements Authenticator.
func (b *Backoff) Authenticate(ctx context.Context, cr Credentials) (access.Identity, error) {
	uk, ak := b.userKey(cr.User), b.addrKey(cr.Client)
	mac := b.passwordMAC(cr)
	now := b.now()

	b.mu.Lock()
	u, a := b.lookup(uk, now), b.lookup(ak, now)
	if a != nil && !a.dupAt.IsZero() && now.Sub(a.dupAt) < duplicateWindow && hmac.Equal(a.dupMAC[:], mac[:]) {
		b.mu.Unlock()
		return access.Identity{}, ErrBadCredentials
	}
	if err := b.admit(u, a, mac, now); err != nil {
		b.mu.Unlock()
		b.metrics.BackoffRejection()
		return access.Identity{}, err
	}
	if u == nil {
		u = b.create(uk, now)
	}
	if u != nil && a == nil {
		u.inflight++ // so that making a cannot evict u
		a = b.create(ak, now)
		u.inflight--
	}
	if u == nil || a == nil {
		b.dropIfEmpty(u, now)
		b.mu.Unlock()
		b.metrics.BackoffRejection()
		return access.Identity{}, ErrBusy
	}
	u.inflight++
	a.inflight++
	b.mu.Unlock()

	id, err := b.next.Authenticate(ctx, cr)

	now = b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	u.inflight--
	a.inflight--
	switch {
	case err == nil:
		u.strikes = 0 // Keystone too has reset its count
		u.good, u.hasGood = mac, true
		b.unpin(u)
	case errors.Is(err, ErrBadCredentials):
		b.userFailed(u, mac, now)
		b.addrFailed(a, uk, mac, now)
	}
	b.dropIfEmpty(u, now)
	b.dropIfEmpty(a, now)
	return id, err
}

// admit decides, before any backend call, whether a request for user
// record u from address record a (either may be nil: nothing known) may
// go on. Called with b.mu held.
func (b *Backoff) admit(u, a *backoffRecord, mac [sha256.Size]byte, now time.Time) error {
	known := u != nil && u.hasGood && hmac.Equal(u.good[:], mac[:])
	if u != nil && b.cfg.LockoutAttempts > 0 && !known {
		switch n := b.cfg.LockoutAttempts - 1; {
		case u.strikes >= n:
			return ErrHeld
		case u.strikes+u.inflight >= n:
			return &RetryAfterError{After: inflightRetry} // calls in flight may yet succeed
		}
	}
	var wait time.Duration
	if !known {
		wait = max(b.hold(u, now, b.cfg.Free, u.failures()), b.hold(a, now, b.cfg.SprayUsers, a.failedUsers()))
	}
	if (u != nil && u.inflight >= b.cfg.PerUser) || (a != nil && a.inflight >= b.cfg.PerAddress) {
		wait = max(wait, inflightRetry)
	}
	if wait > 0 {
		return &RetryAfterError{After: wait}
	}
	return nil
}

// hold is how long record r is held: its exponential hold, or, when its k
// failures and its calls in flight reach free, until those calls answer.
func (b *Backoff) hold(r *backoffRecord, now time.Time, free, k int) time.Duration {
	if r == nil {
		return 0
	}
	var wait time.Duration
	if r.heldUntil.After(now) {
		wait = r.heldUntil.Sub(now)
	}
	if r.inflight > 0 && k+r.inflight >= free {
		wait = max(wait, inflightRetry)
	}
	return wait
}

// failures is the nil-safe failure count of a user record.
func (r *backoffRecord) failures() int {
	if r == nil {
		return 0
	}
	return r.fails
}

// failedUsers is how many distinct users failed from address record r.
func (r *backoffRecord) failedUsers() int {
	if r == nil {
		return 0
	}
	return len(r.users) + r.others
}

// userFailed counts one backend failure on user record u.
func (b *Backoff) userFailed(u *backoffRecord, mac [sha256.Size]byte, now time.Time) {
	u.fails++
	u.lastFail = now
	if u.fails >= b.cfg.Free {
		u.heldUntil = now.Add(backoffDelay(b.cfg.Free, b.cfg.Max, u.fails))
	}
	if u.hasGood && hmac.Equal(u.good[:], mac[:]) {
		u.hasGood = false // the last good password no longer works: never forward it again
	}
	if b.cfg.LockoutAttempts > 0 {
		u.strikes++
		b.pin(u)
	}
}

// addrFailed counts one backend failure of user uk on address record a.
func (b *Backoff) addrFailed(a *backoffRecord, uk recordKey, mac [sha256.Size]byte, now time.Time) {
	h := binary.LittleEndian.Uint32(uk[:4]) // keyed: nobody can choose names that collide
	seen := false
	for _, v := range a.users {
		seen = seen || v == h
	}
	switch {
	case seen:
	case len(a.users) < b.cfg.SprayUsers:
		if a.users == nil {
			a.users = make([]uint32, 0, b.cfg.SprayUsers)
		}
		a.users = append(a.users, h)
	default:
		a.others++ // a sprayer: any further failure counts as another user
	}
	a.lastFail = now
	if k := a.failedUsers(); k >= b.cfg.SprayUsers {
		a.heldUntil = now.Add(backoffDelay(b.cfg.SprayUsers, b.cfg.Max, k))
	}
	a.dupMAC, a.dupAt = mac, now
}

// backoffDelay is the hold after the k-th failure, k ≥ free:
// min(backoffBase·2^(k−free), max).
func backoffDelay(free int, maxHold time.Duration, k int) time.Duration {
	shift := min(k-free, 30) // 2^30 s is decades: far above any Max
	return min(backoffBase<<shift, maxHold)
}

// lookup returns the record for key, or nil, first forgetting failures
// older than backoffForget (not strikes). Called with b.mu held.
func (b *Backoff) lookup(key recordKey, now time.Time) *backoffRecord {
	r, ok := b.records[key]
	if !ok {
		return nil
	}
	if !r.lastFail.IsZero() && now.Sub(r.lastFail) >= backoffForget {
		r.fails, r.heldUntil, r.users, r.others, r.lastFail = 0, time.Time{}, nil, 0, time.Time{}
	}
	if r.el != nil {
		b.lru.MoveToFront(r.el)
	}
	return r
}

// create adds an empty record for key, evicting one that may go if the
// table is full, or returns nil when none may. Called with b.mu held.
func (b *Backoff) create(key recordKey, now time.Time) *backoffRecord {
	if len(b.records) >= b.maxKeys {
		el := b.lru.Back()
		for i := 0; el != nil && i < evictScan && !b.evictable(el.Value.(*backoffRecord), now); i++ {
			el = el.Prev()
		}
		if el == nil || !b.evictable(el.Value.(*backoffRecord), now) {
			return nil
		}
		b.remove(el.Value.(*backoffRecord))
	}
	r := &backoffRecord{key: key}
	r.el = b.lru.PushFront(r)
	b.records[key] = r
	return r
}

// evictable reports whether r holds nothing that keeps anyone back: no
// call in flight, no strikes (they are not in the list at all), and no
// failure that is not yet forgotten. What it loses is a remembered success
// (that user's next login is a normal one) or a spent duplicate check.
func (b *Backoff) evictable(r *backoffRecord, now time.Time) bool {
	return r.inflight == 0 && !r.confirming && (r.lastFail.IsZero() || now.Sub(r.lastFail) >= backoffForget)
}

// pin takes a record with strikes out of the eviction list.
func (b *Backoff) pin(r *backoffRecord) {
	if r.el != nil {
		b.lru.Remove(r.el)
		r.el = nil
	}
}

// unpin puts a record without strikes back in the eviction list.
func (b *Backoff) unpin(r *backoffRecord) {
	if r.el == nil && r.strikes == 0 {
		r.el = b.lru.PushFront(r)
	}
}

// dropIfEmpty removes r (nil is fine) when it holds no state at all, so
// that calls that were not counted leave no record.
func (b *Backoff) dropIfEmpty(r *backoffRecord, now time.Time) {
	if r != nil && r.inflight == 0 && !r.confirming && r.strikes == 0 && r.fails == 0 && !r.hasGood &&
		len(r.users) == 0 && r.others == 0 && r.dupAt.IsZero() && !r.heldUntil.After(now) {
		b.remove(r)
	}
}

func (b *Backoff) remove(r *backoffRecord) {
	if r.el != nil {
		b.lru.Remove(r.el)
		r.el = nil
	}
	delete(b.records, r.key)
}

// Unlock forgets everything about user: its strikes, its failures, its
// hold and its last good password (stx-token-server unlock). It reports
// whether there was anything to forget.
func (b *Backoff) Unlock(user string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	r, ok := b.records[b.userKey(user)]
	if !ok {
		return false
	}
	if r.inflight > 0 || r.confirming {
		// A call under way still updates r when it answers; leave it a
		// clean record rather than a removed one.
		r.strikes, r.fails, r.heldUntil, r.hasGood, r.lastFail = 0, 0, time.Time{}, false, time.Time{}
		b.unpin(r)
		return true
	}
	b.remove(r)
	return true
}

// cacheHit is told by the credential cache that cr was answered from it.
// With the lockout guard on and strikes against the user, the password is
// sent to the backend once, in the background, so that a success clears
// the strikes here and in Keystone (a cache hit does not reset Keystone's
// count, so clearing only ours would let failures add up there). The
// request that hit the cache does not wait for it.
func (b *Backoff) cacheHit(ctx context.Context, cr Credentials) {
	if b.cfg.LockoutAttempts == 0 {
		return
	}
	b.mu.Lock()
	r, ok := b.records[b.userKey(cr.User)]
	if !ok || r.strikes == 0 || r.confirming {
		b.mu.Unlock()
		return
	}
	r.confirming = true
	b.mu.Unlock()
	go func() {
		b.Authenticate(context.WithoutCancel(ctx), cr)
		b.mu.Lock()
		r.confirming = false
		b.dropIfEmpty(r, b.now())
		b.mu.Unlock()
	}()
}

// Len is the number of records in the table.
func (b *Backoff) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.records)
}

// userKey and addrKey are the record keys of a user name and of a client
// address; IPv6 addresses count by /64, the smallest network a host
// usually gets.
func (b *Backoff) userKey(user string) recordKey {
	return b.recordKey('u', []byte(user))
}

func (b *Backoff) addrKey(ip netip.Addr) recordKey {
	ip = ip.Unmap()
	if ip.Is6() {
		ip = netip.PrefixFrom(ip, 64).Masked().Addr()
	}
	raw, _ := ip.MarshalBinary() // never fails
	return b.recordKey('a', raw)
}

func (b *Backoff) recordKey(kind byte, name []byte) (k recordKey) {
	h := hmac.New(sha256.New, b.key[:])
	h.Write([]byte{kind, 0})
	h.Write(name)
	copy(k[:], h.Sum(nil))
	return k
}

// passwordMAC is the HMAC of a user and password, for the last good
// password and the duplicate check; the password itself is never kept.
func (b *Backoff) passwordMAC(cr Credentials) (sum [sha256.Size]byte) {
	h := hmac.New(sha256.New, b.key[:])
	h.Write([]byte{'p', 0})
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
// from the configuration. With the lockout guard on it never exceeds
// LockoutAttempts−1, however long elapsed is.
func MaxBackendFailures(cfg BackoffConfig, n int, elapsed time.Duration) int {
	var t time.Duration // time of the next call, from the first
	fails, strikes, calls := 0, 0, 0
	for calls < n && t <= elapsed {
		if cfg.LockoutAttempts > 0 && strikes >= cfg.LockoutAttempts-1 {
			break
		}
		calls++
		fails++
		strikes++
		next := t
		if fails >= cfg.Free {
			next = t + backoffDelay(cfg.Free, cfg.Max, fails)
		}
		if next-t >= backoffForget {
			fails = 0
		}
		t = next
	}
	return calls
}

// SetClock replaces the clock, for tests that span hours; call it before
// the first Authenticate.
func (b *Backoff) SetClock(now func() time.Time) { b.now = now }
