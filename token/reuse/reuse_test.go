package reuse

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"stx-registry/token/access"
	"stx-registry/token/issuer"
)

// t0 is the fixed time the tests start at; tokens carry whole seconds.
var t0 = time.Unix(1_800_000_000, 0)

const ttl = 5 * time.Minute

func pull(repo string) access.Access {
	return access.Access{Type: "repository", Name: repo, Actions: []string{"pull"}}
}

// token is what Issuer.Sign would return at iat, with an ID naming it.
func token(id string, iat time.Time) issuer.Token {
	iat = iat.Truncate(time.Second)
	return issuer.Token{Raw: "raw-" + id, ID: id, IssuedAt: iat, ExpiresAt: iat.Add(ttl)}
}

func key(user string, scopes ...access.Access) Key {
	return Key{Subject: user, Audience: "registry:9001", Granted: scopes}
}

func TestWindow(t *testing.T) {
	for _, tt := range []struct {
		ttl     time.Duration
		percent int
		want    time.Duration
	}{
		{5 * time.Minute, DefaultPercent, 30 * time.Second},
		{5 * time.Minute, 0, 0},
		{time.Hour, MaxPercent, 30 * time.Minute},
		{time.Minute, 10, 6 * time.Second},
	} {
		if got := Window(tt.ttl, tt.percent); got != tt.want {
			t.Errorf("Window(%v, %d) = %v, want %v", tt.ttl, tt.percent, got, tt.want)
		}
	}
	if New(0) != nil {
		t.Error("New(0) is not nil: reuse 0 must be off")
	}
}

// TestKeyCanonical: the same set in any order is one key; anything else
// that differs is another.
func TestKeyCanonical(t *testing.T) {
	a, b := pull("u/a"), access.Access{Type: "repository", Name: "u/b", Actions: []string{"pull", "push"}}
	base := key("u", a, b)
	if got := key("u", b, a).String(); got != base.String() {
		t.Errorf("order matters: %q vs %q", got, base.String())
	}
	admin := base
	admin.Admin = true
	other := []Key{
		key("v", a, b),
		{Subject: "u", Audience: "other:9001", Granted: []access.Access{a, b}},
		admin,
		key("u", a),
		key("u", a, pull("u/b")),
		key("u"),
		// Lengths keep the free-form fields apart.
		{Subject: "u1:x", Audience: "y", Granted: []access.Access{a, b}},
		{Subject: "u", Audience: "1:xy", Granted: []access.Access{a, b}},
	}
	seen := map[string]int{base.String(): -1}
	for i, k := range other {
		s := k.String()
		if j, dup := seen[s]; dup {
			t.Errorf("keys %d and %d share the form %q", i, j, s)
		}
		seen[s] = i
	}
}

// TestReuse covers hits and misses, the window, the 60 s floor and a clock
// set back, on an injected clock.
func TestReuse(t *testing.T) {
	c := New(30 * time.Second)
	k := key("alice", pull("alice/app"))
	if _, ok := c.Get(k, t0); ok {
		t.Fatal("hit in an empty cache")
	}
	tok := token("t1", t0)
	c.Put(k, tok, c.Generation(), t0)
	for _, tt := range []struct {
		name  string
		k     Key
		at    time.Duration
		reuse bool
	}{
		{"same request", k, 0, true},
		{"same set, other order", key("alice", pull("alice/app")), 10 * time.Second, true},
		{"within the window", k, 29*time.Second + 999*time.Millisecond, true},
		{"other scope", key("alice", pull("alice/other")), time.Second, false},
		{"more scopes", key("alice", pull("alice/app"), pull("public/x")), time.Second, false},
		{"other user", key("bob", pull("alice/app")), time.Second, false},
		{"other audience", Key{Subject: "alice", Audience: "x:1", Granted: []access.Access{pull("alice/app")}}, time.Second, false},
		{"clock set back", k, -2 * time.Second, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := c.Get(tt.k, t0.Add(tt.at))
			if ok != tt.reuse || (ok && got != tok) {
				t.Fatalf("Get = %+v, %v; want reuse %v", got, ok, tt.reuse)
			}
		})
	}
	// The clock set back dropped the entry; a new one, then the window's end.
	c.Put(k, tok, c.Generation(), t0)
	if _, ok := c.Get(k, t0.Add(30*time.Second)); ok {
		t.Error("reused at the end of the window")
	}
	if c.Len() != 0 {
		t.Errorf("an unusable entry stayed: %d", c.Len())
	}

	// The floor: a window longer than the lifetime leaves at least 60 s.
	long := New(time.Hour)
	long.Put(k, tok, long.Generation(), t0)
	if _, ok := long.Get(k, t0.Add(ttl-MinRemaining)); !ok {
		t.Error("not reused with exactly 60 s left")
	}
	if _, ok := long.Get(k, t0.Add(ttl-MinRemaining+time.Millisecond)); ok {
		t.Error("reused with under 60 s left")
	}

	var off *Cache
	off.Put(k, tok, off.Generation(), t0)
	if _, ok := off.Get(k, t0); ok || off.Len() != 0 || off.Reset() != 0 || off.DropSubject("alice") != 0 || off.Window() != 0 {
		t.Error("a nil cache reuses")
	}
}

