package authn

import (
	"container/list"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"hash"
	"sync"
	"time"

	"stx-registry/token/access"
	"stx-registry/token/metrics"
)

const (
	// DefaultCacheTTL is how long a verified password is trusted without
	// asking the backend again; also how long a changed or deleted password
	// may keep working.
	DefaultCacheTTL = 5 * time.Minute
	// DefaultCacheSize bounds the cache: one entry per user.
	DefaultCacheSize = 4096
)

// CacheConfig is the credential cache part of the configuration.
type CacheConfig struct {
	TTL    time.Duration // cache_ttl
	Size   int           // cache_size
	Domain string        // keystone_user_domain; part of the key, so a user in another domain is another entry
}

// CredentialCache remembers successful logins so that repeated token
// requests do not pay bcrypt (or a Keystone round trip) each time. It wraps
// any Authenticator, in front of the backoff: a cached password keeps
// working while the backoff holds the user, and while the backend is down.
//
// It never stores a password: an entry, keyed by domain and user, holds an
// HMAC-SHA256 of the user and password under a key drawn at process start,
// compared in constant time. Each entry has its own expiry and the least
// recently used entry goes when the cache is full. Only successes are
// cached, and a hit never calls the backend.
//
// Concurrent misses for the same domain, user and password share one
// backend call (kubelet pulls many images at once); different passwords for
// the same user do not share a result.
type CredentialCache struct {
	next    Authenticator
	cfg     CacheConfig
	metrics *metrics.Metrics
	key     [32]byte
	macs    sync.Pool // of hash.Hash: HMAC-SHA256 states under key, kept so that a hit does not key a new one
	now     func() time.Time
	onHit   func(context.Context, Credentials) // told of every hit; set by Chain

	mu       sync.Mutex
	lru      *list.List // of *cacheEntry, most recent first
	entries  map[string]*list.Element
	inflight map[flightKey]*flight
}

type cacheEntry struct {
	key     string // domain \x00 user
	mac     [sha256.Size]byte
	id      access.Identity
	expires time.Time
}

// flightKey names one backend call shared by concurrent identical misses.
type flightKey struct {
	key string
	mac [sha256.Size]byte
}

// flight is one backend call under way; done is closed when id and err are
// set.
type flight struct {
	done chan struct{}
	id   access.Identity
	err  error
}

// NewCredentialCache wraps next with a cache; m may be nil.
func NewCredentialCache(next Authenticator, cfg CacheConfig, m *metrics.Metrics) *CredentialCache {
	c := &CredentialCache{
		next:     next,
		cfg:      cfg,
		metrics:  m,
		now:      time.Now,
		lru:      list.New(),
		entries:  make(map[string]*list.Element),
		inflight: make(map[flightKey]*flight),
	}
	rand.Read(c.key[:]) // never fails (crypto/rand panics rather)
	c.macs.New = func() any { return hmac.New(sha256.New, c.key[:]) }
	return c
}

// mac is the HMAC-SHA256 of domain NUL user NUL password under c.key.
func (c *CredentialCache) mac(cr Credentials) (sum [sha256.Size]byte) {
	msg := make([]byte, 0, len(c.cfg.Domain)+len(cr.User)+len(cr.Password)+2)
	msg = append(append(msg, c.cfg.Domain...), 0)
	msg = append(append(msg, cr.User...), 0)
	msg = append(msg, cr.Password...)
	h := c.macs.Get().(hash.Hash)
	h.Write(msg)
	h.Sum(sum[:0])
	h.Reset() // back to the state after the key alone before it is pooled
	c.macs.Put(h)
	clear(msg) // it holds the password
	return sum
}

// Authenticate answers from the cache when the same password was verified
// within the TTL, and asks the wrapped Authenticator otherwise.
func (c *CredentialCache) Authenticate(ctx context.Context, cr Credentials) (access.Identity, error) {
	key := c.cfg.Domain + "\x00" + cr.User
	mac := c.mac(cr)
	now := c.now()

	c.mu.Lock()
	if el, ok := c.entries[key]; ok {
		e := el.Value.(*cacheEntry)
		switch {
		case !now.Before(e.expires):
			c.remove(el)
		case hmac.Equal(e.mac[:], mac[:]):
			c.lru.MoveToFront(el)
			id := e.id
			c.mu.Unlock()
			c.metrics.CacheHit()
			if c.onHit != nil {
				c.onHit(ctx, cr)
			}
			return id, nil
		}
	}
	c.metrics.CacheMiss()
	fk := flightKey{key, mac}
	if f, ok := c.inflight[fk]; ok {
		c.mu.Unlock()
		select {
		case <-f.done:
			return f.id, f.err
		case <-ctx.Done():
			return access.Identity{}, ctx.Err()
		}
	}
	f := &flight{done: make(chan struct{})}
	c.inflight[fk] = f
	c.mu.Unlock()

	// The call is shared, so it must not end when the first client goes
	// away; the backend bounds it with its own timeout.
	f.id, f.err = c.next.Authenticate(context.WithoutCancel(ctx), cr)

	c.mu.Lock()
	delete(c.inflight, fk)
	if f.err == nil {
		if el, ok := c.entries[key]; ok {
			c.remove(el)
		}
		c.entries[key] = c.lru.PushFront(&cacheEntry{key: key, mac: mac, id: f.id, expires: now.Add(c.cfg.TTL)})
		for c.lru.Len() > c.cfg.Size {
			c.remove(c.lru.Back())
		}
	}
	c.metrics.CacheEntries(c.lru.Len())
	c.mu.Unlock()
	close(f.done)
	return f.id, f.err
}

func (c *CredentialCache) remove(el *list.Element) {
	delete(c.entries, el.Value.(*cacheEntry).key)
	c.lru.Remove(el)
}

// Len reports the number of cached entries.
func (c *CredentialCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}
