package access

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestGrantRefusals(t *testing.T) {
	user1 := Identity{Name: "user1"}
	pullRule := "user1 may pull only from user1/... and public namespaces"
	pushPullRule := "user1 may push only to user1/..., and pull from there and from public namespaces"
	tests := []struct {
		name string
		id   Identity
		req  []Access
		want []Refusal
	}{
		{"own namespace: nothing refused", user1,
			[]Access{repo("user1/x", "*")}, nil},
		{"pull from another user", user1,
			[]Access{repo("user2/x", "pull")},
			[]Refusal{{"repository", "user2/x", []string{"pull"}, "user1 may not pull from user2/x: " + pullRule}}},
		{"push to another user", user1,
			[]Access{repo("user2/x", "pull", "push")},
			[]Refusal{{"repository", "user2/x", []string{"pull", "push"}, "user1 may not pull from or push to user2/x: " + pushPullRule}}},
		{"everything on another user", user1,
			[]Access{repo("user2/x", "*")},
			[]Refusal{{"repository", "user2/x", []string{"pull", "push", "delete"}, "user1 may not pull from, push to or delete from user2/x: " + pushPullRule}}},
		{"delete elsewhere", user1,
			[]Access{repo("user2/x", "delete")},
			[]Refusal{{"repository", "user2/x", []string{"delete"}, "user1 may not delete from user2/x: user1 may delete only in user1/..."}}},
		{"name without namespace", user1,
			[]Access{repo("x", "push")},
			[]Refusal{{"repository", "x", []string{"push"}, "user1 may not push to x: user1 may push only to user1/..."}}},
		{"bare user name", user1,
			[]Access{repo("user1", "pull")},
			[]Refusal{{"repository", "user1", []string{"pull"}, "user1 may not pull from user1: " + pullRule}}},
		{"public namespace is read-only", user1,
			[]Access{repo("public/base", "pull", "push")},
			[]Refusal{{"repository", "public/base", []string{"push"}, "user1 may not push to public/base: public/ is read-only, user1 may push only to user1/..."}}},
		{"public repository is read-only", user1,
			[]Access{repo("starlingx/stx-platform", "push", "delete")},
			[]Refusal{{"repository", "starlingx/stx-platform", []string{"push", "delete"}, "user1 may not push to or delete from starlingx/stx-platform: starlingx/stx-platform is read-only, user1 may push only to user1/..."}}},
		{"reserved namespace", user1,
			[]Access{repo("mtce/x", "pull", "push")},
			[]Refusal{{"repository", "mtce/x", []string{"pull", "push"}, "user1 may not pull from or push to mtce/x: mtce/ is reserved for admins"}}},
		{"user named after a reserved namespace", Identity{Name: "mtce"},
			[]Access{repo("mtce/x", "push")},
			[]Refusal{{"repository", "mtce/x", []string{"push"}, "mtce may not push to mtce/x: mtce/ is reserved for admins"}}},
		{"user named after a reserved namespace, elsewhere", Identity{Name: "mtce"},
			[]Access{repo("user2/x", "pull", "push")},
			[]Refusal{{"repository", "user2/x", []string{"pull", "push"}, "mtce may not pull from or push to user2/x: mtce owns no namespace: mtce/ is reserved, and may pull only from public namespaces"}}},
		{"user named public", Identity{Name: "public"},
			[]Access{repo("public/x", "push")},
			[]Refusal{{"repository", "public/x", []string{"push"}, "public may not push to public/x: public/ is read-only, public owns no namespace: public/ is reserved"}}},
		{"uppercase user", Identity{Name: "Alice"},
			[]Access{repo("alice/x", "pull")},
			[]Refusal{{"repository", "alice/x", []string{"pull"}, "Alice may not pull from alice/x: Alice may pull only from public namespaces"}}},
		{"uppercase user pushes", Identity{Name: "Alice"},
			[]Access{repo("alice/x", "push")},
			[]Refusal{{"repository", "alice/x", []string{"push"}, "Alice may not push to alice/x: Alice owns no namespace, as the name is not a lowercase repository path component"}}},
		{"user name not quotable", Identity{Name: `a"b\c` + "\u00e9"},
			[]Access{repo("x/y", "pull")},
			[]Refusal{{"repository", "x/y", []string{"pull"}, "this user may not pull from x/y: this user may pull only from public namespaces"}}},
		{"partial grant", user1,
			[]Access{repo("user1/app", "pull", "push"), repo("user2/base", "pull"), repo("public/base", "pull")},
			[]Refusal{{"repository", "user2/base", []string{"pull"}, "user1 may not pull from user2/base: " + pullRule}}},
		{"catalog", user1,
			[]Access{acc("registry", "catalog", "*")},
			[]Refusal{{"registry", "catalog", []string{"*"}, "the catalog is for admins"}}},
		{"catalog for admin", Identity{Name: "admin"},
			[]Access{acc("registry", "catalog", "*"), repo("user2/x", "*")}, nil},
		{"not explained: invalid names, other types, unknown actions", user1,
			[]Access{repo("User2/x", "pull"), acc("blob", "user2/x", "pull"), repo("user2/x", "frobnicate"), acc("registry", "other", "*"), acc("registry", "catalog", "pull")},
			nil},
		{"anonymous", Identity{}, []Access{repo("user2/x", "pull")}, nil},
	}
	p := testPolicy(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, got := p.Grant(tt.id, tt.req)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Grant(%+v, %v) refused\n%+v\nwant\n%+v", tt.id, tt.req, got, tt.want)
			}
		})
	}
}

