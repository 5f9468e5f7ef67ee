package testrig

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"stx-registry/shared/tlsconf"
)

const (
	// setupTimeout bounds demo-config.sh and each passwd run (bcrypt).
	setupTimeout = 60 * time.Second
	// clientTimeout bounds one exchange of Client's HTTP client.
	clientTimeout = 20 * time.Second
)

// Layout is a set-up of both daemons laid out by ops/demo-config.sh on two
// free loopback ports: a CA and the server certificate for 127.0.0.1, the
// token signing key and certificate, a users file, a storage root, a state
// directory and both configuration files. Nothing is started.
type Layout struct {
	Dir          string // demo-config.sh's output
	RegistryAddr string // 127.0.0.1:PORT; also the token service name
	TokenAddr    string
	Bin          Binaries
}

// NewLayout runs ops/demo-config.sh into dir (created if missing) on two
// free loopback ports, with the daemons BuildDaemons built.
func NewLayout(ctx context.Context, dir string) (*Layout, error) {
	root, err := ModuleRoot()
	if err != nil {
		return nil, err
	}
	bin, err := BuildDaemons()
	if err != nil {
		return nil, err
	}
	l := &Layout{Dir: dir, Bin: bin}
	if l.RegistryAddr, err = FreeAddr(); err != nil {
		return nil, err
	}
	if l.TokenAddr, err = FreeAddr(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", filepath.Join(root, "ops", "demo-config.sh"), dir, bin.Dir)
	cmd.Env = append(os.Environ(), "REGISTRY_ADDR="+l.RegistryAddr, "TOKEN_ADDR="+l.TokenAddr)
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ops/demo-config.sh: %w\n%s", err, out)
	}
	return l, nil
}

// Paths of the files demo-config.sh writes.
func (l *Layout) TokenConf() string    { return filepath.Join(l.Dir, "stx-token-server.conf") }
func (l *Layout) RegistryConf() string { return filepath.Join(l.Dir, "stx-registry.conf") }
func (l *Layout) Users() string        { return filepath.Join(l.Dir, "users") }
func (l *Layout) CAFile() string       { return filepath.Join(l.Dir, "ca.pem") }
func (l *Layout) CertDir() string      { return filepath.Join(l.Dir, "certs.d") } // skopeo's and podman's --cert-dir
func (l *Layout) ServerCert() string   { return filepath.Join(l.Dir, "server.pem") }
func (l *Layout) ServerKey() string    { return filepath.Join(l.Dir, "server.key") }
func (l *Layout) TokenCert() string    { return filepath.Join(l.Dir, "token.pem") }

// Passwd sets user's password in the users file with stx-token-server
// passwd, reading the password from standard input as an operator would.
func Passwd(ctx context.Context, tokenServer, usersFile, user, password string) error {
	ctx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, tokenServer, "passwd", "-f", usersFile, user)
	cmd.Stdin = strings.NewReader(password + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("stx-token-server passwd %s: %w\n%s", user, err, out)
	}
	return nil
}

// StartDaemon starts bin -f conf with its output in logPath.
func StartDaemon(bin, conf, logPath string) (*Proc, error) {
	return Start(Cmd{Argv: []string{bin, "-f", conf}, Log: logPath})
}

// WriteConf writes a configuration file from its lines, mode 0600.
func WriteConf(path string, lines ...string) error {
	return os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600)
}

// AppendConf appends lines to a configuration file.
func AppendConf(path string, lines ...string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(strings.Join(lines, "\n") + "\n")
	return errors.Join(err, f.Close())
}

// EditConf writes to dst the configuration file src without the lines
// whose keyword is in drop, followed by add. dst may be src.
func EditConf(src, dst string, drop []string, add ...string) error {
	raw, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	var kept []string
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		if kw, _, _ := strings.Cut(line, " "); !slices.Contains(drop, kw) {
			kept = append(kept, line)
		}
	}
	return WriteConf(dst, append(kept, add...)...)
}

// Client returns an HTTPS client trusting only caFile, without redirects,
// so that every answer is seen as sent.
func Client(caFile string) (*http.Client, error) {
	cfg, err := tlsconf.ClientConfig(caFile)
	if err != nil {
		return nil, err
	}
	return &http.Client{
		Timeout:       clientTimeout,
		Transport:     &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, nil
}

// RandomHex is n random bytes in hex: passwords, secrets, names.
func RandomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails
	return hex.EncodeToString(b)
}
