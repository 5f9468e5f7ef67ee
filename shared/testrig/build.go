package testrig

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// buildTimeout bounds building both daemons; a fresh machine downloads and
// compiles distribution once.
const buildTimeout = 10 * time.Minute

var (
	rootOnce sync.Once
	rootDir  string
	rootErr  error
)

// ModuleRoot is the directory of this module's go.mod, as go env GOMOD
// reports it from the current directory.
func ModuleRoot() (string, error) {
	rootOnce.Do(func() {
		out, err := exec.Command("go", "env", "GOMOD").Output()
		gomod := strings.TrimSpace(string(out))
		switch {
		case err != nil:
			rootErr = fmt.Errorf("testrig: go env GOMOD: %w", err)
		case gomod == "" || gomod == os.DevNull:
			rootErr = errors.New("testrig: not inside the stx-registry module: run from its checkout")
		default:
			rootDir = filepath.Dir(gomod)
		}
	})
	return rootDir, rootErr
}

// GoBuild builds pkg in dir into the binary out, the way the Makefile
// builds the daemons: CGO_ENABLED=0 go build -trimpath.
func GoBuild(ctx context.Context, dir, out, pkg string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return nil
}

// Binaries are the two daemons built from this checkout.
type Binaries struct {
	Dir         string // the temporary directory holding both
	Registry    string // Dir/stx-registry
	TokenServer string // Dir/stx-token-server
}

var (
	buildOnce sync.Once
	built     Binaries
	buildErr  error
)

// BuildDaemons builds stx-registry and stx-token-server into a new
// temporary directory, once per process: later calls return the first
// call's result. RemoveDaemons removes the directory.
func BuildDaemons() (Binaries, error) {
	buildOnce.Do(func() { built, buildErr = buildDaemons() })
	return built, buildErr
}

func buildDaemons() (_ Binaries, err error) {
	root, err := ModuleRoot()
	if err != nil {
		return Binaries{}, err
	}
	dir, err := os.MkdirTemp("", "stx-testrig-bin-")
	if err != nil {
		return Binaries{}, err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	b := Binaries{Dir: dir, Registry: filepath.Join(dir, "stx-registry"), TokenServer: filepath.Join(dir, "stx-token-server")}
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	if err := GoBuild(ctx, root, b.Registry, "./registry"); err != nil {
		return Binaries{}, err
	}
	if err := GoBuild(ctx, root, b.TokenServer, "./token"); err != nil {
		return Binaries{}, err
	}
	return b, nil
}

// RemoveDaemons removes what BuildDaemons built, if anything.
func RemoveDaemons() {
	if built.Dir != "" {
		os.RemoveAll(built.Dir)
	}
}
