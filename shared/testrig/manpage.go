package testrig

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
)

// ManPageKeywords returns the configuration keywords a section 5 man page
// documents: the first argument of every ".It Cm KEYWORD" line in its
// DESCRIPTION section, in order. The man pages are hand-written mdoc(7)
// and tag each keyword that way.
func ManPageKeywords(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var (
		names []string
		in    bool
	)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, ".Sh ") {
			in = line == ".Sh DESCRIPTION"
			continue
		}
		if !in || !strings.HasPrefix(line, ".It Cm ") {
			continue
		}
		if f := strings.Fields(line); len(f) >= 3 {
			names = append(names, f[2])
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%s: no \".It Cm KEYWORD\" line in DESCRIPTION", path)
	}
	return names, nil
}

// CheckManPage fails t for every keyword the daemon accepts that the man
// page at path does not document, and for every keyword it documents that
// the daemon rejects.
func CheckManPage(t testing.TB, path string, accepted []string) {
	t.Helper()
	documented, err := ManPageKeywords(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range accepted {
		if !slices.Contains(documented, k) {
			t.Errorf("keyword %q is accepted but %s does not document it", k, path)
		}
	}
	for _, k := range documented {
		if !slices.Contains(accepted, k) {
			t.Errorf("%s documents keyword %q, which the daemon rejects", path, k)
		}
	}
}
