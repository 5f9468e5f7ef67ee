package access

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseScopes(t *testing.T) {
	tests := []struct {
		name   string
		values []string
		want   []Access
	}{
		{"none", nil, []Access{}},
		{"empty values", []string{"", "", "   "}, []Access{}},
		{"one", []string{"repository:demo/x:pull"},
			[]Access{{"repository", "demo/x", []string{"pull"}}}},
		{"push", []string{"repository:demo/x:pull,push"},
			[]Access{{"repository", "demo/x", []string{"pull", "push"}}}},
		{"catalog", []string{"registry:catalog:*"},
			[]Access{{"registry", "catalog", []string{"*"}}}},
		{"host port colon", []string{"repository:localhost:5000/foo:pull"},
			[]Access{{"repository", "localhost:5000/foo", []string{"pull"}}}},
		{"conformance client, one value", []string{"repository:a:pull repository:b:pull,push"},
			[]Access{{"repository", "a", []string{"pull"}}, {"repository", "b", []string{"pull", "push"}}}},
		{"repeated parameter", []string{"repository:a:pull", "repository:b:push"},
			[]Access{{"repository", "a", []string{"pull"}}, {"repository", "b", []string{"push"}}}},
		{"many spaces", []string{"  repository:a:pull    repository:b:pull  "},
			[]Access{{"repository", "a", []string{"pull"}}, {"repository", "b", []string{"pull"}}}},
		{"merge keeps first order", []string{"repository:a:push repository:b:pull", "repository:a:pull,push,delete"},
			[]Access{{"repository", "a", []string{"push", "pull", "delete"}}, {"repository", "b", []string{"pull"}}}},
		{"repeated action", []string{"repository:a:pull,pull"},
			[]Access{{"repository", "a", []string{"pull"}}}},
		{"same name other type kept apart", []string{"repository:catalog:pull registry:catalog:*"},
			[]Access{{"repository", "catalog", []string{"pull"}}, {"registry", "catalog", []string{"*"}}}},
		{"unknown action parses (policy drops it)", []string{"repository:a:pull,frobnicate"},
			[]Access{{"repository", "a", []string{"pull", "frobnicate"}}}},
		{"uppercase name parses (policy drops it)", []string{"repository:User1/x:pull"},
			[]Access{{"repository", "User1/x", []string{"pull"}}}},
		{"docker mount from", []string{"repository:alice/app:pull,push repository:bob/x:pull"},
			[]Access{{"repository", "alice/app", []string{"pull", "push"}}, {"repository", "bob/x", []string{"pull"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseScopes(tt.values)
			if err != nil {
				t.Fatalf("ParseScopes(%q): %v", tt.values, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseScopes(%q) = %#v, want %#v", tt.values, got, tt.want)
			}
		})
	}
}

func TestParseScopesErrors(t *testing.T) {
	many := strings.Repeat("repository:a:pull ", MaxScopes+1)
	tests := []struct {
		name   string
		values []string
	}{
		{"no colon", []string{"repository"}},
		{"no actions part", []string{"repository:foo"}},
		{"empty actions", []string{"repository:foo:"}},
		{"empty action", []string{"repository:foo:pull,,push"}},
		{"trailing comma", []string{"repository:foo:pull,"}},
		{"empty name", []string{"repository::pull"}},
		{"empty type", []string{":foo:pull"}},
		{"uppercase type", []string{"Repository:foo:pull"}},
		{"type with dash", []string{"repo-sitory:foo:pull"}},
		{"two colons in name", []string{"repository:a:1/b:2/c:pull"}},
		{"tab", []string{"repository:foo:pull\trepository:bar:pull"}},
		{"newline in name", []string{"repository:fo\no:pull"}},
		{"non-ascii name", []string{"repository:fö/o:pull"}},
		{"del in name", []string{"repository:fo\x7fo:pull"}},
		{"bad action char", []string{"repository:foo:PULL"}},
		{"action with space-like", []string{"repository:foo:pu;ll"}},
		{"too many actions", []string{"repository:foo:a,b,c,d,e,f,g,h,i"}},
		{"long action", []string{"repository:foo:" + strings.Repeat("a", maxActionBytes+1)}},
		{"long name", []string{"repository:" + strings.Repeat("a", maxNameBytes+1) + ":pull"}},
		{"long scope", []string{"repository:" + strings.Repeat("a", 300) + ":" + strings.Repeat("pull,", 7) + strings.Repeat("x", 300)}},
		{"too many scopes", []string{many}},
		{"too many scopes over values", strings.Fields(many)},
		{"too many bytes", []string{strings.Repeat(" ", MaxScopeParamBytes+1)}},
		{"too many actions merged", []string{"repository:foo:a,b,c,d,e", "repository:foo:f,g,h,i"}},
		{"one bad among good", []string{"repository:a:pull", "repository:b:pull bogus"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseScopes(tt.values)
			if err == nil {
				t.Fatalf("ParseScopes(%q) = %v, want an error", tt.values, got)
			}
			if got != nil {
				t.Errorf("ParseScopes(%q) returned %v with its error", tt.values, got)
			}
		})
	}
}

// TestParseScopesErrorEcho checks that an error quotes only a short,
// escaped prefix of what the client sent.
func TestParseScopesErrorEcho(t *testing.T) {
	secretish := "repository:" + strings.Repeat("s", 200) + "\x1b[31m:pull"
	_, err := ParseScopes([]string{secretish})
	if err == nil {
		t.Fatal("want an error")
	}
	msg := err.Error()
	if len(msg) > 2*maxEchoBytes+100 {
		t.Errorf("error is %d bytes long: %s", len(msg), msg)
	}
	if strings.ContainsAny(msg, "\x1b\n") {
		t.Errorf("error holds raw control characters: %q", msg)
	}
	_, err = ParseScopes([]string{"repository:a:pull\x00"})
	if err == nil || strings.Contains(err.Error(), "\x00") {
		t.Errorf("error %q should escape NUL", err)
	}
}

func TestAccessString(t *testing.T) {
	as := []Access{
		{"repository", "demo/x", []string{"pull", "push"}},
		{"registry", "catalog", []string{"*"}},
	}
	if got, want := as[0].String(), "repository:demo/x:pull,push"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got, want := FormatScopes(as), "repository:demo/x:pull,push registry:catalog:*"; got != want {
		t.Errorf("FormatScopes() = %q, want %q", got, want)
	}
	if got := FormatScopes(nil); got != "" {
		t.Errorf("FormatScopes(nil) = %q, want empty", got)
	}
}

func FuzzParseScopes(f *testing.F) {
	// What real clients send (FACTS §2) and a few near misses.
	for _, s := range []string{
		"repository:demo/x:pull",
		"repository:demo/x:pull,push",
		"repository:a:pull repository:b:pull,push",
		"repository:localhost:5000/foo:pull",
		"registry:catalog:*",
		"repository:alice/app:pull,push repository:bob/x:pull",
		"repository:samalba/my-app:pull,push,delete",
		"repository:foo::pull",
		"  repository:a:pull   ",
		"repository:a:",
		"::",
	} {
		f.Add(s, "")
		f.Add(s, "repository:other/x:pull")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		got, err := ParseScopes([]string{a, b})
		if err != nil {
			if got != nil {
				t.Fatalf("result %v returned with error %v", got, err)
			}
			return
		}
		if len(got) > MaxScopes {
			t.Fatalf("%d scopes, more than MaxScopes", len(got))
		}
		seen := map[string]bool{}
		for _, ac := range got {
			key := ac.Type + ":" + ac.Name
			if seen[key] {
				t.Fatalf("%s not merged", key)
			}
			seen[key] = true
			if len(ac.Actions) == 0 {
				t.Fatalf("%s has no actions", key)
			}
		}
		// What we format parses back to the same thing, unless merging
		// made one scope longer than a client may send.
		for _, ac := range got {
			if len(ac.String()) > MaxScopeBytes {
				return
			}
		}
		again, err := ParseScopes([]string{FormatScopes(got)})
		if err != nil {
			t.Fatalf("re-parse of %q: %v", FormatScopes(got), err)
		}
		if !reflect.DeepEqual(again, got) {
			t.Fatalf("re-parse gave %v, want %v", again, got)
		}
	})
}
