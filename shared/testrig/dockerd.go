package testrig

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

const (
	// dockerdWait bounds waiting for a private dockerd to answer /_ping;
	// it takes one or two seconds on an idle machine.
	dockerdWait = 60 * time.Second
)

// dockerCertsDir is where dockerd looks for a registry's CA, as
// HOST:PORT/ca.crt; dockerd has no option to look elsewhere. A variable
// only so that the rig's own test can point it at a temporary directory.
var dockerCertsDir = "/etc/docker/certs.d"

// Dockerd is a private docker engine: dockerd with its data root, exec
// root, PID file, socket, daemon.json and identity key under Dir, on a
// private containerd of its own (Dir/ctrd), so that nothing is shared with
// the machine's own docker or containerd. It never listens on TCP, never
// touches iptables, creates no bridge and leaves IP forwarding alone. It
// runs in a mount namespace of its own (unshare --mount): dockerd
// bind-mounts its data root onto itself, and that mount must neither show
// in the machine's mount table nor outlive a dockerd killed with SIGKILL.
//
// The one file outside Dir is the registry CA that TrustCA places under
// /etc/docker/certs.d, because dockerd reads it from there only; Stop
// removes it and any directory TrustCA created, and nothing else there.
type Dockerd struct {
	Dir    string // everything of this engine
	Sock   string // Dir/d.sock, the API socket: DOCKER_HOST=unix://Sock
	Config string // Dir/config, the CLI's DOCKER_CONFIG (config.json)

	containerd *Containerd
	proc       *Proc
	placed     []string // files and directories TrustCA created, in order
}

// StartDockerd starts containerd and dockerd with all their files under
// dir, an existing directory with a short path (a Unix socket path must
// stay under 108 bytes), and waits until dockerd answers /_ping. It must
// run as root. The caller stops it with Stop.
func StartDockerd(ctx context.Context, dir string) (_ *Dockerd, err error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("testrig: dockerd runs as root only")
	}
	d := &Dockerd{Dir: dir, Sock: filepath.Join(dir, "d.sock"), Config: filepath.Join(dir, "config")}
	if len(d.Sock) > maxSocketPath {
		return nil, fmt.Errorf("testrig: dockerd socket %s: path longer than %d bytes", d.Sock, maxSocketPath)
	}
	defer func() {
		if err != nil {
			d.Stop()
		}
	}()
	if err := os.Mkdir(d.Config, 0o700); err != nil {
		return nil, err
	}
	ctrdDir := filepath.Join(dir, "ctrd")
	if err := os.Mkdir(ctrdDir, 0o700); err != nil {
		return nil, err
	}
	if d.containerd, err = StartContainerd(ctx, ctrdDir); err != nil {
		return nil, err
	}
	// Its own daemon.json, so that the machine's /etc/docker/daemon.json is
	// not read, and its identity key in dir instead of /etc/docker/key.json
	// (there is no command-line flag for that).
	daemonJSON := filepath.Join(dir, "daemon.json")
	if err := os.WriteFile(daemonJSON, fmt.Appendf(nil, "{\"deprecated-key-path\": %q}\n", filepath.Join(dir, "key.json")), 0o600); err != nil {
		return nil, err
	}
	d.proc, err = Start(Cmd{
		// unshare execs dockerd: the PID is dockerd's.
		Argv: []string{"unshare", "--mount", "--propagation", "private", "dockerd",
			"--config-file", daemonJSON,
			"--containerd", d.containerd.Sock,
			"--data-root", filepath.Join(dir, "data"),
			"--exec-root", filepath.Join(dir, "x"),
			"--pidfile", filepath.Join(dir, "pid"),
			"-H", "unix://" + d.Sock,
			"--iptables=false", "--ip6tables=false", "--ip-forward=false",
			"--bridge=none", "--storage-driver=vfs",
		},
		Log:   filepath.Join(dir, "dockerd.log"),
		Group: true, // Stop signals whatever dockerd started, too
	})
	if err != nil {
		return nil, err
	}
	if err := d.proc.WaitReady(ctx, d.apiClient(), "http://docker/_ping", OK, dockerdWait); err != nil {
		return nil, fmt.Errorf("dockerd: %w\n%s", err, d.proc.Tail())
	}
	return d, nil
}

// apiClient talks HTTP to dockerd's API socket.
func (d *Dockerd) apiClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var nd net.Dialer
			return nd.DialContext(ctx, "unix", d.Sock)
		},
	}}
}

// Command is the docker CLI talking to this engine only: DOCKER_HOST is
// its socket, DOCKER_CONFIG its own configuration directory, HOME is Dir,
// and nothing else of the caller's environment but PATH is passed on.
func (d *Dockerd) Command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + d.Dir,
		"DOCKER_HOST=unix://" + d.Sock,
		"DOCKER_CONFIG=" + d.Config,
	}
	cmd.Dir = d.Dir
	return cmd
}

// TrustCA places caFile as /etc/docker/certs.d/HOSTPORT/ca.crt, creating
// the directories that are missing. It refuses to replace a ca.crt that is
// already there: that one is not this engine's. Stop removes what TrustCA
// created.
func (d *Dockerd) TrustCA(hostPort, caFile string) error {
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return err
	}
	dir := filepath.Join(dockerCertsDir, hostPort)
	for _, p := range []string{filepath.Dir(dockerCertsDir), dockerCertsDir, dir} {
		switch err := os.Mkdir(p, 0o755); {
		case err == nil:
			d.placed = append(d.placed, p)
		case !errors.Is(err, fs.ErrExist):
			return err
		}
	}
	path := filepath.Join(dir, "ca.crt")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("testrig: %s exists and is not this test's: remove it if a killed test run left it", path)
	}
	if err != nil {
		return err
	}
	d.placed = append(d.placed, path)
	_, err = f.Write(ca)
	return errors.Join(err, f.Close())
}

// Stop stops dockerd, then its containerd, by their PIDs, and removes what
// TrustCA placed, newest first: a directory only if it is empty, so that an
// entry someone else added stays. Stopping twice does nothing more.
func (d *Dockerd) Stop() {
	d.proc.Stop()
	if d.containerd != nil {
		d.containerd.Stop()
	}
	for i := len(d.placed) - 1; i >= 0; i-- {
		_ = os.Remove(d.placed[i])
	}
	d.placed = nil
}

// Proc is dockerd's process.
func (d *Dockerd) Proc() *Proc { return d.proc }

// Tail is the end of dockerd's and its containerd's logs, for failure
// messages.
func (d *Dockerd) Tail() string {
	return fmt.Sprintf("--- dockerd.log (tail):\n%s\n--- containerd.log (tail):\n%s\n",
		TailFile(filepath.Join(d.Dir, "dockerd.log")), TailFile(filepath.Join(d.Dir, "ctrd", "containerd.log")))
}
