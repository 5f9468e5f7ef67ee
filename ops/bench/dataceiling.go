package main

// The data path's ceiling: the least a registry must do to take and give
// back one blob over TLS. It serves through the same shared/serve server,
// with the same shared/tlsconf configuration and certificate as
// stx-registry. A PUT writes the body to a new file on the same file
// system while hashing it with SHA-256, fsyncs it and renames it into
// place; a GET streams that file back. There is no authorization, no
// storage layout and no wrapper of any kind. It runs as its own process,
// like the registries, so that all three share the two cores with the
// client in the same way.

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"

	"stx-registry/shared/serve"
)

// dataCeilingPath is the one blob the data ceiling stores.
const dataCeilingPath = "/blob"

func dataCeilingMain(args []string) error {
	fs := flag.NewFlagSet("bench dataceiling", flag.ContinueOnError)
	cert := fs.String("cert", "", "TLS certificate `file`")
	key := fs.String("key", "", "TLS key `file`")
	addr := fs.String("addr", "", "listen `IP:port`")
	dir := fs.String("dir", "", "`directory` the blob is written to")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" {
		return errors.New("-dir is required")
	}
	// RegistryTimeouts without Progress: a transfer must finish within
	// Read or Write (a minute), which one blob at ceiling speed does.
	return serveCeiling(*addr, *cert, *key, dataCeiling{dir: *dir}, serve.RegistryTimeouts)
}

type dataCeiling struct{ dir string }

func (c dataCeiling) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != dataCeilingPath {
		http.NotFound(w, r)
		return
	}
	switch r.Method {
	case http.MethodPut:
		digest, err := c.put(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Docker-Content-Digest", digest)
		w.WriteHeader(http.StatusCreated)
	case http.MethodGet:
		f, err := os.Open(filepath.Join(c.dir, "blob"))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(fi.Size(), 10))
		io.Copy(w, f)
	default:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

// put stores body as the blob and returns its digest.
func (c dataCeiling) put(body io.Reader) (string, error) {
	f, err := os.CreateTemp(c.dir, ".upload-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name()) // after the rename, a no-op
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(f, h), body)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(c.dir, "blob"))
	}
	if err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}
