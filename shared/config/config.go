// Package config reads the daemons' configuration files. The format is the
// one sshd_config(5) made familiar: one "keyword value" pair per line, the
// value being the rest of the line with surrounding blanks removed. Blank
// lines and lines whose first non-blank character is '#' are comments.
// Keywords are lowercase and matched exactly. Parsing is strict: an unknown
// keyword, a repeated keyword that may appear only once, a keyword without a
// value, an overlong line, a NUL byte or invalid UTF-8 is an error naming the
// file and line; all of a file's errors are reported together, and nothing
// is guessed or defaulted here. Each daemon lists
// its keywords with a setter from this package that validates the value.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"stx-registry/shared/files"
)

// MaxLineBytes bounds one line, not counting its newline. Real lines are
// well under 200 bytes; 4096 leaves room for long paths.
const MaxLineBytes = 4096

// MaxFileBytes bounds a whole configuration file. A real one is a few KiB.
const MaxFileBytes = 1 << 20

// maxEcho bounds how much of an unknown keyword or bad value is quoted back in
// an error, so that a mistaken line cannot flood the log.
const maxEcho = 64

// Keyword describes one keyword a daemon accepts.
type Keyword struct {
	// Name is the keyword as it must appear in the file: [a-z0-9_]+.
	Name string
	// Repeat allows the keyword more than once; otherwise a second
	// occurrence is an error.
	Repeat bool
	// Set receives each occurrence's value, in file order. An error it
	// returns is reported with the file name, line and keyword.
	Set func(value string) error
}

// ParseFile reads path, refusing anything that is not a regular file of at
// most MaxFileBytes (shared/files), and parses it with Parse, naming it path
// in errors.
func ParseFile(path string, kws []Keyword) error {
	data, err := files.Read(path, MaxFileBytes)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return Parse(path, bytes.NewReader(data), kws)
}

// maxErrors bounds how many errors one file reports, so that a file of
// garbage gives a screenful, not a line per line.
const maxErrors = 20

// Parse reads a configuration from r and calls the Set function of the
// matching keyword for every non-comment line. name identifies r in errors,
// which look like "token.conf:12: listen: <reason>". Parsing goes on after
// a bad line, so that all of a file's mistakes are reported at once, joined
// with errors.Join (one per line), up to maxErrors.
func Parse(name string, r io.Reader, kws []Keyword) error {
	byName, err := index(kws)
	if err != nil {
		return err
	}
	data, err := io.ReadAll(io.LimitReader(r, MaxFileBytes+1))
	if err != nil {
		return fmt.Errorf("config %s: %w", name, err)
	}
	if len(data) > MaxFileBytes {
		return fmt.Errorf("config %s: larger than %d bytes", name, MaxFileBytes)
	}
	var errs []error
	firstLine := make(map[string]int) // keyword -> line of first occurrence
	for i, line := range bytes.Split(data, []byte("\n")) {
		n := i + 1
		if err := parseLine(line, byName, firstLine, n); err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: %w", name, n, err))
		}
		if len(errs) == maxErrors {
			errs = append(errs, fmt.Errorf("config %s: stopped at line %d after %d errors", name, n, maxErrors))
			break
		}
	}
	return errors.Join(errs...)
}

// parseLine parses line n and calls its keyword's Set function. firstLine
// maps each keyword seen so far to the line it was first on.
func parseLine(line []byte, byName map[string]Keyword, firstLine map[string]int, n int) error {
	kw, value, err := splitLine(line)
	if err != nil {
		return err
	}
	if kw == "" {
		return nil
	}
	k, ok := byName[kw]
	if !ok {
		return fmt.Errorf("unknown keyword %s", quote(kw))
	}
	if value == "" {
		return fmt.Errorf("keyword %q needs a value", kw)
	}
	first, seen := firstLine[kw]
	if seen && !k.Repeat {
		return fmt.Errorf("duplicate keyword %q (first on line %d)", kw, first)
	}
	if !seen {
		firstLine[kw] = n
	}
	if err := k.Set(value); err != nil {
		return fmt.Errorf("%s: %w", kw, err)
	}
	return nil
}

// splitLine returns the keyword and value of one line, or "" for a blank or
// comment line.
func splitLine(line []byte) (kw, value string, err error) {
	if len(line) > MaxLineBytes {
		return "", "", fmt.Errorf("line longer than %d bytes", MaxLineBytes)
	}
	if bytes.IndexByte(line, 0) >= 0 {
		return "", "", errors.New("line contains a NUL byte")
	}
	if !utf8.Valid(line) {
		return "", "", errors.New("line is not valid UTF-8")
	}
	s := strings.TrimRight(string(line), "\r") // tolerate CRLF files
	s = strings.TrimLeft(s, " \t")
	if s == "" || s[0] == '#' {
		return "", "", nil
	}
	kw = s
	if i := strings.IndexAny(s, " \t"); i >= 0 {
		kw, value = s[:i], strings.Trim(s[i+1:], " \t")
	}
	return kw, value, nil
}

// index checks the keyword table and maps names to keywords. A bad table is
// a programming error, reported like any other.
func index(kws []Keyword) (map[string]Keyword, error) {
	m := make(map[string]Keyword, len(kws))
	for _, k := range kws {
		if !validName(k.Name) {
			return nil, fmt.Errorf("config: keyword %q: name must be [a-z0-9_]+", k.Name)
		}
		if k.Set == nil {
			return nil, fmt.Errorf("config: keyword %q has no Set function", k.Name)
		}
		if _, dup := m[k.Name]; dup {
			return nil, fmt.Errorf("config: keyword %q listed twice", k.Name)
		}
		m[k.Name] = k
	}
	return m, nil
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// quote returns s in Go quotes, cut to maxEcho bytes.
func quote(s string) string {
	if len(s) <= maxEcho {
		return fmt.Sprintf("%q", s)
	}
	cut := maxEcho
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%q...", s[:cut])
}
