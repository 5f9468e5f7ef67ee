package tokenauth

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/registry/auth"

	"stx-registry/registry/tokenauth/tokentest"
	"stx-registry/token/access"
	"stx-registry/token/issuer"
)

func repoAccess(name string, actions ...string) []auth.Access {
	var as []auth.Access
	for _, a := range actions {
		as = append(as, auth.Access{Resource: auth.Resource{Type: "repository", Name: name}, Action: a})
	}
	return as
}

// serverToken is a token the token server would sign for user asking for
// scope: its own policy and issuer, so that this test holds the two
// daemons to the same stx_refused claim.
func serverToken(t *testing.T, k tokentest.Key, user, scope string) string {
	t.Helper()
	pol, err := access.NewPolicy(access.PolicyConfig{PublicNamespaces: []string{"public"}, ReservedNamespaces: []string{"platform"}})
	if err != nil {
		t.Fatal(err)
	}
	iss, err := issuer.New(tokentest.Issuer, issuer.DefaultTokenTTL, k.Signer)
	if err != nil {
		t.Fatal(err)
	}
	req, err := access.ParseScopes([]string{scope})
	if err != nil {
		t.Fatal(err)
	}
	granted, refused := pol.Grant(access.Identity{Name: user}, req)
	tok, err := iss.Sign(user, tokentest.Service, granted, refused, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok.Raw
}

// TestRefusalSaysWhy checks the challenges of a verified token that lacks
// access: the token server's reason when the token carries one, a plain
// statement otherwise, and distribution's own challenge for a missing or
// bad token. It also checks that distribution accepts a token carrying
// stx_refused for what it does grant.
func TestRefusalSaysWhy(t *testing.T) {
	k := tokentest.NewKey(t, "P-256")
	tc, _, _ := newTestController(t, k)
	pushPull := "user1 may not pull from or push to user2/x: user1 may push only to user1/..., and pull from there and from public namespaces"
	base := fmt.Sprintf("Bearer realm=%q,service=%q", tokentest.Realm, tokentest.Service)
	challenges := func(scope, why string) []string {
		return []string{
			base + fmt.Sprintf(",scope=%q,error=%q", scope, why),
			base + fmt.Sprintf(",scope=%q,error=\"insufficient_scope\",error_description=%q", scope, why),
		}
	}
	for _, tt := range []struct {
		name   string
		token  string
		access []auth.Access
		ok     bool
		want   []string // the WWW-Authenticate values
	}{
		{"push to another user", serverToken(t, k, "user1", "repository:user2/x:pull,push"),
			repoAccess("user2/x", "pull", "push"), false, challenges("repository:user2/x:pull,push", pushPull)},
		{"HEAD of a push", serverToken(t, k, "user1", "repository:user2/x:pull,push"),
			repoAccess("user2/x", "pull"), false, challenges("repository:user2/x:pull", pushPull)},
		{"pull from another user", serverToken(t, k, "user1", "repository:user2/x:pull"),
			repoAccess("user2/x", "pull"), false, challenges("repository:user2/x:pull",
				"user1 may not pull from user2/x: user1 may pull only from user1/... and public namespaces")},
		{"push to a public namespace", serverToken(t, k, "user1", "repository:public/base:pull,push"),
			repoAccess("public/base", "pull", "push"), false, challenges("repository:public/base:pull,push",
				"user1 may not push to public/base: public/ is read-only, user1 may push only to user1/...")},
		{"pull of a public namespace, stx_refused in the token", serverToken(t, k, "user1", "repository:public/base:pull,push"),
			repoAccess("public/base", "pull"), true, nil},
		{"reserved namespace", serverToken(t, k, "user1", "repository:platform/x:pull"),
			repoAccess("platform/x", "pull"), false, challenges("repository:platform/x:pull",
				"user1 may not pull from platform/x: platform/ is reserved for admins")},
		{"catalog", serverToken(t, k, "user1", "registry:catalog:*"),
			[]auth.Access{{Resource: auth.Resource{Type: "registry", Name: "catalog"}, Action: "*"}}, false,
			challenges("registry:catalog:*", "the catalog is for admins")},
		{"token for another repository: plain statement", serverToken(t, k, "user1", "repository:user1/a:pull"),
			repoAccess("user1/b", "pull"), false, challenges("repository:user1/b:pull", "token for user1 grants no pull on user1/b")},
		{"pull granted, push not asked for", serverToken(t, k, "user1", "repository:public/base:pull"),
			repoAccess("public/base", "pull", "push"), false, challenges("repository:public/base:pull,push", "token for user1 grants no push on public/base")},
		{"unquotable subject", tokentest.Sign(t, k, tokentest.Claims(`a"b\c`+"\n")),
			repoAccess("user2/x", "pull"), false, challenges("repository:user2/x:pull", "token for a?b?c? grants no pull on user2/x")},
		{"reason from the claim made quotable", tokentest.Sign(t, k, withRefused(tokentest.Claims("user1"), "user2/x", "pull", "say \"no\"\\"+strings.Repeat("x", 600))),
			repoAccess("user2/x", "pull"), false, challenges("repository:user2/x:pull", "say ?no??"+strings.Repeat("x", maxWhyBytes-12)+"...")},
		{"no token: distribution's challenge", "",
			repoAccess("user2/x", "pull"), false, []string{base + `,scope="repository:user2/x:pull"`}},
		{"bad token: distribution's challenge", "not.a.token",
			repoAccess("user2/x", "pull"), false, []string{base + `,scope="repository:user2/x:pull",error="invalid_token"`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/v2/x/manifests/1", nil)
			if tt.token != "" {
				r.Header.Set("Authorization", "Bearer "+tt.token)
			}
			g, err := tc.Authorized(r, tt.access...)
			if tt.ok {
				if err != nil || g == nil || g.User.Name != "user1" {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			ch, ok := err.(auth.Challenge)
			if !ok {
				t.Fatalf("error %v is no challenge", err)
			}
			w := httptest.NewRecorder()
			ch.SetHeaders(r, w)
			got := w.Header().Values("WWW-Authenticate")
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("challenges\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func withRefused(c map[string]any, name, action, reason string) map[string]any {
	c["stx_refused"] = []map[string]any{{"type": "repository", "name": name, "actions": []string{action}, "reason": reason}}
	return c
}

// FuzzExplain checks that whatever a token holds, the reason is fit for a
// quoted header parameter and bounded.
func FuzzExplain(f *testing.F) {
	k := tokentest.NewKey(f, "P-256")
	f.Add("Bearer "+tokentest.Sign(f, k, withRefused(tokentest.Claims("user1"), "user2/x", "pull", "user1 may not pull from user2/x")), "user2/x", "pull")
	f.Add("Bearer "+tokentest.Sign(f, k, tokentest.Claims("us\"er\\1\u00e9", tokentest.Repo("user2/x", "push"))), "user2/x", "pull")
	f.Add("Bearer a.eyJzdWIiOiJcIlxcIn0.b", "x", "*")
	f.Add("", "", "")
	f.Fuzz(func(t *testing.T, authorization, name, action string) {
		why := explain(authorization, []auth.Access{{Resource: auth.Resource{Type: "repository", Name: name}, Action: action}})
		if why == "" || len(why) > maxWhyBytes {
			t.Fatalf("reason of %d bytes", len(why))
		}
		for i := 0; i < len(why); i++ {
			if c := why[i]; c < ' ' || c > '~' || c == '"' || c == '\\' {
				t.Fatalf("reason %q holds byte %#x", why, c)
			}
		}
	})
}
