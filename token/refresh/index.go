package refresh

// The in-memory index of the live entries. Every operation on it is O(1) or
// O(log n) in the number of entries, except encode, which compaction calls.

import (
	"bytes"
	"cmp"
	"container/heap"
	"crypto/sha256"
	"slices"
	"strings"
	"time"
)

// node is one live token. It sits in three structures: the map by hash,
// its user's chain and its user and client's chain (both oldest first),
// and the expiry heap.
type node struct {
	hash                          [sha256.Size]byte
	subject, uid, client, service string // interned: one copy per user, client and service
	admin                         bool
	created, expires, checked     int64
	seq                           uint64   // the order the index learned of it: the file's
	link                          [2]links // byUser, byClient
	heapIdx                       int
}

// The chains a node is linked into.
const (
	byUser = iota
	byClient
)

type links struct{ prev, next *node }

// chain is one user's, or one user and client's, live tokens in the order
// they were issued.
type chain struct {
	head, tail   *node
	n            int
	user, client string // the interned names
}

func (c *chain) push(n *node, k int) {
	n.link[k] = links{prev: c.tail}
	if c.tail != nil {
		c.tail.link[k].next = n
	} else {
		c.head = n
	}
	c.tail = n
	c.n++
}

func (c *chain) remove(n *node, k int) {
	l := n.link[k]
	if l.prev != nil {
		l.prev.link[k].next = l.next
	} else {
		c.head = l.next
	}
	if l.next != nil {
		l.next.link[k].prev = l.prev
	} else {
		c.tail = l.prev
	}
	n.link[k] = links{}
	c.n--
}

type clientKey struct{ user, client string }

// index holds the live entries of the file as read so far, and counts the
// file's records so that compaction knows how many are dead.
type index struct {
	entries  map[[sha256.Size]byte]*node
	users    map[string]*chain
	clients  map[clientKey]*chain
	expiry   expiryHeap
	services map[string]string // interned; a handful in practice
	lines    int               // records in the file after the header, good or bad
	seq      uint64            // the last node's seq
}

func newIndex() *index {
	return &index{
		entries:  map[[sha256.Size]byte]*node{},
		users:    map[string]*chain{},
		clients:  map[clientKey]*chain{},
		services: map[string]string{},
	}
}

// dead is the number of the file's records that a rewrite would drop.
func (x *index) dead() int { return x.lines - len(x.entries) }

// apply applies one record read from (or about to be written to) the file.
// An issue record of a token already expired at now is dead on arrival.
func (x *index) apply(r record, now int64) {
	x.lines++
	n := x.entries[r.hash]
	switch {
	case r.issue != nil:
		if n == nil && r.issue.Expires > now {
			x.insert(r.hash, r.issue)
		}
	case n == nil:
	case r.revoke:
		x.remove(n)
	default:
		n.checked = max(n.checked, r.checked)
	}
}

func (x *index) insert(h [sha256.Size]byte, l *refreshLine) {
	uc := x.users[l.Subject]
	if uc == nil {
		uc = &chain{user: l.Subject}
		x.users[l.Subject] = uc
	}
	k := clientKey{uc.user, l.Client}
	cc := x.clients[k]
	if cc == nil {
		cc = &chain{user: uc.user, client: l.Client}
		x.clients[k] = cc
	}
	svc, ok := x.services[l.Service]
	if !ok {
		svc = l.Service
		x.services[svc] = svc
	}
	x.seq++
	n := &node{
		hash: h, subject: uc.user, uid: l.UserID, client: cc.client, service: svc, admin: l.Admin,
		created: l.Created, expires: l.Expires, checked: l.Checked, seq: x.seq,
	}
	if uc.head != nil && uc.head.uid == n.uid {
		n.uid = uc.head.uid
	}
	x.entries[h] = n
	uc.push(n, byUser)
	cc.push(n, byClient)
	heap.Push(&x.expiry, n)
}

