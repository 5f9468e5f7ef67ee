package main

import (
	"container/list"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"sync"
	"time"
)

const (
	// DefaultCacheTTL is how long a verified password is trusted without
	// asking the backend again; also how long a changed or deleted password
	// may keep working.
	DefaultCacheTTL = 5 * time.Minute
	// DefaultCacheSize bounds the cache: one entry per user.
	DefaultCacheSize = 4096
)

// CredentialCache remembers successful logins so that repeated token
// requests do not pay bcrypt (or a Keystone round trip) each time. It wraps
// any Authenticator.
//
// It never stores a password: an entry holds an HMAC-SHA256 of the user and
// password under a key drawn at process start, compared in constant time.
// Each entry has its own expiry and the least recently used entry goes when
// the cache is full. Only successes are cached.
type CredentialCache struct {
	next Authenticator
	ttl  time.Duration
	size int
	key  [32]byte
	now  func() time.Time

	mu      sync.Mutex
	lru     *list.List // of *cacheEntry, most recent first
	entries map[string]*list.Element
}

type cacheEntry struct {
	user    string
	mac     [sha256.Size]byte
	id      Identity
	expires time.Time
}

// NewCredentialCache wraps next with a cache of at most size entries.
func NewCredentialCache(next Authenticator, ttl time.Duration, size int) *CredentialCache {
	c := &CredentialCache{
		next:    next,
		ttl:     ttl,
		size:    size,
		now:     time.Now,
		lru:     list.New(),
		entries: make(map[string]*list.Element),
	}
	rand.Read(c.key[:]) // never fails (crypto/rand panics rather)
	return c
}

func (c *CredentialCache) mac(cr Credentials) (sum [sha256.Size]byte) {
	h := hmac.New(sha256.New, c.key[:])
	h.Write([]byte(cr.User))
	h.Write([]byte{0})
	h.Write([]byte(cr.Password))
	h.Sum(sum[:0])
	return sum
}

// Authenticate answers from the cache when the same password was verified
// within the TTL, and asks the wrapped Authenticator otherwise.
func (c *CredentialCache) Authenticate(ctx context.Context, cr Credentials) (Identity, error) {
	mac := c.mac(cr)
	now := c.now()
	c.mu.Lock()
	if el, ok := c.entries[cr.User]; ok {
		e := el.Value.(*cacheEntry)
		switch {
		case now.After(e.expires):
			c.remove(el)
		case hmac.Equal(e.mac[:], mac[:]):
			c.lru.MoveToFront(el)
			id := e.id
			c.mu.Unlock()
			return id, nil
		}
	}
	c.mu.Unlock()

	id, err := c.next.Authenticate(ctx, cr)
	if err != nil {
		return id, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[cr.User]; ok {
		c.remove(el)
	}
	c.entries[cr.User] = c.lru.PushFront(&cacheEntry{user: cr.User, mac: mac, id: id, expires: now.Add(c.ttl)})
	for c.lru.Len() > c.size {
		c.remove(c.lru.Back())
	}
	return id, nil
}

func (c *CredentialCache) remove(el *list.Element) {
	delete(c.entries, el.Value.(*cacheEntry).user)
	c.lru.Remove(el)
}

// Len reports the number of cached entries.
func (c *CredentialCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}
