package authn

import (
	"context"
	"time"

	"stx-registry/token/access"
)

// Gate defaults.
const (
	// DefaultConcurrency is backend_concurrency: password checks (bcrypt
	// or Keystone logins) under way at once. bcrypt at cost 12 keeps a
	// core busy for about 250 ms, and Keystone under wsgiref answers one
	// login at a time anyway, so more slots only queue there; 8 lets the
	// first logins of several users of one node (which share its address)
	// run side by side with room for the other nodes.
	DefaultConcurrency = 8
	// DefaultQueue is backend_queue: password checks that may wait for a
	// slot; more are refused at once.
	DefaultQueue = 32
	// DefaultQueueWait is the longest a check waits for a slot when the
	// chain is built without one; the daemon derives it from its write
	// timeout and the backend's own timeout.
	DefaultQueueWait = 2 * time.Second
)

// GateConfig is the gate part of the configuration.
type GateConfig struct {
	Concurrency int           // backend_concurrency
	Queue       int           // backend_queue
	Wait        time.Duration // the longest wait for a slot, so that the answer still fits in the write timeout
}

// Gate bounds the expensive work behind the backoff: at most Concurrency
// password checks run at once and at most Queue more wait for a slot, each
// for at most Wait. Anything beyond is refused at once with ErrBusy, and so
// is a check whose wait runs out: the client gets 503 with Retry-After
// rather than an answer after its own timeout. Cached logins never get
// here, so they never wait behind password checks.
type Gate struct {
	next    Authenticator
	running chan struct{} // one token per check under way
	waiting chan struct{} // one token per check running or waiting
	wait    time.Duration
}

// NewGate wraps next; zero fields of cfg take their defaults.
func NewGate(next Authenticator, cfg GateConfig) *Gate {
	if cfg.Concurrency == 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.Queue == 0 {
		cfg.Queue = DefaultQueue
	}
	if cfg.Wait == 0 {
		cfg.Wait = DefaultQueueWait
	}
	return &Gate{
		next:    next,
		running: make(chan struct{}, cfg.Concurrency),
		waiting: make(chan struct{}, cfg.Concurrency+cfg.Queue),
		wait:    cfg.Wait,
	}
}

// Authenticate implements Authenticator.
func (g *Gate) Authenticate(ctx context.Context, cr Credentials) (access.Identity, error) {
	select {
	case g.waiting <- struct{}{}:
	default:
		return access.Identity{}, ErrBusy
	}
	defer func() { <-g.waiting }()
	select {
	case g.running <- struct{}{}:
	default:
		t := time.NewTimer(g.wait)
		defer t.Stop()
		select {
		case g.running <- struct{}{}:
		case <-t.C:
			return access.Identity{}, ErrBusy
		case <-ctx.Done():
			return access.Identity{}, ctx.Err()
		}
	}
	defer func() { <-g.running }()
	return g.next.Authenticate(ctx, cr)
}
