package authn

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"
)

// maxBackoffHeap is the documented bound on the backoff table's memory
// (SECURITY.md, "Bounds on input"): 40 MB at most, whatever the
// configuration; this test measures the defaults, about 20 MB.
const maxBackoffHeap = 40 << 20

// After a million failed logins with distinct user names, from addresses
// that each send as many as the spray threshold lets through, the table
// holds at most maxBackoffRecords records in at most maxBackoffHeap bytes,
// and the first users' records are all still there.
func TestBackoffMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("a million logins")
	}
	n := 1_000_000
	if raceEnabled {
		n = 200_000 // the race detector makes it ten times slower; the table is full long before
	}
	b, _, _, _ := newTestBackoff(defaultBackoff, nil)
	ctx := context.Background()
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	busy := 0
	for i := range n {
		a := i / DefaultSprayUsers
		ip := netip.AddrFrom4([4]byte{10, byte(a >> 16), byte(a >> 8), byte(a)})
		_, err := b.Authenticate(ctx, Credentials{User: fmt.Sprintf("made-up-user-name-%0200d", i), Password: "x", Client: ip})
		if errors.Is(err, ErrBusy) {
			busy++
		}
	}
	used := int64(heap()) - int64(before)
	t.Logf("%d logins: %d records, %d refused at the bound, heap %.1f MB (%.0f bytes a record)",
		n, b.Len(), busy, float64(used)/(1<<20), float64(used)/float64(b.Len()))
	if b.Len() > maxBackoffRecords || used > maxBackoffHeap {
		t.Fatalf("%d records, %d bytes: bounds %d and %d", b.Len(), used, maxBackoffRecords, maxBackoffHeap)
	}
	for i := range 100 {
		if _, ok := b.records[b.userKey(fmt.Sprintf("made-up-user-name-%0200d", i))]; !ok {
			t.Fatalf("user %d was evicted", i)
		}
	}
}

// The gate runs at most Concurrency checks, queues at most Queue more for
// at most Wait, and refuses the rest at once.
func TestGate(t *testing.T) {
	backend := &blockingAuth{
		fakeAuth: fakeAuth{users: map[string]string{"alice": "right"}},
		started:  make(chan struct{}, 10),
		release:  make(chan struct{}),
	}
	g := NewGate(backend, GateConfig{Concurrency: 2, Queue: 1, Wait: 200 * time.Millisecond})
	ctx := context.Background()
	errs := make(chan error, 3)
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := g.Authenticate(ctx, Credentials{User: "alice", Password: "right"})
			errs <- err
		}()
		<-backend.started
	}
	// The third waits for a slot, in vain; meanwhile a fourth finds the
	// queue full.
	third := make(chan error, 1)
	go func() {
		_, err := g.Authenticate(ctx, Credentials{User: "alice", Password: "right"})
		third <- err
	}()
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	if _, err := g.Authenticate(ctx, Credentials{User: "alice", Password: "right"}); !errors.Is(err, ErrBusy) || time.Since(start) > 100*time.Millisecond {
		t.Fatalf("fourth with the queue full: %v after %v, want ErrBusy at once", err, time.Since(start))
	}
	if err := <-third; !errors.Is(err, ErrBusy) {
		t.Fatalf("third after its wait: %v", err)
	}
	close(backend.release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := g.Authenticate(ctx, Credentials{User: "alice", Password: "right"}); err != nil {
		t.Fatal(err)
	}
}
