package config

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// testConf is what a daemon's configuration looks like to this package.
type testConf struct {
	listen   string
	issuer   string
	nets     []netip.Prefix
	users    []string
	debug    bool
	lifetime time.Duration
	workers  int
	cert     string
	format   string
}

func (c *testConf) keywords() []Keyword {
	return []Keyword{
		{Name: "listen", Set: String(&c.listen)},
		{Name: "issuer", Set: String(&c.issuer)},
		{Name: "management_network", Repeat: true, Set: Prefixes(&c.nets)},
		{Name: "user", Repeat: true, Set: Strings(&c.users)},
		{Name: "debug", Set: Bool(&c.debug)},
		{Name: "token_lifetime", Set: Duration(&c.lifetime, time.Minute, time.Hour)},
		{Name: "workers", Set: Int(&c.workers, 1, 64)},
		{Name: "tls_certificate", Set: Path(&c.cert)},
		{Name: "log_format", Set: OneOf(&c.format, "text", "json")},
	}
}

const goodConf = `# stx-token-server configuration
listen 192.168.204.2:9002
issuer	bird-token-server

  # indented comment
management_network 192.168.204.0/24
management_network fd00:204::/64
user admin
user   sysinv  
debug no
token_lifetime 5m
workers 4
tls_certificate /etc/ssl/private/registry-cert.crt
log_format json
`

func TestParseGood(t *testing.T) {
	var c testConf
	if err := Parse("token.conf", strings.NewReader(goodConf), c.keywords()); err != nil {
		t.Fatal(err)
	}
	want := testConf{
		listen: "192.168.204.2:9002",
		issuer: "bird-token-server",
		nets: []netip.Prefix{
			netip.MustParsePrefix("192.168.204.0/24"),
			netip.MustParsePrefix("fd00:204::/64"),
		},
		users:    []string{"admin", "sysinv"},
		lifetime: 5 * time.Minute,
		workers:  4,
		cert:     "/etc/ssl/private/registry-cert.crt",
		format:   "json",
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got %+v\nwant %+v", c, want)
	}
}

func TestParseEmptyAndCRLF(t *testing.T) {
	for _, in := range []string{"", "\n\n", "# only a comment", "listen 127.0.0.1:1\r\nissuer x\r\n"} {
		var c testConf
		if err := Parse("t.conf", strings.NewReader(in), c.keywords()); err != nil {
			t.Errorf("%q: %v", in, err)
		}
	}
	var c testConf
	_ = Parse("t.conf", strings.NewReader("issuer x\r\n"), c.keywords())
	if c.issuer != "x" {
		t.Errorf("CRLF: issuer = %q, want x", c.issuer)
	}
}

