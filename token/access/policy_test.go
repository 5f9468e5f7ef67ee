package access

import (
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// testPolicy is the daemon's default (public) plus what StarlingX needs.
func testPolicy(t testing.TB) *Policy {
	t.Helper()
	p, err := NewPolicy(PolicyConfig{
		AdminUsers:         []string{"admin", "sysinv"},
		PublicNamespaces:   []string{"public"},
		PublicRepositories: []string{"starlingx/stx-platform", "pause"},
		ReservedNamespaces: []string{"mtce", "docker.io"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func acc(typ, name string, actions ...string) Access {
	return Access{Type: typ, Name: name, Actions: actions}
}

func repo(name string, actions ...string) Access {
	return acc("repository", name, actions...)
}

// TestPublicRepositoryOwner: with public_repository library/busybox, the
// user called library must not push to or delete from the image every user
// pulls (issue: public repositories).
func TestPublicRepositoryOwner(t *testing.T) {
	p, err := NewPolicy(PolicyConfig{PublicRepositories: []string{"library/busybox"}})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := p.Grant(Identity{Name: "library"}, []Access{repo("library/busybox", "*"), repo("library/other", "push")})
	if want := []Access{repo("library/busybox", "pull")}; !reflect.DeepEqual(got, want) {
		t.Fatalf("user library got %v, want %v", got, want)
	}
}

func TestGrant(t *testing.T) {
	all := []string{"pull", "push", "delete"}
	user1 := Identity{Name: "user1"}
	tests := []struct {
		name string
		id   Identity
		req  []Access
		want []Access
	}{
		{"own namespace", user1,
			[]Access{repo("user1/x", "pull", "push")},
			[]Access{repo("user1/x", "pull", "push")}},
		{"own namespace delete", user1,
			[]Access{repo("user1/x", "delete")},
			[]Access{repo("user1/x", "delete")}},
		{"own namespace nested", user1,
			[]Access{repo("user1/a/b/c", "pull")},
			[]Access{repo("user1/a/b/c", "pull")}},
		{"own namespace star expanded", user1,
			[]Access{repo("user1/x", "*")},
			[]Access{repo("user1/x", all...)}},
		{"actions in fixed order", user1,
			[]Access{repo("user1/x", "delete", "push", "pull")},
			[]Access{repo("user1/x", all...)}},
		{"bare user name is not a namespace", user1,
			[]Access{repo("user1", "pull", "push")},
			[]Access{}},
		{"other user", user1,
			[]Access{repo("user2/x", "pull", "push", "delete")},
			[]Access{}},
		{"prefix is not ownership", user1,
			[]Access{repo("user10/x", "pull", "push")},
			[]Access{}},
		{"user10 vs user1", Identity{Name: "user10"},
			[]Access{repo("user1/x", "pull", "push")},
			[]Access{}},
		{"uppercase user owns nothing", Identity{Name: "User1"},
			[]Access{repo("User1/x", "pull", "push"), repo("user1/x", "pull", "push")},
			[]Access{}},
		{"Alice is not alice", Identity{Name: "Alice"},
			[]Access{repo("alice/x", "pull")},
			[]Access{}},
		{"user with invalid component name", Identity{Name: "a--"},
			[]Access{repo("a--/x", "pull")},
			[]Access{}},
		{"user with dots owns dotted namespace", Identity{Name: "john.doe"},
			[]Access{repo("john.doe/x", "push")},
			[]Access{repo("john.doe/x", "push")}},
		{"public pull ok push denied", user1,
			[]Access{repo("public/x", "pull", "push", "delete")},
			[]Access{repo("public/x", "pull")}},
		{"public star gives pull only", user1,
			[]Access{repo("public/x", "*")},
			[]Access{repo("public/x", "pull")}},
		{"public namespace itself is not a repository grant", user1,
			[]Access{repo("public", "pull")},
			[]Access{}},
		{"user named public owns nothing", Identity{Name: "public"},
			[]Access{repo("public/x", "pull", "push", "delete")},
			[]Access{repo("public/x", "pull")}},
		{"reserved namespace", Identity{Name: "mtce"},
			[]Access{repo("mtce/x", "pull", "push")},
			[]Access{}},
		{"reserved namespace with dots", Identity{Name: "docker.io"},
			[]Access{repo("docker.io/library/busybox", "pull", "push")},
			[]Access{}},
		{"public repository exact", user1,
			[]Access{repo("starlingx/stx-platform", "pull", "push"), repo("pause", "pull")},
			[]Access{repo("starlingx/stx-platform", "pull"), repo("pause", "pull")}},
		{"public repository's first component is reserved", Identity{Name: "starlingx"},
			[]Access{repo("starlingx/stx-platform", "pull", "push", "delete"), repo("starlingx/other", "push")},
			[]Access{repo("starlingx/stx-platform", "pull")}},
		{"one-component public repository reserves its name", Identity{Name: "pause"},
			[]Access{repo("pause/x", "push"), repo("pause", "pull", "push")},
			[]Access{repo("pause", "pull")}},
		{"public repository no prefix match", user1,
			[]Access{repo("starlingx/stx-platform2", "pull"), repo("starlingx/stx-platform/sub", "pull"), repo("starlingx/other", "pull")},
			[]Access{}},
		{"catalog denied to users", user1,
			[]Access{acc("registry", "catalog", "*")},
			[]Access{}},
		{"catalog for admin", Identity{Name: "admin"},
			[]Access{acc("registry", "catalog", "*")},
			[]Access{acc("registry", "catalog", "*")}},
		{"catalog needs star", Identity{Name: "admin"},
			[]Access{acc("registry", "catalog", "pull")},
			[]Access{}},
		{"registry other than catalog", Identity{Name: "admin"},
			[]Access{acc("registry", "other", "*")},
			[]Access{}},
		{"admin everything", Identity{Name: "sysinv"},
			[]Access{repo("user2/x", "*"), repo("public/x", "push"), repo("mtce/y", "delete"), repo("z", "pull")},
			[]Access{repo("user2/x", all...), repo("public/x", "push"), repo("mtce/y", "delete"), repo("z", "pull")}},
		{"admin by backend role", Identity{Name: "keystone-op", Admin: true},
			[]Access{repo("user2/x", "push"), acc("registry", "catalog", "*")},
			[]Access{repo("user2/x", "push"), acc("registry", "catalog", "*")}},
		{"admin names are exact", Identity{Name: "Admin"},
			[]Access{repo("user2/x", "pull"), acc("registry", "catalog", "*")},
			[]Access{}},
		{"admin still needs valid names", Identity{Name: "admin"},
			[]Access{repo("Bad/x", "pull"), repo("localhost:5000/foo", "pull"), repo("a//b", "pull")},
			[]Access{}},
		{"admin unknown actions dropped", Identity{Name: "admin"},
			[]Access{repo("x/y", "pull", "frobnicate")},
			[]Access{repo("x/y", "pull")}},
		{"mixed request partial grant", user1,
			[]Access{repo("user1/app", "pull", "push"), repo("user2/base", "pull"), repo("public/base", "pull"), acc("registry", "catalog", "*")},
			[]Access{repo("user1/app", "pull", "push"), repo("public/base", "pull")}},
		{"unknown actions dropped", user1,
			[]Access{repo("user1/x", "pull", "admin", "")},
			[]Access{repo("user1/x", "pull")}},
		{"only unknown actions omitted", user1,
			[]Access{repo("user1/x", "frobnicate")},
			[]Access{}},
		{"no actions omitted", user1,
			[]Access{repo("user1/x")},
			[]Access{}},
		{"other types dropped", user1,
			[]Access{acc("blob", "user1/x", "pull"), acc("Repository", "user1/x", "pull")},
			[]Access{}},
		{"invalid names dropped", user1,
			[]Access{
				repo("user1/X", "pull"), repo("user1/x/", "pull"), repo("user1//x", "pull"),
				repo("user1/-x", "pull"), repo("user1/x.", "pull"), repo("user1/x@sha256", "pull"),
				repo("user1/x:tag", "pull"), repo("user1/"+strings.Repeat("a", 250), "pull"),
			},
			[]Access{}},
		{"longest valid name", user1,
			[]Access{repo("user1/"+strings.Repeat("a", 249), "pull")},
			[]Access{repo("user1/"+strings.Repeat("a", 249), "pull")}},
		{"separators", user1,
			[]Access{repo("user1/a.b_c__d---e", "pull")},
			[]Access{repo("user1/a.b_c__d---e", "pull")}},
		{"host port form dropped", user1,
			[]Access{repo("localhost:5000/user1/x", "pull")},
			[]Access{}},
		{"anonymous gets nothing", Identity{},
			[]Access{repo("public/x", "pull")},
			[]Access{}},
		{"nothing requested", user1, nil, []Access{}},
	}
	p := testPolicy(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := p.Grant(tt.id, tt.req)
			if got == nil {
				t.Fatal("Grant returned nil, want a non-nil slice")
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Grant(%+v, %v) = %v, want %v", tt.id, tt.req, got, tt.want)
			}
		})
	}
}

func TestGrantDoesNotModifyRequest(t *testing.T) {
	req := []Access{repo("user1/x", "*", "push")}
	testPolicy(t).Grant(Identity{Name: "user1"}, req)
	if !reflect.DeepEqual(req, []Access{repo("user1/x", "*", "push")}) {
		t.Errorf("request changed to %v", req)
	}
}

func TestIsAdmin(t *testing.T) {
	p := testPolicy(t)
	tests := []struct {
		id   Identity
		want bool
	}{
		{Identity{Name: "admin"}, true},
		{Identity{Name: "sysinv"}, true},
		{Identity{Name: "x", Admin: true}, true},
		{Identity{Name: "user1"}, false},
		{Identity{Name: "ADMIN"}, false},
		{Identity{}, false},
	}
	for _, tt := range tests {
		if got := p.IsAdmin(tt.id); got != tt.want {
			t.Errorf("IsAdmin(%+v) = %v, want %v", tt.id, got, tt.want)
		}
	}
}

func TestNewPolicyErrors(t *testing.T) {
	tests := []struct {
		name    string
		c       PolicyConfig
		keyword string
	}{
		{"empty admin", PolicyConfig{AdminUsers: []string{""}}, "admin_user"},
		{"admin control char", PolicyConfig{AdminUsers: []string{"ad\nmin"}}, "admin_user"},
		{"admin too long", PolicyConfig{AdminUsers: []string{strings.Repeat("a", MaxUsernameBytes+1)}}, "admin_user"},
		{"uppercase public namespace", PolicyConfig{PublicNamespaces: []string{"Public"}}, "public_namespace"},
		{"nested public namespace", PolicyConfig{PublicNamespaces: []string{"a/b"}}, "public_namespace"},
		{"empty public namespace", PolicyConfig{PublicNamespaces: []string{""}}, "public_namespace"},
		{"public repository host port", PolicyConfig{PublicRepositories: []string{"registry.local:9001/x"}}, "public_repository"},
		{"public repository trailing slash", PolicyConfig{PublicRepositories: []string{"x/"}}, "public_repository"},
		{"public repository too long", PolicyConfig{PublicRepositories: []string{strings.Repeat("a", 256)}}, "public_repository"},
		{"reserved namespace bad", PolicyConfig{ReservedNamespaces: []string{"-x"}}, "reserved_namespace"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewPolicy(tt.c)
			if err == nil {
				t.Fatalf("NewPolicy(%+v) = %v, want an error", tt.c, p)
			}
			if !strings.HasPrefix(err.Error(), tt.keyword+" ") {
				t.Errorf("error %q does not start with the keyword %s", err, tt.keyword)
			}
		})
	}
	if _, err := NewPolicy(PolicyConfig{}); err != nil {
		t.Errorf("empty config: %v", err)
	}
	if _, err := NewPolicy(PolicyConfig{AdminUsers: []string{"Admin User"}, PublicRepositories: []string{"a/b.c/d-e"}}); err != nil {
		t.Errorf("valid config: %v", err)
	}
}

// FuzzGrant checks the invariants: no panic, nothing granted that was not
// requested, and a non-admin gets the catalog or another user's namespace
// never, and only pull outside its own namespace.
func FuzzGrant(f *testing.F) {
	p := testPolicy(f)
	for _, s := range []struct {
		user, scope string
	}{
		{"user1", "repository:user1/x:pull,push"},
		{"user1", "repository:user2/x:*"},
		{"user1", "repository:public/x:pull,push,delete registry:catalog:*"},
		{"public", "repository:public/x:*"},
		{"User1", "repository:User1/x:push"},
		{"admin", "registry:catalog:* repository:a/b:*"},
		{"mtce", "repository:mtce/x:push"},
		{"user1", "repository:localhost:5000/user1/x:pull"},
		{"user1", "repository:starlingx/stx-platform:pull,push"},
	} {
		f.Add(s.user, false, s.scope)
		f.Add(s.user, true, s.scope)
	}
	f.Fuzz(func(t *testing.T, user string, admin bool, scope string) {
		req, err := ParseScopes([]string{scope})
		if err != nil {
			return
		}
		id := Identity{Name: user, Admin: admin}
		got, refused := p.Grant(id, req)
		if got == nil {
			t.Fatal("nil grant")
		}
		isAdmin := p.IsAdmin(id)
		checkRefusals(t, req, got, refused)
		for _, g := range got {
			i := slices.IndexFunc(req, func(r Access) bool { return r.Type == g.Type && r.Name == g.Name })
			if i < 0 {
				t.Fatalf("granted %v, not requested in %v", g, req)
			}
			if len(g.Actions) == 0 {
				t.Fatalf("granted %v without actions", g)
			}
			for _, a := range g.Actions {
				if !slices.Contains(req[i].Actions, a) && !slices.Contains(req[i].Actions, "*") {
					t.Fatalf("granted %s on %s, requested only %v", a, g.Name, req[i].Actions)
				}
			}
			if isAdmin {
				continue
			}
			if g.Type != "repository" {
				t.Fatalf("non-admin %q got %v", user, g)
			}
			ns, _, _ := strings.Cut(g.Name, "/")
			own := ns == user && strings.Contains(g.Name, "/") && ns != "public" && ns != "mtce" && ns != "docker.io"
			if !own && !slices.Equal(g.Actions, []string{"pull"}) {
				t.Fatalf("non-admin %q got %v outside its namespace", user, g)
			}
			if !own && ns != "public" && g.Name != "starlingx/stx-platform" && g.Name != "pause" {
				t.Fatalf("non-admin %q got %v, neither own nor public", user, g)
			}
		}
	})
}

// pathComponentGrammar is distribution's path-component expression, the
// reference ValidComponent is held to.
var pathComponentGrammar = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*$`)

func FuzzValidComponent(f *testing.F) {
	for _, s := range []string{"", "a", "user1", "a.b", "a_b", "a__b", "a___b", "a-b", "a---b", "a.-b", "-a", "a-",
		"a.", ".a", "a..b", "a/b", "A", "user1/app", "é", "a\x00", "0", "a_b.c-d__e---f", "__", "a_", "_"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := ValidComponent(s), pathComponentGrammar.MatchString(s); got != want {
			t.Errorf("ValidComponent(%q) = %v, the grammar says %v", s, got, want)
		}
	})
}
