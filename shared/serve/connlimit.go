package serve

import (
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Connection bounds of both daemons. A client without a token can hold a
// keep-alive connection until the idle timeout; these keep such
// connections from using up the process's file descriptors.
const (
	// MaxConns is the most connections a daemon keeps open at once, well
	// below the file descriptor limit (the systemd units in ops/ set 16384,
	// and Go raises its soft limit to the hard one).
	MaxConns = 4096
	// MaxConnsPerAddr is the most connections one client address keeps
	// open at once: generous, because every pod of a StarlingX node shares
	// the node's address (make bench opens 500 at once from one), yet a
	// single address cannot take MaxConns.
	MaxConnsPerAddr = 1024
)

// limitListener accepts at most max connections at once, and perAddr from
// one client address; a connection over either bound is closed at once,
// before its TLS handshake, and logged at most once a second.
type limitListener struct {
	net.Listener
	max, perAddr int
	logger       *slog.Logger

	mu        sync.Mutex
	open      int
	byAddr    map[netip.Addr]int
	lastLog   time.Time
	refusedBy int // refused since the last log line
}

func limitConns(ln net.Listener, max, perAddr int, logger *slog.Logger) net.Listener {
	return &limitListener{Listener: ln, max: max, perAddr: perAddr, logger: logger, byAddr: map[netip.Addr]int{}}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		addr := remoteAddr(c)
		l.mu.Lock()
		if l.open >= l.max || l.byAddr[addr] >= l.perAddr {
			l.refused(addr)
			l.mu.Unlock()
			c.Close()
			continue
		}
		l.open++
		l.byAddr[addr]++
		l.mu.Unlock()
		return &limitConn{Conn: c, l: l, addr: addr}, nil
	}
}

// refused logs a refused connection, at most once a second. Called with
// l.mu held.
func (l *limitListener) refused(addr netip.Addr) {
	l.refusedBy++
	if now := time.Now(); now.Sub(l.lastLog) >= time.Second {
		l.logger.Warn("connection refused: too many open", "client", addr.String(), "open", l.open,
			"open_from_client", l.byAddr[addr], "refused", l.refusedBy)
		l.lastLog, l.refusedBy = now, 0
	}
}

func (l *limitListener) release(addr netip.Addr) {
	l.mu.Lock()
	l.open--
	if l.byAddr[addr]--; l.byAddr[addr] <= 0 {
		delete(l.byAddr, addr)
	}
	l.mu.Unlock()
}

// remoteAddr is c's client address, IPv4 in its 4-byte form.
func remoteAddr(c net.Conn) netip.Addr {
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		if a, ok := netip.AddrFromSlice(ta.IP); ok {
			return a.Unmap()
		}
	}
	return netip.Addr{}
}

// limitConn gives its slot back once, on the first Close.
type limitConn struct {
	net.Conn
	l    *limitListener
	addr netip.Addr
	once sync.Once
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.addr) })
	return err
}