// TestPutKeepsNewest: of two tokens signed for one key the newer stays.
func TestPutKeepsNewest(t *testing.T) {
	c := New(30 * time.Second)
	k := key("alice", pull("alice/app"))
	older, newer := token("old", t0), token("new", t0.Add(2*time.Second))
	c.Put(k, newer, c.Generation(), t0.Add(2*time.Second))
	c.Put(k, older, c.Generation(), t0.Add(2*time.Second))
	if got, _ := c.Get(k, t0.Add(3*time.Second)); got.ID != "new" {
		t.Errorf("kept %s, want new", got.ID)
	}
	c.Put(k, token("newest", t0.Add(3*time.Second)), c.Generation(), t0.Add(3*time.Second))
	if got, _ := c.Get(k, t0.Add(3*time.Second)); got.ID != "newest" || c.Len() != 1 {
		t.Errorf("kept %s of %d, want newest of 1", got.ID, c.Len())
	}
}

// TestInvalidation: Reset (SIGHUP), a token signed across a Reset, an
// admin flip and DropSubject (revocation) each leave nothing to reuse.
func TestInvalidation(t *testing.T) {
	c := New(30 * time.Second)
	ka, kb := key("alice", pull("alice/app")), key("bob", pull("bob/app"))
	fill := func() {
		c.Put(ka, token("a", t0), c.Generation(), t0)
		c.Put(kb, token("b", t0), c.Generation(), t0)
	}
	fill()
	if n := c.Reset(); n != 2 || c.Len() != 0 || c.Bytes() != 0 {
		t.Fatalf("Reset dropped %d, left %d entries and %d bytes", n, c.Len(), c.Bytes())
	}
	if _, ok := c.Get(ka, t0); ok {
		t.Fatal("hit after Reset")
	}

	// Signed with the old key while the reload happened: not kept.
	gen := c.Generation()
	c.Reset()
	c.Put(ka, token("stale", t0), gen, t0)
	if c.Len() != 0 {
		t.Fatal("a token signed before a Reset was kept")
	}

	// The backend now says alice is an admin: her user tokens go, and
	// when it says she is not, her admin tokens go.
	fill()
	c.Put(key("alice", pull("alice/other")), token("a2", t0), c.Generation(), t0)
	adm := ka
	adm.Admin = true
	if _, ok := c.Get(adm, t0); ok {
		t.Fatal("admin request got a user's token")
	}
	if c.Len() != 1 {
		t.Fatalf("admin flip left %d entries, want bob's 1", c.Len())
	}
	c.Put(adm, token("a-admin", t0), c.Generation(), t0)
	if _, ok := c.Get(ka, t0); ok || c.Len() != 1 {
		t.Fatalf("flip back: hit %v, %d entries", ok, c.Len())
	}
	if _, ok := c.Get(kb, t0); !ok {
		t.Fatal("bob's token was dropped by alice's flip")
	}

	// Revocation of bob.
	if n := c.DropSubject("bob"); n != 1 {
		t.Fatalf("DropSubject dropped %d, want 1", n)
	}
	if _, ok := c.Get(kb, t0); ok {
		t.Fatal("hit after DropSubject")
	}
}

