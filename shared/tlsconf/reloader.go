package tlsconf

import (
	"crypto/tls"
	"log/slog"
	"time"

	"stx-registry/shared/files"
)

// Reloader holds the server certificate and key, and replaces them when the
// files change. It is safe for concurrent use.
type Reloader struct {
	pair *files.Watched[*tls.Certificate]
}

// New loads and checks the certificate and key. logger receives reload
// results; nil means slog.Default().
func New(certFile, keyFile string, logger *slog.Logger) (*Reloader, error) {
	if logger == nil {
		logger = slog.Default()
	}
	pair, err := files.New(files.Watch[*tls.Certificate]{
		Paths:    []string{certFile, keyFile},
		Interval: files.CheckInterval,
		Load: func() (*tls.Certificate, error) {
			return loadPair(certFile, keyFile, time.Now())
		},
		Loaded: func(c *tls.Certificate) {
			logger.Info("tls certificate loaded", "file", certFile,
				"subject", c.Leaf.Subject.String(), "not_after", c.Leaf.NotAfter)
		},
		Failed: func(err error) {
			logger.Error("tls certificate not reloaded, keeping the current one", "err", err)
		},
	})
	if err != nil {
		return nil, err
	}
	return &Reloader{pair: pair}, nil
}

// Reload reads both files again. On any error it keeps the current pair,
// logs the error and returns it.
func (r *Reloader) Reload() error { return r.pair.Reload() }

// getCertificate is the tls.Config hook. At most once per
// files.CheckInterval one handshake checks the files and, if they changed,
// reloads them while the others carry on with the current pair.
func (r *Reloader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.pair.Get(), nil
}
