package tlsconf

import (
	"crypto/tls"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// statInterval is how often a handshake may stat the files to look for a
// new certificate. Handshakes in between cost one atomic load.
const statInterval = time.Second

// Reloader holds the server certificate and key, and replaces them when the
// files change. It is safe for concurrent use.
type Reloader struct {
	certFile, keyFile string
	logger            *slog.Logger

	current  atomic.Pointer[loaded] // read by every handshake
	lastStat atomic.Int64           // unix nanoseconds of the last change check

	mu     sync.Mutex // serializes loads
	failed stamp      // files as they were at the last failed load; guarded by mu
}

// loaded is a certificate together with the state of the files it came from.
type loaded struct {
	cert  *tls.Certificate
	files stamp
}

// stamp identifies a version of the two files by modification time and size.
type stamp struct {
	certModTime, certSize int64
	keyModTime, keySize   int64
}

// New loads and checks the certificate and key. logger receives reload
// results; nil means slog.Default().
func New(certFile, keyFile string, logger *slog.Logger) (*Reloader, error) {
	if logger == nil {
		logger = slog.Default()
	}
	r := &Reloader{certFile: certFile, keyFile: keyFile, logger: logger}
	l, err := r.load()
	if err != nil {
		return nil, err
	}
	r.current.Store(l)
	r.lastStat.Store(time.Now().UnixNano())
	return r, nil
}

// Reload reads both files again. On any error it keeps the current pair,
// logs the error and returns it.
func (r *Reloader) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reloadLocked()
}

// reloadLocked replaces the current pair. r.mu must be held.
func (r *Reloader) reloadLocked() error {
	l, err := r.load()
	if err != nil {
		r.failed = l.files
		r.logger.Error("tls certificate not reloaded, keeping the current one", "err", err)
		return err
	}
	r.current.Store(l)
	r.failed = stamp{}
	r.logger.Info("tls certificate loaded", "file", r.certFile,
		"subject", l.cert.Leaf.Subject.String(), "not_after", l.cert.Leaf.NotAfter)
	return nil
}

// load stats, then reads, the files. Statting first means a change made
// during the read is seen as a change at the next check. The returned
// loaded always carries the stamp, even with an error.
func (r *Reloader) load() (*loaded, error) {
	files, _ := r.stat() // a failed stat leaves a zero stamp; the read reports the error
	cert, err := loadPair(r.certFile, r.keyFile, time.Now())
	return &loaded{cert: cert, files: files}, err
}

func (r *Reloader) stat() (stamp, error) {
	c, err := os.Stat(r.certFile)
	if err != nil {
		return stamp{}, err
	}
	k, err := os.Stat(r.keyFile)
	if err != nil {
		return stamp{}, err
	}
	return stamp{
		certModTime: c.ModTime().UnixNano(), certSize: c.Size(),
		keyModTime: k.ModTime().UnixNano(), keySize: k.Size(),
	}, nil
}

// getCertificate is the tls.Config hook. At most once per statInterval one
// handshake checks the files and, if they changed, reloads them while the
// others carry on with the current pair.
func (r *Reloader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.reloadIfChanged()
	return r.current.Load().cert, nil
}

func (r *Reloader) reloadIfChanged() {
	now := time.Now().UnixNano()
	last := r.lastStat.Load()
	if now-last < int64(statInterval) || !r.lastStat.CompareAndSwap(last, now) {
		return
	}
	files, err := r.stat()
	if err != nil || files == r.current.Load().files {
		return // unchanged, or mid-replacement: keep serving the current pair
	}
	if !r.mu.TryLock() {
		return // a Reload is running; it will pick up the change
	}
	defer r.mu.Unlock()
	if files == r.failed || files == r.current.Load().files {
		return // these files already failed once and were logged, or were just loaded
	}
	_ = r.reloadLocked() // logged inside
}
