package serve

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"stx-registry/shared/tlsconf"
	"stx-registry/shared/tlsconf/tlstest"
)

// testTimeouts are short so that the tests run in about a second.
var testTimeouts = Timeouts{
	ReadHeader: 2 * time.Second,
	Read:       400 * time.Millisecond,
	Write:      400 * time.Millisecond,
	Idle:       2 * time.Second,
	Drain:      2 * time.Second,
}

type server struct {
	addr   string       // host:port actually bound
	cancel func()       // starts the graceful shutdown
	done   chan error   // Run's result
	client *http.Client // trusts the server; HTTP/2 if offered
	http1  *http.Client // trusts the server; HTTP/1.1 only
	certs  certFiles
}

type certFiles struct{ cert, key, ca string }

// start runs Run on 127.0.0.1:0 and waits until it listens.
func start(t *testing.T, h http.Handler, o Options) *server {
	t.Helper()
	ca := tlstest.NewCA(t)
	var c certFiles
	c.cert, c.key, c.ca = ca.Files(t, t.TempDir())
	reloader, err := tlsconf.New(c.cert, c.key, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	listening := make(chan string, 1)
	o.Addr = netip.MustParseAddrPort("127.0.0.1:0")
	o.Handler = h
	o.TLS = reloader
	o.Logger = slog.New(addrCatcher{listening})
	if o.Timeouts == (Timeouts{}) {
		o.Timeouts = testTimeouts
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{cancel: cancel, done: make(chan error, 1), certs: c}
	go func() { s.done <- Run(ctx, o) }()
	select {
	case s.addr = <-listening:
	case err := <-s.done:
		t.Fatalf("Run: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("server did not start")
	}
	t.Cleanup(func() {
		cancel()
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			t.Error("server did not stop")
		}
	})
	s.client = newClient(t, c.ca, true)
	s.http1 = newClient(t, c.ca, false)
	return s
}

func newClient(t *testing.T, caFile string, h2 bool) *http.Client {
	t.Helper()
	cfg, err := tlsconf.ClientConfig(caFile)
	if err != nil {
		t.Fatal(err)
	}
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetHTTP2(h2)
	tr := &http.Transport{TLSClientConfig: cfg, Protocols: &p}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func (s *server) url() string { return "https://" + s.addr + "/" }

// addrCatcher passes on the address of the "listening" record.
type addrCatcher struct{ ch chan string }

func (h addrCatcher) Enabled(context.Context, slog.Level) bool { return true }
func (h addrCatcher) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h addrCatcher) WithGroup(string) slog.Handler            { return h }
func (h addrCatcher) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "listening" {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "addr" {
				h.ch <- a.Value.String()
			}
			return true
		})
	}
	return nil
}

var hello = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintf(w, "hello %s", r.Proto)
})

func TestProtocols(t *testing.T) {
	s := start(t, hello, Options{})
	tests := []struct {
		client *http.Client
		want   string
	}{
		{s.client, "hello HTTP/2.0"},
		{s.http1, "hello HTTP/1.1"},
	}
	for _, tt := range tests {
		resp, err := tt.client.Get(s.url())
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != tt.want {
			t.Errorf("got %q, want %q", body, tt.want)
		}
	}
}

func TestPlaintextRefused(t *testing.T) {
	called := make(chan bool, 1)
	s := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		called <- true
		io.WriteString(w, "served")
	}), Options{})

	conn, err := net.DialTimeout("tcp", s.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(conn, "GET / HTTP/1.1\r\nHost: registry.local\r\n\r\n")
	reply, _ := io.ReadAll(conn) // ends when the server closes
	if strings.Contains(string(reply), "served") {
		t.Errorf("plaintext request was served: %q", reply)
	}
	if len(reply) > 0 && !strings.HasPrefix(string(reply), "HTTP/1.0 400 ") {
		t.Errorf("unexpected plaintext reply %q", reply)
	}
	select {
	case <-called:
		t.Error("handler ran for a plaintext request")
	default:
	}
}

func TestMaxHeaderBytes(t *testing.T) {
	s := start(t, hello, Options{})
	req, _ := http.NewRequest("GET", s.url(), nil)
	req.Header.Set("X-Big", strings.Repeat("a", 2*MaxHeaderBytes))
	resp, err := s.http1.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("status %d, want 431", resp.StatusCode)
	}
}

