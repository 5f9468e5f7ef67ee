package serve

import (
	"io"
	"log/slog"
	"net"
	"testing"
	"time"
)

// TestLimitConns: connections over the per-address bound are closed at
// once, and a closed connection gives its slot back.
func TestLimitConns(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := limitConns(raw, 10, 2, slog.New(slog.DiscardHandler))
	defer ln.Close()
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	closedByServer := func(c net.Conn) bool {
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, err := c.Read(make([]byte, 1))
		return err == io.EOF || (err != nil && !isTimeout(err))
	}
	dial()
	dial()
	first := <-accepted
	<-accepted
	third := dial()
	if !closedByServer(third) {
		t.Fatal("a third connection from one address was kept open")
	}
	first.Close() // gives its slot back
	fourth := dial()
	select {
	case <-accepted:
	case <-time.After(2 * time.Second):
		t.Fatal("a connection after one closed was not accepted")
	}
	if closedByServer(fourth) {
		t.Fatal("the connection after one closed was closed")
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
