package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Bounds on the harness itself, so that a hung daemon or client fails the
// test instead of hanging it.
const (
	// buildTimeout bounds building both binaries.
	buildTimeout = 5 * time.Minute
	// setupTimeout bounds demo-config.sh and each passwd run (bcrypt).
	setupTimeout = 60 * time.Second
	// healthWait bounds waiting for a daemon's /healthz to answer 200.
	healthWait = 20 * time.Second
	// healthPoll is the pause between /healthz attempts.
	healthPoll = 100 * time.Millisecond
	// stopWait bounds waiting for a daemon to exit after SIGTERM.
	stopWait = 15 * time.Second
	// httpTimeout bounds one raw HTTP exchange of a test.
	httpTimeout = 20 * time.Second
	// logTailBytes is how much of a daemon log is shown on failure.
	logTailBytes = 8 << 10
)

// binDir holds the two binaries built once by TestMain.
var binDir string

// moduleRoot is the stx-registry module, two levels above this package.
var moduleRoot string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	moduleRoot = root
	dir, err := os.MkdirTemp("", "stx-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	binDir = dir
	if err := buildBinaries(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	code := m.Run()
	stopSharedEnv()
	return code
}

// buildBinaries builds stx-registry and stx-token-server the way the
// Makefile does.
func buildBinaries() error {
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	for _, b := range []struct{ name, pkg string }{
		{"stx-registry", "stx-registry/registry"},
		{"stx-token-server", "stx-registry/token"},
	} {
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", filepath.Join(binDir, b.name), b.pkg)
		cmd.Dir = moduleRoot
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("building %s: %w\n%s", b.pkg, err, out)
		}
	}
	return nil
}

// needTool fails the test when a client program is not installed.
func needTool(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			t.Fatalf("%s is not installed: run make test-deps", n)
		}
	}
}

// Users created in every environment. "User1" is not a valid repository
// path component, "public" is the name of the public namespace, and "admin"
// is the admin_user demo-config.sh configures.
var testUsers = []string{"user1", "user2", "user10", "User1", "admin", "public"}

// env is one running pair of daemons with their files.
type env struct {
	dir          string // demo-config.sh output: ca.pem, certs.d, confs, logs
	registryAddr string // 127.0.0.1:PORT; also the token service name
	tokenAddr    string
	passwords    map[string]string // user → password
	client       *http.Client      // trusts dir/ca.pem only

	registry, token *daemon
}

// realm is the token endpoint, as the registry's challenge names it.
func (e *env) realm() string { return "https://" + e.tokenAddr + "/token/" }

// service is the audience both daemons agree on.
func (e *env) service() string { return e.registryAddr }

// certDir is the directory skopeo and podman take with --cert-dir.
func (e *env) certDir() string { return filepath.Join(e.dir, "certs.d") }

// caFile is the CA that signed both daemons' certificate.
func (e *env) caFile() string { return filepath.Join(e.dir, "ca.pem") }

// creds returns "user:password" for a client's --creds flags.
func (e *env) creds(user string) string { return user + ":" + e.passwords[user] }

var (
	sharedOnce sync.Once
	sharedE    *env
	sharedErr  error
)

// sharedEnv returns the package's environment, starting it on first use.
// The tests use distinct repositories, so they share one pair of daemons;
// TestMain stops it.
func sharedEnv(t testing.TB) *env {
	t.Helper()
	needTool(t, "openssl")
	sharedOnce.Do(func() { sharedE, sharedErr = startEnv() })
	if sharedErr != nil {
		t.Fatalf("starting the daemons: %v", sharedErr)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("token server log (tail):\n%s", sharedE.token.tail())
			t.Logf("registry log (tail):\n%s", sharedE.registry.tail())
		}
	})
	return sharedE
}

func stopSharedEnv() {
	if sharedE != nil {
		sharedE.stop()
		os.RemoveAll(sharedE.dir)
	}
}

// startEnv lays out a set-up with ops/demo-config.sh on two free loopback
// ports, adds the test users and policy keywords, and starts both daemons.
func startEnv() (_ *env, err error) {
	e, err := newEnv()
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			e.stop()
			os.RemoveAll(e.dir)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	for _, u := range testUsers {
		pw := randomHex(12)
		cmd := exec.CommandContext(ctx, filepath.Join(binDir, "stx-token-server"), "passwd", "-f", filepath.Join(e.dir, "users"), u)
		cmd.Stdin = strings.NewReader(pw + "\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("stx-token-server passwd %s: %w\n%s", u, err, out)
		}
		e.passwords[u] = pw
	}
	// JSON logs, so that the audit lines can be read back exactly. The
	// tests share one client address (127.0.0.1) and send wrong passwords
	// on purpose; the brute-force backoff's default (hold after 3 failures)
	// would turn a later test's expected 401 into a 429, so it is set to its
	// most lenient here. TestKeystone tests the backoff on its own servers.
	if err := appendConf(e.tokenConf(),
		"log_format json",
		"reserved_namespace platform",
		"public_repository library/shared",
		"backoff_free 100",
	); err != nil {
		return nil, err
	}
	if err := e.start(); err != nil {
		return nil, err
	}
	return e, nil
}

