// Package reuse owns the access-token reuse cache: a token signed for one
// request is handed out again, unchanged, to identical requests (same
// subject, audience, backend admin flag and exactly the same granted set
// and refusals)
// while it is younger than the reuse window and has at least MinRemaining
// of its lifetime left. That saves the ECDSA signature, the largest cost of
// a token request, for the clients that ask for the same token again and
// again.
//
// It is a pure cache: a miss only costs a signature. Nothing in it decides
// who gets what: the caller has authenticated the request and evaluated the
// policy before it asks, and the granted set is part of the key, so a reused
// token never carries more than a new one would. What invalidates entries
// (the generation bumped by Reset, the admin flag in the key) lives outside
// the evictable entries, so that a flood of distinct requests can only cost
// reuse, never safety.
package reuse

import (
	"cmp"
	"container/list"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"stx-registry/token/access"
	"stx-registry/token/issuer"
)

const (
	// DefaultPercent is token_reuse's default: a token is reused while it
	// is younger than a tenth of token_ttl (30 s of the default 5m).
	DefaultPercent = 10
	// MaxPercent bounds token_reuse: a reused token keeps at least half of
	// its lifetime.
	MaxPercent = 50
	// MinRemaining is the least lifetime a reused token may have left:
	// docker treats an expires_in under 60 s as 60 s.
	MinRemaining = 60 * time.Second
	// MaxEntries bounds the tokens kept: far more distinct (user, scope)
	// pairs than a StarlingX system pulls within a reuse window.
	MaxEntries = 8192
	// MaxBytes bounds the bytes kept, tokens and keys together; a token
	// for one repository is under 1 KiB, for the most scopes a request
	// may carry about 20 KiB.
	MaxBytes = 16 << 20
	// entryOverhead is what one entry costs besides its strings: the
	// entry, its list element and its map slot, roughly.
	entryOverhead = 256
)

// Window is the reuse window for percent (token_reuse) of ttl (token_ttl):
// how old a token may be and still be handed out again. 0 turns reuse off.
func Window(ttl time.Duration, percent int) time.Duration {
	return ttl * time.Duration(percent) / 100
}

// Key is what makes two requests identical: the token's subject and
// audience, the backend's admin flag, the granted set and the refusals
// (the token carries both: two requests granted the same but refused
// differently get different tokens). Granted and Refused are compared as
// sets: their order does not matter.
type Key struct {
	Subject  string
	Audience string
	Admin    bool
	Granted  []access.Access
	Refused  []access.Refusal
}

// String is the canonical form of k: lengths before the free-form fields,
// the granted accesses sorted by type and name (the policy grants each
// resource once, with its actions in a fixed order). Two keys are equal if
// and only if their canonical forms are.
func (k Key) String() string {
	granted := k.Granted
	if len(granted) > 1 {
		granted = slices.SortedFunc(slices.Values(granted), func(a, b access.Access) int {
			return cmp.Or(strings.Compare(a.Type, b.Type), strings.Compare(a.Name, b.Name))
		})
	}
	n := len(k.Subject) + len(k.Audience) + 16
	for _, a := range granted {
		n += len(a.Type) + len(a.Name) + 3
		for _, act := range a.Actions {
			n += len(act) + 1
		}
	}
	refused := k.Refused
	if len(refused) > 1 {
		refused = slices.SortedFunc(slices.Values(refused), func(a, b access.Refusal) int {
			return cmp.Or(strings.Compare(a.Type, b.Type), strings.Compare(a.Name, b.Name))
		})
	}
	for _, r := range refused {
		n += len(r.Type) + len(r.Name) + len(r.Reason) + 12
		for _, act := range r.Actions {
			n += len(act) + 1
		}
	}
	var b strings.Builder
	b.Grow(n)
	for _, s := range []string{k.Subject, k.Audience} {
		b.WriteString(strconv.Itoa(len(s)))
		b.WriteByte(':')
		b.WriteString(s)
	}
	if k.Admin {
		b.WriteString("admin")
	} else {
		b.WriteString("user")
	}
	// A granted type, name or action holds no space, colon or comma (the
	// policy grants only names in the repository grammar), so the
	// separators are unambiguous.
	for _, a := range granted {
		b.WriteByte(' ')
		b.WriteString(a.Type)
		b.WriteByte(':')
		b.WriteString(a.Name)
		for i, act := range a.Actions {
			if i == 0 {
				b.WriteByte(':')
			} else {
				b.WriteByte(',')
			}
			b.WriteString(act)
		}
	}
	// A refusal is marked with '!', which no type starts with; its type,
	// name and actions are as above, its free-form reason goes last with
	// its length before it.
	for _, r := range refused {
		b.WriteString(" !")
		b.WriteString(r.Type)
		b.WriteByte(':')
		b.WriteString(r.Name)
		b.WriteByte(':')
		b.WriteString(strings.Join(r.Actions, ","))
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(len(r.Reason)))
		b.WriteByte(':')
		b.WriteString(r.Reason)
	}
	return b.String()
}

// entry is one reusable token.
type entry struct {
	key     string // Key.String()
	subject string
	admin   bool
	tok     issuer.Token
	elem    *list.Element // in Cache.order
}

func (e *entry) bytes() int { return len(e.key) + len(e.tok.Raw) + len(e.tok.ID) + entryOverhead }