// TestBounded floods the cache with distinct scopes: entries and bytes stay
// within bounds, and the victims are only missed reuse.
func TestBounded(t *testing.T) {
	c := New(30 * time.Second)
	victim := key("victim", pull("victim/app"))
	c.Put(victim, token("v", t0), c.Generation(), t0)
	now := t0.Add(time.Second)
	for i := range MaxEntries + 1000 {
		k := key("mallory", pull(fmt.Sprintf("mallory/r%d", i)))
		c.Put(k, token(fmt.Sprint(i), now), c.Generation(), now)
		if c.Len() > MaxEntries || c.Bytes() > MaxBytes {
			t.Fatalf("after %d: %d entries, %d bytes", i, c.Len(), c.Bytes())
		}
	}
	if _, ok := c.Get(victim, now); ok {
		t.Error("the oldest entry survived a flood (eviction is oldest first)")
	}
	if _, ok := c.Get(key("mallory", pull(fmt.Sprintf("mallory/r%d", MaxEntries+999))), now); !ok {
		t.Error("the newest entry was evicted")
	}

	// Bytes: big tokens are bounded by MaxBytes long before MaxEntries.
	c.Reset()
	big := strings.Repeat("x", 20<<10)
	for i := range 2000 {
		tok := token(fmt.Sprint(i), now)
		tok.Raw = big
		c.Put(key("mallory", pull(fmt.Sprintf("m/r%d", i))), tok, c.Generation(), now)
		if c.Bytes() > MaxBytes {
			t.Fatalf("after %d: %d bytes", i, c.Bytes())
		}
	}
	if c.Len() >= 2000 || c.Len() < MaxBytes/(40<<10) {
		t.Errorf("%d big entries kept", c.Len())
	}
	huge := token("huge", now)
	huge.Raw = strings.Repeat("x", MaxBytes)
	c.Put(key("h"), huge, c.Generation(), now)
	if _, ok := c.Get(key("h"), now); ok {
		t.Error("an entry larger than MaxBytes was kept")
	}

	// Entries past the window go before anything else.
	c.Reset()
	c.Put(key("old", pull("old/a")), token("old", t0), c.Generation(), t0)
	later := t0.Add(time.Minute)
	c.Put(key("new", pull("new/a")), token("new", later), c.Generation(), later)
	if c.Len() != 1 {
		t.Errorf("an entry past the window stayed: %d entries", c.Len())
	}
}

// TestConcurrent runs Get, Put, Reset and DropSubject at once (go test
// -race).
func TestConcurrent(t *testing.T) {
	c := New(30 * time.Second)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				k := key(fmt.Sprint("u", i%5), pull(fmt.Sprintf("u/r%d", i%50)))
				now := t0.Add(time.Duration(i) * time.Millisecond)
				if _, ok := c.Get(k, now); !ok {
					gen := c.Generation()
					c.Put(k, token(fmt.Sprint(w, i), now), gen, now)
				}
				switch {
				case w == 0 && i%500 == 0:
					c.Reset()
				case w == 1 && i%300 == 0:
					c.DropSubject("u1")
				case w == 2 && i%200 == 0:
					a := k
					a.Admin = true
					c.Get(a, now)
				}
			}
		})
	}
	wg.Wait()
	if c.Len() > 250 {
		t.Errorf("%d entries for 250 keys", c.Len())
	}
}

// TestKeyRefusals: the refusals are part of the key, as a set, with the
// free-form reason kept apart by its length.
func TestKeyRefusals(t *testing.T) {
	a := pull("u/a")
	r1 := access.Refusal{Type: "repository", Name: "v/x", Actions: []string{"pull"}, Reason: "u may not pull from v/x"}
	r2 := access.Refusal{Type: "registry", Name: "catalog", Actions: []string{"*"}, Reason: "the catalog is for admins"}
	withRefused := func(rs ...access.Refusal) Key {
		k := key("u", a)
		k.Refused = rs
		return k
	}
	base := withRefused(r1, r2)
	if got := withRefused(r2, r1).String(); got != base.String() {
		t.Errorf("order matters: %q vs %q", got, base.String())
	}
	other := []Key{
		key("u", a),
		withRefused(r1),
		withRefused(r2),
		withRefused(r1, access.Refusal{Type: "registry", Name: "catalog", Actions: []string{"*"}, Reason: "other words"}),
		withRefused(access.Refusal{Type: "repository", Name: "v/x", Actions: []string{"pull", "push"}, Reason: r1.Reason}, r2),
		// A reason that looks like the rest of a key.
		withRefused(access.Refusal{Type: "registry", Name: "catalog", Actions: []string{"*"}, Reason: r2.Reason + " !repository:v/x:pull:23:" + r1.Reason}),
	}
	seen := map[string]int{base.String(): -1}
	for i, k := range other {
		s := k.String()
		if j, dup := seen[s]; dup {
			t.Errorf("keys %d and %d share the form %q", i, j, s)
		}
		seen[s] = i
	}
}