func (x *index) remove(n *node) {
	delete(x.entries, n.hash)
	uc := x.users[n.subject]
	uc.remove(n, byUser)
	if uc.n == 0 {
		delete(x.users, n.subject)
	}
	k := clientKey{n.subject, n.client}
	cc := x.clients[k]
	cc.remove(n, byClient)
	if cc.n == 0 {
		delete(x.clients, k)
	}
	heap.Remove(&x.expiry, n.heapIdx)
}

// purge drops the entries expired at now. They need no record: a reader
// of the file finds them expired too.
func (x *index) purge(now int64) {
	for len(x.expiry) > 0 && x.expiry[0].expires <= now {
		x.remove(x.expiry[0])
	}
}

// evictions returns the revoke records that make room for one more token
// of user from client within lim: the oldest of the client's tokens, then
// the oldest of the user's.
func (x *index) evictions(user, client string, lim Limits) []record {
	var drop []*node
	if cc := x.clients[clientKey{user, client}]; cc != nil {
		for n := cc.head; n != nil && cc.n-len(drop) >= lim.ClientMax; n = n.link[byClient].next {
			drop = append(drop, n)
		}
	}
	if uc := x.users[user]; uc != nil {
		for n := uc.head; n != nil && uc.n-len(drop) >= lim.UserMax; n = n.link[byUser].next {
			if !slices.Contains(drop, n) {
				drop = append(drop, n)
			}
		}
	}
	recs := make([]record, len(drop))
	for i, n := range drop {
		recs[i] = record{hash: n.hash, revoke: true}
	}
	return recs
}

// snapshot is the live entries, each user's oldest first, for a rewrite.
// It is all the rewrite does under the index lock: sorting and encoding
// take far longer and use only what a node never changes after it is
// inserted, besides the checked time copied here.
func (x *index) snapshot() []snapEntry {
	out := make([]snapEntry, 0, len(x.entries))
	for _, n := range x.entries {
		out = append(out, snapEntry{n, n.checked})
	}
	return out
}

// snapEntry is a live node and its checked time when the snapshot was taken.
type snapEntry struct {
	n       *node
	checked int64
}

// encodeFile is the whole file for a snapshot: the header, then one issue
// record each, users sorted by name and each user's oldest first, so that
// a rewrite keeps the order limits drop tokens in and is reproducible.
func encodeFile(snap []snapEntry) []byte {
	slices.SortFunc(snap, func(a, b snapEntry) int {
		if c := strings.Compare(a.n.subject, b.n.subject); c != 0 {
			return c
		}
		return cmp.Compare(a.n.seq, b.n.seq)
	})
	var buf bytes.Buffer
	buf.WriteString(refreshHeader + "\n")
	for _, e := range snap {
		l := e.n.line()
		l.Checked = e.checked
		buf.Write(record{issue: &l}.encode())
		buf.WriteByte('\n')
	}
	return buf.Bytes()
}

func (n *node) line() refreshLine {
	return refreshLine{
		Hash: b64.EncodeToString(n.hash[:]), Subject: n.subject, UserID: n.uid, Client: n.client,
		Admin: n.admin, Service: n.service, Created: n.created, Expires: n.expires, Checked: n.checked,
	}
}

func (n *node) entry() Entry {
	return Entry{
		ID:       b64.EncodeToString(n.hash[:])[:8],
		Subject:  n.subject,
		UserID:   n.uid,
		ClientID: n.client,
		Admin:    n.admin,
		Service:  n.service,
		Created:  time.Unix(n.created, 0),
		Expires:  time.Unix(n.expires, 0),
		Checked:  time.Unix(n.checked, 0),
	}
}

// expiryHeap is a min-heap of nodes by expiry (container/heap).
type expiryHeap []*node

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].expires < h[j].expires }
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx, h[j].heapIdx = i, j
}
func (h *expiryHeap) Push(x any) {
	n := x.(*node)
	n.heapIdx = len(*h)
	*h = append(*h, n)
}
func (h *expiryHeap) Pop() any {
	old := *h
	n := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return n
}