// newEnv lays out a set-up with ops/demo-config.sh in a new temporary
// directory, on two free loopback ports, and returns it without starting
// anything: the caller adapts the configuration files, then calls start.
// On error nothing is left behind.
func newEnv() (_ *env, err error) {
	dir, err := os.MkdirTemp("", "stx-e2e-")
	if err != nil {
		return nil, err
	}
	e := &env{dir: dir, passwords: map[string]string{}}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	if e.registryAddr, err = freeAddr(); err != nil {
		return nil, err
	}
	if e.tokenAddr, err = freeAddr(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", filepath.Join(moduleRoot, "ops", "demo-config.sh"), dir, binDir)
	cmd.Env = append(os.Environ(), "REGISTRY_ADDR="+e.registryAddr, "TOKEN_ADDR="+e.tokenAddr)
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ops/demo-config.sh: %w\n%s", err, out)
	}
	if e.client, err = newClient(e.caFile()); err != nil {
		return nil, err
	}
	return e, nil
}

// tokenConf is the token server's configuration file.
func (e *env) tokenConf() string { return filepath.Join(e.dir, "stx-token-server.conf") }

// start starts the token server and the registry and waits until both are
// healthy. On error the caller stops e.
func (e *env) start() (err error) {
	e.token, err = startDaemon(filepath.Join(binDir, "stx-token-server"), e.tokenConf(), filepath.Join(e.dir, "token.log"))
	if err != nil {
		return err
	}
	e.registry, err = startDaemon(filepath.Join(binDir, "stx-registry"), filepath.Join(e.dir, "stx-registry.conf"), filepath.Join(e.dir, "registry.log"))
	if err != nil {
		return err
	}
	for _, d := range []struct {
		name, addr string
		dm         *daemon
	}{{"stx-token-server", e.tokenAddr, e.token}, {"stx-registry", e.registryAddr, e.registry}} {
		if err := e.waitHealthy(d.addr, d.dm); err != nil {
			return fmt.Errorf("%s: %w\nlog:\n%s", d.name, err, d.dm.tail())
		}
	}
	return nil
}

func (e *env) stop() {
	for _, d := range []*daemon{e.registry, e.token} {
		if d != nil {
			d.stop()
		}
	}
}

// waitHealthy polls https://addr/healthz until it answers 200, the daemon
// exits, or healthWait passes.
func (e *env) waitHealthy(addr string, d *daemon) error {
	deadline := time.Now().Add(healthWait)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-d.done:
			return fmt.Errorf("exited before becoming healthy: %v", d.err)
		default:
		}
		status, err := e.healthz(addr)
		if err == nil && status == http.StatusOK {
			return nil
		}
		last = fmt.Errorf("status %d, %v", status, err)
		time.Sleep(healthPoll)
	}
	return fmt.Errorf("not healthy within %v: %v", healthWait, last)
}

// healthz returns the status of GET https://addr/healthz.
func (e *env) healthz(addr string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+"/healthz", nil)
	if err != nil {
		return 0, err
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// daemon is one started process whose standard error goes to a log file.
type daemon struct {
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has exited
	err     error         // Wait's result, valid after done
}

func startDaemon(bin, conf, logPath string) (*daemon, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-f", conf)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = dieWithTest()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	d := &daemon{cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		d.err = cmd.Wait()
		logf.Close()
		close(d.done)
	}()
	return d, nil
}

// stop sends SIGTERM to this process (by its PID) and waits, killing it
// after stopWait.
func (d *daemon) stop() {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(stopWait):
		_ = d.cmd.Process.Kill()
		<-d.done
	}
}

// running reports whether the process has not exited.
func (d *daemon) running() bool {
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

// log returns the whole log written so far.
func (d *daemon) log() []byte {
	b, _ := os.ReadFile(d.logPath)
	return b
}

// logSize is the current length of the log, a mark for logSince.
func (d *daemon) logSize() int64 {
	fi, err := os.Stat(d.logPath)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// logSince returns what was logged after mark.
func (d *daemon) logSince(mark int64) []byte {
	b := d.log()
	if mark > int64(len(b)) {
		return nil
	}
	return b[mark:]
}

func (d *daemon) tail() string {
	if d == nil {
		return ""
	}
	b := d.log()
	if len(b) > logTailBytes {
		b = b[len(b)-logTailBytes:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return string(b)
}

// freeAddr returns 127.0.0.1:PORT with a port the kernel just handed out.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func appendConf(path string, lines ...string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(strings.Join(lines, "\n") + "\n")
	return errors.Join(err, f.Close())
}

// newClient returns an HTTP client trusting only caFile, without
// redirects, so that every answer is seen as sent.
func newClient(caFile string) (*http.Client, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no certificate", caFile)
	}
	return &http.Client{
		Timeout: httpTimeout,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
			ForceAttemptHTTP2: true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// checkHealthy asserts both daemons still run and answer /healthz with 200.
func (e *env) checkHealthy(t *testing.T) {
	t.Helper()
	for _, d := range []struct {
		name, addr string
		dm         *daemon
	}{{"stx-token-server", e.tokenAddr, e.token}, {"stx-registry", e.registryAddr, e.registry}} {
		if !d.dm.running() {
			t.Fatalf("%s exited: %v", d.name, d.dm.err)
		}
		if status, err := e.healthz(d.addr); err != nil || status != http.StatusOK {
			t.Errorf("%s /healthz: status %d, err %v; want 200", d.name, status, err)
		}
	}
}

// dieWithTest makes a started daemon get SIGKILL if the test binary dies
// (a panic or go test's timeout), so that no daemon outlives the run.
func dieWithTest() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