func TestParseErrors(t *testing.T) {
	long := "issuer " + strings.Repeat("a", MaxLineBytes)
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"unknown", "# c\n\nlsten 1.2.3.4:5\n", `token.conf:3: unknown keyword "lsten"`},
		{"case", "Listen 1.2.3.4:5\n", `token.conf:1: unknown keyword "Listen"`},
		{"long unknown", strings.Repeat("x", 100), `token.conf:1: unknown keyword "` + strings.Repeat("x", maxEcho) + `"...`},
		{"duplicate", "issuer a\nlisten x\n\nissuer b\n", `token.conf:4: duplicate keyword "issuer" (first on line 1)`},
		{"no value", "listen x\nissuer\n", `token.conf:2: keyword "issuer" needs a value`},
		{"blank value", "issuer \t \n", `token.conf:1: keyword "issuer" needs a value`},
		{"long line", "# ok\n" + long + "\n", `token.conf:2: line longer than 4096 bytes`},
		{"long comment", "#" + strings.Repeat("a", MaxLineBytes), `token.conf:1: line longer than 4096 bytes`},
		{"nul", "issuer a\x00b\n", `token.conf:1: line contains a NUL byte`},
		{"utf8", "issuer \xff\n", `token.conf:1: line is not valid UTF-8`},
		{"bad bool", "debug true\n", `token.conf:1: debug: "true" is not yes or no`},
		{"bad duration", "token_lifetime 5\n", `token.conf:1: token_lifetime: "5" is not a duration like 30s, 5m or 12h`},
		{"short duration", "token_lifetime 5s\n", `token.conf:1: token_lifetime: 5s is out of range, give 1m0s to 1h0m0s`},
		{"bad int", "workers four\n", `token.conf:1: workers: "four" is not a decimal integer`},
		{"big int", "workers 65\n", `token.conf:1: workers: 65 is out of range, give 1 to 64`},
		{"relative path", "tls_certificate certs/a.pem\n", `token.conf:1: tls_certificate: "certs/a.pem" is not an absolute path`},
		{"unclean path", "tls_certificate /etc//a/../b.pem\n", `token.conf:1: tls_certificate: "/etc//a/../b.pem" is not a clean path, write "/etc/b.pem"`},
		{"bad prefix", "management_network 192.168.204.1\n", `token.conf:1: management_network: "192.168.204.1" is not a network like 192.168.204.0/24`},
		{"host bits", "management_network 192.168.204.1/24\n", `token.conf:1: management_network: 192.168.204.1/24 has host bits set, write 192.168.204.0/24`},
		{"zone prefix", "management_network fe80::%eth0/64\n", `token.conf:1: management_network: "fe80::%eth0/64" is not a network like 192.168.204.0/24`},
		{"one of", "log_format xml\n", `token.conf:1: log_format: "xml" is not one of text, json`},
		{"control char", "issuer a\x01b\n", `token.conf:1: issuer: value contains a control character`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c testConf
			err := Parse("token.conf", strings.NewReader(tt.in), c.keywords())
			if err == nil || err.Error() != tt.want {
				t.Errorf("got error %v\nwant %s", err, tt.want)
			}
		})
	}
}

// TestParseAllErrors checks that one run reports every bad line, in file
// order, each with its file:line and its message as when it is alone.
func TestParseAllErrors(t *testing.T) {
	in := "lsten 1.2.3.4:5\n" +
		"issuer a\n" +
		"# comment\n" +
		"debug true\n" +
		"issuer b\n" +
		"workers\n" +
		"workers 65\n" +
		"log_format text\n"
	want := `token.conf:1: unknown keyword "lsten"` + "\n" +
		`token.conf:4: debug: "true" is not yes or no` + "\n" +
		`token.conf:5: duplicate keyword "issuer" (first on line 2)` + "\n" +
		`token.conf:6: keyword "workers" needs a value` + "\n" +
		`token.conf:7: workers: 65 is out of range, give 1 to 64`
	var c testConf
	err := Parse("token.conf", strings.NewReader(in), c.keywords())
	if err == nil || err.Error() != want {
		t.Fatalf("got error\n%v\nwant\n%s", err, want)
	}
	// The good lines around the bad ones still took effect.
	if c.issuer != "a" || c.format != "text" {
		t.Errorf("issuer = %q, log_format = %q: want the good lines applied", c.issuer, c.format)
	}
}