// TestProgress runs uploads and downloads that take three times the read
// and write timeouts. Only a request the handler allowed (AllowProgress)
// has its deadlines renewed.
func TestProgress(t *testing.T) {
	const (
		chunks = 20
		every  = 60 * time.Millisecond
		chunk  = 1 << 10
	)
	idle := testTimeouts.Read
	tests := []struct {
		name     string
		upload   bool
		progress bool
		deny     bool // the handler does not call AllowProgress
		stallAt  int  // upload: stop sending after this many chunks, for 3*idle
		ok       bool
	}{
		{name: "slow upload", upload: true, progress: true, ok: true},
		{name: "slow upload without progress", upload: true},
		{name: "slow upload not allowed", upload: true, progress: true, deny: true},
		{name: "stalled upload", upload: true, progress: true, stallAt: 3},
		{name: "slow download", progress: true, ok: true},
		{name: "slow download without progress"},
		{name: "slow download not allowed", progress: true, deny: true},
	}
	for _, tt := range tests {
		for _, h2 := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/h2=%v", tt.name, h2), func(t *testing.T) {
				t.Parallel()
				type result struct {
					n   int64
					err error
				}
				got := make(chan result, 1)
				var h http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if !tt.deny {
						AllowProgress(r.Context())
					}
					if tt.upload {
						n, err := io.Copy(io.Discard, r.Body)
						got <- result{n, err}
						fmt.Fprint(w, n)
						return
					}
					for range chunks {
						if _, err := w.Write(make([]byte, chunk)); err != nil {
							return
						}
						http.NewResponseController(w).Flush()
						time.Sleep(every)
					}
				})
				if tt.progress {
					h = Progress(h, idle)
				}
				s := start(t, h, Options{})
				client := s.http1
				if h2 {
					client = s.client
				}

				if !tt.upload {
					resp, err := client.Get(s.url())
					var n int64
					if err == nil {
						n, err = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
					if ok := err == nil && n == chunks*chunk; ok != tt.ok {
						t.Errorf("download got %d bytes, error %v; want complete=%v", n, err, tt.ok)
					}
					return
				}

				pr, pw := io.Pipe()
				go func() {
					for i := range chunks {
						if i == tt.stallAt && tt.stallAt > 0 {
							time.Sleep(3 * idle)
						}
						if _, err := pw.Write(make([]byte, chunk)); err != nil {
							return
						}
						time.Sleep(every)
					}
					pw.Close()
				}()
				defer pw.Close()
				resp, err := client.Post(s.url(), "application/octet-stream", pr)
				if err == nil {
					resp.Body.Close()
				}
				select {
				case r := <-got:
					if ok := r.err == nil && r.n == chunks*chunk; ok != tt.ok {
						t.Errorf("handler read %d bytes, error %v; want complete=%v", r.n, r.err, tt.ok)
					}
				case <-time.After(10 * time.Second):
					t.Fatal("handler did not finish")
				}
				if tt.ok && (err != nil || resp.StatusCode != 200) {
					t.Errorf("upload: %v", err)
				}
			})
		}
	}
}

func TestProgressKeepsFlusherAndUnwrap(t *testing.T) {
	var inner http.ResponseWriter
	h := Progress(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := w.(http.Flusher); !ok {
			t.Error("wrapped writer is not a Flusher")
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok || u.Unwrap() != inner {
			t.Error("Unwrap does not return the server's writer")
		}
		if err := http.NewResponseController(w).SetReadDeadline(time.Now().Add(time.Minute)); err != nil {
			t.Errorf("ResponseController through the wrapper: %v", err)
		}
	}), time.Minute)
	s := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inner = w
		h.ServeHTTP(w, r)
	}), Options{})
	resp, err := s.http1.Get(s.url())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

func TestGracefulShutdown(t *testing.T) {
	started := make(chan bool)
	release := make(chan bool)
	s := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- true
		<-release
		io.WriteString(w, "finished")
	}), Options{})

	type reply struct {
		body string
		err  error
	}
	replied := make(chan reply, 1)
	go func() {
		resp, err := s.http1.Get(s.url())
		if err != nil {
			replied <- reply{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		replied <- reply{string(b), err}
	}()
	<-started
	s.cancel()
	select {
	case err := <-s.done:
		t.Fatalf("Run returned %v with a request in flight", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	if r := <-replied; r.err != nil || r.body != "finished" {
		t.Errorf("in-flight request got %q, %v", r.body, r.err)
	}
	if err := <-s.done; err != nil {
		t.Errorf("Run: %v", err)
	}
	s.done <- nil // for the cleanup
	if c, err := net.DialTimeout("tcp", s.addr, time.Second); err == nil {
		c.Close()
		t.Error("still accepting connections after shutdown")
	}
}

func TestDrainTimeout(t *testing.T) {
	started := make(chan bool)
	tm := testTimeouts
	tm.Drain = 300 * time.Millisecond
	tm.Write = 10 * time.Second
	s := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- true
		<-r.Context().Done() // never finishes on its own
	}), Options{Timeouts: tm})
	replied := make(chan error, 1)
	go func() {
		resp, err := s.http1.Get(s.url())
		if err == nil {
			resp.Body.Close()
		}
		replied <- err
	}()
	<-started
	began := time.Now()
	s.cancel()
	if err := <-s.done; err != nil {
		t.Errorf("Run: %v", err)
	}
	s.done <- nil
	if d := time.Since(began); d < tm.Drain || d > 5*time.Second {
		t.Errorf("shutdown took %v, want about %v", d, tm.Drain)
	}
	if err := <-replied; err == nil {
		t.Error("request cut by shutdown reported success")
	}
}

