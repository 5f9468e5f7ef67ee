package testrig

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"time"
)

const (
	// StopWait is how long a process gets after SIGTERM before SIGKILL.
	StopWait = 15 * time.Second
	// pollInterval is the pause between readiness checks.
	pollInterval = 100 * time.Millisecond
	// logTailBytes is how much of a log Tail returns.
	logTailBytes = 8 << 10
)

// FreeAddr returns 127.0.0.1:PORT with a port the kernel just handed out.
// Another process could take it before the daemon listens; on a test
// machine nobody does.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// Cmd is a process to start.
type Cmd struct {
	Argv []string // program and arguments
	Env  []string // added to this process's environment
	Log  string   // standard output and error are appended here (mode 0600)
	// Group puts the process in its own process group, and Stop signals
	// the group: for a script whose children must stop with it.
	Group bool
}

// Proc is one started process.
type Proc struct {
	cmd   *exec.Cmd
	log   string
	group bool
	done  chan struct{} // closed when the process has exited
	err   error         // Wait's result, valid after done
}

// Start starts c. The process gets SIGKILL should the caller die first
// (a panic, go test's timeout), so that none outlives the run.
func Start(c Cmd) (*Proc, error) {
	f, err := os.OpenFile(c.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(c.Argv[0], c.Argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	if c.Env != nil {
		cmd.Env = append(os.Environ(), c.Env...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: c.Group}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting %s: %w", c.Argv[0], err)
	}
	p := &Proc{cmd: cmd, log: c.Log, group: c.Group, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// PID is the process's ID.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Signal sends sig to the process (by its PID).
func (p *Proc) Signal(sig syscall.Signal) error { return p.cmd.Process.Signal(sig) }

// Stop sends SIGTERM to the process (or its group) by its PID and waits,
// killing it after StopWait. Stopping a stopped process does nothing.
func (p *Proc) Stop() {
	if p == nil || !p.Running() {
		return
	}
	p.kill(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(StopWait):
		p.kill(syscall.SIGKILL)
		<-p.done
	}
}

func (p *Proc) kill(sig syscall.Signal) {
	if p.group {
		_ = syscall.Kill(-p.cmd.Process.Pid, sig)
		return
	}
	_ = p.cmd.Process.Signal(sig)
}

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Running reports whether the process has not exited.
func (p *Proc) Running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Err is how the process ended (exec.Cmd.Wait's result), once it has.
func (p *Proc) Err() error {
	if p.Running() {
		return nil
	}
	return p.err
}

// LogPath is the file the process's output goes to.
func (p *Proc) LogPath() string { return p.log }

// Log returns the whole log written so far.
func (p *Proc) Log() []byte {
	b, _ := os.ReadFile(p.log)
	return b
}

// LogSize is the current length of the log, a mark for LogSince.
func (p *Proc) LogSize() int64 {
	fi, err := os.Stat(p.log)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// LogSince returns what was logged after mark.
func (p *Proc) LogSince(mark int64) []byte {
	b := p.Log()
	if mark > int64(len(b)) {
		return nil
	}
	return b[mark:]
}

// Tail is the end of the log, from a line start, for failure messages.
// A nil Proc has an empty tail.
func (p *Proc) Tail() string {
	if p == nil {
		return ""
	}
	return TailFile(p.log)
}

// TailFile is the end of a log file, from a line start, for failure
// messages.
func TailFile(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > logTailBytes {
		b = b[len(b)-logTailBytes:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return string(b)
}

// WaitReady polls GET url with c until ready accepts the status, the
// process exits, ctx ends or wait passes.
func (p *Proc) WaitReady(ctx context.Context, c *http.Client, url string, ready func(status int) bool, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	var last error
	for {
		select {
		case <-p.done:
			return fmt.Errorf("exited before answering: %v", p.err)
		default:
		}
		status, err := Status(ctx, c, url)
		if err == nil && ready(status) {
			return nil
		}
		last = fmt.Errorf("status %d, %v", status, err)
		if time.Now().After(deadline) {
			return fmt.Errorf("GET %s: no ready answer within %v: %v", url, wait, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pollInterval):
		}
	}
}

// WaitSocket polls the Unix socket path until it accepts a connection, the
// process exits, ctx ends or wait passes.
func (p *Proc) WaitSocket(ctx context.Context, path string, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	var d net.Dialer
	for {
		select {
		case <-p.done:
			return fmt.Errorf("exited before serving %s: %v", path, p.err)
		default:
		}
		dctx, cancel := context.WithTimeout(ctx, statusTimeout)
		conn, err := d.DialContext(dctx, "unix", path)
		cancel()
		if err == nil {
			conn.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not serving within %v: %w", path, wait, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pollInterval):
		}
	}
}

// statusTimeout bounds one Status request.
const statusTimeout = 2 * time.Second

// Status returns the status of GET url, bounded by statusTimeout.
func Status(ctx context.Context, c *http.Client, url string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// OK accepts status 200 only, for WaitReady.
func OK(status int) bool { return status == http.StatusOK }

// Answered accepts any status, for WaitReady: a server that answers HTTP
// at all is up.
func Answered(int) bool { return true }