func TestRefusalWithoutPublic(t *testing.T) {
	p, err := NewPolicy(PolicyConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		id   Identity
		req  Access
		want string
	}{
		{Identity{Name: "user1"}, repo("user2/x", "pull"), "user1 may not pull from user2/x: user1 may pull only from user1/..."},
		{Identity{Name: "user1"}, repo("user2/x", "pull", "push"), "user1 may not pull from or push to user2/x: user1 may push only to user1/..., and pull from there"},
		{Identity{Name: "Bob"}, repo("user2/x", "pull"), "Bob may not pull from user2/x: Bob owns no namespace, as the name is not a lowercase repository path component"},
	} {
		_, refused := p.Grant(tt.id, []Access{tt.req})
		if len(refused) != 1 || refused[0].Reason != tt.want {
			t.Errorf("Grant(%v, %v) refused %+v, want reason %q", tt.id, tt.req, refused, tt.want)
		}
	}
	p, err = NewPolicy(PolicyConfig{PublicRepositories: []string{"pause"}})
	if err != nil {
		t.Fatal(err)
	}
	_, refused := p.Grant(Identity{Name: "user1"}, []Access{repo("user2/x", "pull")})
	if want := "user1 may not pull from user2/x: user1 may pull only from user1/... and public repositories"; len(refused) != 1 || refused[0].Reason != want {
		t.Errorf("refused %+v, want reason %q", refused, want)
	}
}

func TestRefusalBounds(t *testing.T) {
	p := testPolicy(t)
	var req []Access
	for i := range MaxRefusals + 3 {
		req = append(req, repo("user2/"+strings.Repeat("x", i+1), "pull"))
	}
	if _, refused := p.Grant(Identity{Name: "user1"}, req); len(refused) != MaxRefusals {
		t.Errorf("%d refusals, want %d", len(refused), MaxRefusals)
	}
	long := repo(strings.Repeat("a", 100)+"/"+strings.Repeat("b", 154), "pull", "push", "delete")
	_, refused := p.Grant(Identity{Name: strings.Repeat("u", maxWhoBytes)}, []Access{long})
	if len(refused) != 1 || len(refused[0].Reason) != MaxReasonBytes || !strings.HasSuffix(refused[0].Reason, "...") {
		t.Errorf("long reason not cut to %d bytes: %+v", MaxReasonBytes, refused)
	}
	checkReason(t, refused[0].Reason)
}

// checkRefusals checks what every refusal must be: a requested, valid
// resource, actions requested and not granted, and a reason a header can
// quote as it stands.
func checkRefusals(t *testing.T, req, granted []Access, refused []Refusal) {
	t.Helper()
	if len(refused) > MaxRefusals {
		t.Fatalf("%d refusals, at most %d allowed", len(refused), MaxRefusals)
	}
	for _, r := range refused {
		i := slices.IndexFunc(req, func(a Access) bool { return a.Type == r.Type && a.Name == r.Name })
		if i < 0 {
			t.Fatalf("refused %v, not requested in %v", r, req)
		}
		if len(r.Actions) == 0 {
			t.Fatalf("refusal %v without actions", r)
		}
		for _, act := range r.Actions {
			if !slices.Contains(req[i].Actions, act) && !slices.Contains(req[i].Actions, "*") {
				t.Fatalf("refused %s on %s, requested only %v", act, r.Name, req[i].Actions)
			}
			for _, g := range granted {
				if g.Type == r.Type && g.Name == r.Name && slices.Contains(g.Actions, act) {
					t.Fatalf("%s on %s both granted and refused", act, r.Name)
				}
			}
		}
		checkReason(t, r.Reason)
	}
}

func checkReason(t *testing.T, s string) {
	t.Helper()
	if s == "" || len(s) > MaxReasonBytes {
		t.Fatalf("reason of %d bytes, want 1 to %d", len(s), MaxReasonBytes)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c > '~' || c == '"' || c == '\\' {
			t.Fatalf("reason %q holds byte %#x", s, c)
		}
	}
}
