package config

import (
	"os"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"stx-registry/shared/testrig"
)

// TestManPageKeywords keeps stx-token-server.conf(5) and the parser in step.
func TestManPageKeywords(t *testing.T) {
	testrig.CheckManPage(t, "../../man/stx-token-server.conf.5", Keywords())
}

// TestKeystoneTimeoutDocumented reads keystone_timeout's bounds from the code
// and from every place the documentation states them: they must agree.
func TestKeystoneTimeoutDocumented(t *testing.T) {
	secs := func(d time.Duration) string { return strconv.Itoa(int(d / time.Second)) }
	want := []string{secs(MinKeystoneTimeout), secs(MaxKeystoneTimeout), secs(DefaultKeystoneTimeout)}
	docs := []struct {
		path string
		re   *regexp.Regexp // groups: min, max, default
	}{
		// "`keystone_timeout`, 1–8 s, default 5 s" and
		// "`keystone_timeout`\n  (1–8 s, default 5 s)"
		{"../../SECURITY.md", regexp.MustCompile("`keystone_timeout`[,\\s(]+(\\d+)–(\\d+) s, default (\\d+) s")},
		// ".It Cm keystone_timeout Ar duration ... from 1s to 8s ... Default .Ql 5s"
		{"../../man/stx-token-server.conf.5", regexp.MustCompile(`(?s)\.It Cm keystone_timeout Ar duration\n.{0,200}?from (\d+)s to (\d+)s;.{0,100}?Default\n\.Ql (\d+)s`)},
	}
	for _, d := range docs {
		b, err := os.ReadFile(d.path)
		if err != nil {
			t.Fatal(err)
		}
		found := d.re.FindAllStringSubmatch(string(b), -1)
		if len(found) == 0 {
			t.Errorf("%s: keystone_timeout's bounds not found (want %q)", d.path, d.re)
		}
		for _, m := range found {
			if got := m[1:]; !slices.Equal(got, want) {
				t.Errorf("%s: keystone_timeout min, max, default %v; the code says %v", d.path, got, want)
			}
		}
	}
	// The section 8 page states the maximum once more, in words.
	b, err := os.ReadFile("../../man/stx-token-server.8")
	if err != nil {
		t.Fatal(err)
	}
	if m := regexp.MustCompile(`\.Cm keystone_timeout\nis at most (\d+) seconds`).FindStringSubmatch(string(b)); m == nil || m[1] != want[1] {
		t.Errorf("stx-token-server.8: keystone_timeout's maximum %v, want %s", m, want[1])
	}
}