// Cache holds reusable tokens. The zero value and a nil *Cache reuse
// nothing. It is safe for concurrent use.
type Cache struct {
	window time.Duration

	mu      sync.Mutex
	gen     uint64            // bumped by Reset: tokens signed before it are not kept
	entries map[string]*entry // by key
	order   list.List         // of *entry, oldest first
	bytes   int
	// subjects holds, for each subject with entries, their admin flag
	// and number; it goes with the subject's last entry.
	subjects map[string]*subject
}

// subject is what the cache knows about one subject's entries.
type subject struct {
	admin bool
	n     int
}

// New returns a cache reusing tokens younger than window; 0 turns reuse
// off (New returns nil).
func New(window time.Duration) *Cache {
	if window <= 0 {
		return nil
	}
	return &Cache{window: window, entries: map[string]*entry{}, subjects: map[string]*subject{}}
}

// Window is how old a token may be and still be reused; 0 when off.
func (c *Cache) Window() time.Duration {
	if c == nil {
		return 0
	}
	return c.window
}

// Generation is the value a caller reads before it takes the signing key
// and signs, and gives back to Put: a Reset in between (a key reload) makes
// Put drop the token instead of keeping it past the reset.
func (c *Cache) Generation() uint64 {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// Get returns a token for k that is at most the window old and has at least
// MinRemaining left at now. A subject seen with the other admin flag loses
// all its tokens first.
func (c *Cache) Get(k Key, now time.Time) (issuer.Token, bool) {
	if c == nil {
		return issuer.Token{}, false
	}
	ks := k.String()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.checkAdmin(k.Subject, k.Admin)
	e, ok := c.entries[ks]
	if !ok {
		return issuer.Token{}, false
	}
	if !c.usable(e.tok, now) {
		c.remove(e)
		return issuer.Token{}, false
	}
	return e.tok, true
}

// usable reports whether tok may be handed out at now: issued at most the
// window ago (and not in the future: the clock may have been set back) and
// with at least MinRemaining left.
func (c *Cache) usable(tok issuer.Token, now time.Time) bool {
	age := now.Sub(tok.IssuedAt)
	return age >= 0 && age < c.window && tok.ExpiresAt.Sub(now) >= MinRemaining
}

// Put keeps tok, just signed for k, unless gen (from Generation, read
// before signing) is no longer current. It evicts what is out of the
// window, then the oldest entries, to stay within MaxEntries and MaxBytes.
func (c *Cache) Put(k Key, tok issuer.Token, gen uint64, now time.Time) {
	if c == nil {
		return
	}
	e := &entry{key: k.String(), subject: k.Subject, admin: k.Admin, tok: tok}
	if e.bytes() > MaxBytes {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	c.checkAdmin(k.Subject, k.Admin)
	if old, ok := c.entries[e.key]; ok {
		if !old.tok.IssuedAt.Before(tok.IssuedAt) {
			return // a concurrent miss kept a token as new
		}
		c.remove(old)
	}
	for f := c.order.Front(); f != nil && !c.usable(f.Value.(*entry).tok, now); f = c.order.Front() {
		c.remove(f.Value.(*entry))
	}
	for len(c.entries) >= MaxEntries || c.bytes+e.bytes() > MaxBytes {
		c.remove(c.order.Front().Value.(*entry))
	}
	e.elem = c.order.PushBack(e)
	c.entries[e.key] = e
	c.bytes += e.bytes()
	sub := c.subjects[e.subject]
	if sub == nil {
		sub = &subject{admin: e.admin}
		c.subjects[e.subject] = sub
	}
	sub.n++
}

// checkAdmin drops subject's tokens when they were kept under the other
// admin flag: the backend's answer changed. Called with c.mu held.
func (c *Cache) checkAdmin(subject string, admin bool) {
	if sub, ok := c.subjects[subject]; ok && sub.admin != admin {
		c.dropSubject(subject)
	}
}

// remove deletes e. Called with c.mu held.
func (c *Cache) remove(e *entry) {
	c.order.Remove(e.elem)
	delete(c.entries, e.key)
	c.bytes -= e.bytes()
	sub := c.subjects[e.subject]
	if sub.n--; sub.n == 0 {
		delete(c.subjects, e.subject)
	}
}

// DropSubject deletes every token of subject and says how many there were:
// their user was found gone, or their refresh tokens revoked.
func (c *Cache) DropSubject(subject string) int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dropSubject(subject)
}

func (c *Cache) dropSubject(subject string) int {
	var drop []*entry
	for _, e := range c.entries {
		if e.subject == subject {
			drop = append(drop, e)
		}
	}
	for _, e := range drop {
		c.remove(e)
	}
	return len(drop)
}

// Reset deletes every token and bumps the generation, so that tokens being
// signed meanwhile are not kept either; it says how many were deleted. The
// daemon calls it on SIGHUP: new signing keys, or a configuration reload.
func (c *Cache) Reset() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(c.entries)
	c.gen++
	c.entries = map[string]*entry{}
	c.subjects = map[string]*subject{}
	c.order.Init()
	c.bytes = 0
	return n
}

// Len is the number of tokens kept.
func (c *Cache) Len() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// Bytes is the memory accounted to the tokens kept.
func (c *Cache) Bytes() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes
}