func TestListenFailure(t *testing.T) {
	busy, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	ca := tlstest.NewCA(t)
	certFile, keyFile, _ := ca.Files(t, t.TempDir())
	reloader, err := tlsconf.New(certFile, keyFile, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	o := Options{
		Addr:     busy.Addr().(*net.TCPAddr).AddrPort(),
		Handler:  hello,
		TLS:      reloader,
		Timeouts: testTimeouts,
		Logger:   slog.New(slog.DiscardHandler),
	}
	err = Run(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), busy.Addr().String()) {
		t.Errorf("got %v, want an error naming %s", err, busy.Addr())
	}
}

func TestOptionsChecked(t *testing.T) {
	good := Options{Addr: netip.MustParseAddrPort("127.0.0.1:1"), Handler: hello, TLS: &tlsconf.Reloader{}, Timeouts: testTimeouts}
	tests := []struct {
		name   string
		modify func(*Options)
		want   string
	}{
		{"no addr", func(o *Options) { o.Addr = netip.AddrPort{} }, "no listen address"},
		{"no handler", func(o *Options) { o.Handler = nil }, "no handler"},
		{"no tls", func(o *Options) { o.TLS = nil }, "plaintext is never served"},
		{"no drain", func(o *Options) { o.Timeouts.Drain = 0 }, "timeout Drain is 0s"},
		{"no read header", func(o *Options) { o.Timeouts.ReadHeader = -1 }, "timeout ReadHeader"},
	}
	for _, tt := range tests {
		o := good
		tt.modify(&o)
		if err := Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want %q", tt.name, err, tt.want)
		}
	}
}

func TestTimeoutsSet(t *testing.T) {
	for name, tm := range map[string]Timeouts{"APITimeouts": APITimeouts, "RegistryTimeouts": RegistryTimeouts} {
		if tm.ReadHeader <= 0 || tm.Read <= 0 || tm.Write <= 0 || tm.Idle <= 0 || tm.Drain <= 0 {
			t.Errorf("%s has an unset field: %+v", name, tm)
		}
	}
	want := Timeouts{ReadHeader: 10 * time.Second, Read: time.Minute, Write: time.Minute, Idle: 2 * time.Minute, Drain: 30 * time.Second}
	if RegistryTimeouts != want {
		t.Errorf("RegistryTimeouts = %+v, want %+v", RegistryTimeouts, want)
	}
}

func TestHangup(t *testing.T) {
	// Keep SIGHUP from killing the test binary whatever happens below.
	safety := make(chan os.Signal, 1)
	signal.Notify(safety, syscall.SIGHUP)
	defer signal.Stop(safety)

	hungUp := make(chan bool, 1)
	s := start(t, hello, Options{OnHangup: func() { hungUp <- true }})
	before := peerSerial(t, s)

	// Replace the certificate, then signal.
	ca := tlstest.NewCA(t)
	dir := t.TempDir()
	cert, key, caFile := ca.Files(t, dir)
	for _, f := range [][2]string{{cert, s.certs.cert}, {key, s.certs.key}} {
		data, err := os.ReadFile(f[0])
		if err != nil {
			t.Fatal(err)
		}
		tlstest.Write(t, f[1], data)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	select {
	case <-hungUp:
	case <-time.After(5 * time.Second):
		t.Fatal("OnHangup not called")
	}
	s.certs.ca = caFile
	if after := peerSerial(t, s); after == before {
		t.Error("certificate not reloaded on SIGHUP")
	}
}

func peerSerial(t *testing.T, s *server) string {
	t.Helper()
	cfg, err := tlsconf.ClientConfig(s.certs.ca)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", s.addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
}