// TestParseErrorLimit checks that a file of garbage gives maxErrors errors
// and a last line saying where parsing stopped.
func TestParseErrorLimit(t *testing.T) {
	var c testConf
	err := Parse("junk.conf", strings.NewReader(strings.Repeat("junk\n", 1000)), c.keywords())
	if err == nil {
		t.Fatal("no error")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != maxErrors+1 {
		t.Fatalf("got %d error lines, want %d:\n%v", len(lines), maxErrors+1, err)
	}
	if want := fmt.Sprintf("config junk.conf: stopped at line %d after %d errors", maxErrors, maxErrors); lines[maxErrors] != want {
		t.Errorf("last line %q, want %q", lines[maxErrors], want)
	}
}

func TestParseSetErrorWrapped(t *testing.T) {
	sentinel := errors.New("listen: bad")
	kws := []Keyword{{Name: "listen", Set: func(string) error { return sentinel }}}
	err := Parse("t.conf", strings.NewReader("listen x"), kws)
	if !errors.Is(err, sentinel) {
		t.Errorf("error %v does not wrap the Set error", err)
	}
}

func TestParseBadKeywordTable(t *testing.T) {
	set := func(string) error { return nil }
	tests := []struct {
		name string
		kws  []Keyword
	}{
		{"upper", []Keyword{{Name: "Listen", Set: set}}},
		{"empty", []Keyword{{Name: "", Set: set}}},
		{"dash", []Keyword{{Name: "tls-key", Set: set}}},
		{"nil set", []Keyword{{Name: "listen"}}},
		{"twice", []Keyword{{Name: "listen", Set: set}, {Name: "listen", Set: set}}},
	}
	for _, tt := range tests {
		if err := Parse("t.conf", strings.NewReader(""), tt.kws); err == nil {
			t.Errorf("%s: no error", tt.name)
		}
	}
}

func TestParseTooLarge(t *testing.T) {
	big := strings.Repeat("# padding padding padding\n", MaxFileBytes/26+1)
	err := Parse("big.conf", strings.NewReader(big), nil)
	if err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("got %v, want a size error", err)
	}
}

func TestParseFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "token.conf")
	if err := os.WriteFile(good, []byte(goodConf), 0o600); err != nil {
		t.Fatal(err)
	}
	var c testConf
	if err := ParseFile(good, c.keywords()); err != nil {
		t.Fatal(err)
	}
	if c.issuer != "bird-token-server" {
		t.Errorf("issuer = %q", c.issuer)
	}

	bad := filepath.Join(dir, "bad.conf")
	if err := os.WriteFile(bad, []byte("issuer a\nfoo b\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	want := bad + `:2: unknown keyword "foo"`
	if err := ParseFile(bad, c.keywords()); err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}

	big := filepath.Join(dir, "big.conf")
	if err := os.WriteFile(big, make([]byte, MaxFileBytes+1), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{big, dir, filepath.Join(dir, "missing.conf")} {
		if err := ParseFile(p, c.keywords()); err == nil {
			t.Errorf("ParseFile(%s): no error", p)
		}
	}
}

func TestSettersDirect(t *testing.T) {
	var s string
	var ss []string
	var p string
	tests := []struct {
		name string
		set  func(string) error
		in   string
		ok   bool
	}{
		{"string empty", String(&s), "", false},
		{"string ok", String(&s), "a b", true},
		{"string tab", String(&s), "a\tb", false},
		{"string del", String(&s), "a\x7fb", false},
		{"strings empty", Strings(&ss), "", false},
		{"path root", Path(&p), "/", true},
		{"path trailing slash", Path(&p), "/var/lib/", false},
		{"path dot", Path(&p), "/var/./lib", false},
	}
	for _, tt := range tests {
		if err := tt.set(tt.in); (err == nil) != tt.ok {
			t.Errorf("%s: %q: error %v, want ok=%v", tt.name, tt.in, err, tt.ok)
		}
	}
}

// FuzzParse checks that Parse never panics, and that whatever it accepts
// came from lines within the bounds.
func FuzzParse(f *testing.F) {
	f.Add(goodConf)
	f.Add("listen [::1]:9001\nlisten 127.0.0.1:9001\n")
	f.Add("registry_root /var/lib/docker-distribution\nstorage_delete yes\n")
	f.Add("issuer\n")
	f.Add("\tuser\talice\r\n#\n")
	f.Add("user " + strings.Repeat("é", 3000))
	f.Add("issuer a\x00\n")
	f.Fuzz(func(t *testing.T, in string) {
		var c testConf
		err := Parse("fuzz.conf", strings.NewReader(in), c.keywords())
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.conf:") && !strings.HasPrefix(err.Error(), "config fuzz.conf:") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for _, u := range c.users {
			if u == "" || len(u) > MaxLineBytes || strings.ContainsAny(u, "\x00\n\r\t") {
				t.Fatalf("accepted bad user value %q", u)
			}
		}
	})
}
