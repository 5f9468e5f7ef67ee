package gc

import (
	"errors"
	"io"
)

// limitedReader is io.LimitReader that fails instead of ending early, so
// a manifest cut at the limit is an error, not a short parse.
type limitedReader struct {
	r io.Reader
	n int64
}

var errTooLarge = errors.New("gc: manifest larger than 4 MiB")

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errTooLarge
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}
