package testrig

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

const (
	// containerdWait bounds waiting for a private containerd to serve its
	// socket.
	containerdWait = 20 * time.Second
	// maxSocketPath is the longest Unix socket path Linux takes
	// (sizeof(sun_path) is 108, with the terminating NUL).
	maxSocketPath = 107
)

// Containerd is a private containerd daemon: its own root, state, sockets
// and configuration under Dir, nothing shared with the machine's own
// containerd.
type Containerd struct {
	Dir  string // root, state, config.toml, containerd.log
	Sock string // Dir/c.sock, the gRPC socket
	proc *Proc
}

// StartContainerd starts containerd with all its files under dir, an
// existing directory with a short path (a Unix socket path must stay under
// 108 bytes), and waits until its socket accepts connections. Only what a
// pull needs runs: the CRI plugin and the snapshotters that need kernel
// support or block devices are off; images unpack with native. The caller
// stops it with Stop.
func StartContainerd(ctx context.Context, dir string) (_ *Containerd, err error) {
	c := &Containerd{Dir: dir, Sock: filepath.Join(dir, "c.sock")}
	if len(c.Sock+".ttrpc") > maxSocketPath {
		return nil, fmt.Errorf("testrig: containerd socket %s: path longer than %d bytes", c.Sock, maxSocketPath)
	}
	conf := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.overlayfs",
  "io.containerd.snapshotter.v1.zfs",
]
[grpc]
  address = %q
[ttrpc]
  address = %q
[plugins."io.containerd.internal.v1.opt"]
  path = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), c.Sock, c.Sock+".ttrpc", filepath.Join(dir, "opt"))
	confPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	c.proc, err = Start(Cmd{Argv: []string{"containerd", "--config", confPath}, Log: filepath.Join(dir, "containerd.log")})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	if err := c.proc.WaitSocket(ctx, c.Sock, containerdWait); err != nil {
		return nil, fmt.Errorf("containerd: %w\n%s", err, c.proc.Tail())
	}
	return c, nil
}

// Stop stops containerd by its PID. Stopping a stopped one does nothing.
func (c *Containerd) Stop() { c.proc.Stop() }

// Proc is containerd's process.
func (c *Containerd) Proc() *Proc { return c.proc }
