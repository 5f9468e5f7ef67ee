package access

import "strings"

// Bounds on the refusals Grant returns, which the token carries to the
// registry. Real clients ask for one to three scopes, and the registry only
// looks up the resource of the request it refuses.
const (
	// MaxRefusals is the most refusals Grant returns; later ones are
	// dropped, and the registry then falls back to a plain statement.
	MaxRefusals = 8
	// MaxReasonBytes bounds one reason; a longer one is cut and ends in
	// "...". Only two names of at most 255 bytes can make one that long.
	MaxReasonBytes = 512
	// maxWhoBytes is the longest user name a reason quotes; a longer one,
	// or one with other than printable ASCII, is "this user".
	maxWhoBytes = 64
)

// catalogReason is why a user who is not an admin gets no catalog.
const catalogReason = "the catalog is for admins"

// Refusal is one requested resource whose known actions were not all
// granted: the refused actions and, for the user's client to print, why.
// The reason is printable ASCII without '"' or '\', at most MaxReasonBytes,
// so that it can be quoted in an HTTP header as it stands. It depends on
// the policy, the user and the name only, never on what the registry
// holds, so it tells nobody whether a repository exists.
type Refusal struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
	Reason  string   `json:"reason"`
}

// reason explains to id, who is not an admin, why the actions in missing
// are refused on the repository name, which is valid. For example:
//
//	user1 may not pull from user2/x: user1 may pull only from user1/... and public namespaces
//	user1 may not push to public/x: public/ is read-only, user1 may push only to user1/...
//	user1 may not pull from or push to mtce/x: mtce/ is reserved for admins
//
// When pull is refused with push, the rule names both: the first request a
// client refused this way sends is often a HEAD, which needs pull.
func (p *Policy) reason(id Identity, name string, missing int) string {
	who := who(id.Name)
	ns, _, nested := strings.Cut(name, "/")
	var rule string
	switch {
	case nested && p.publicNamespaces[ns]: // pull is allowed
		rule = ns + "/ is read-only, " + p.ownRule(id, who, missing)
	case p.publicRepositories[name]: // pull is allowed
		rule = name + " is read-only, " + p.ownRule(id, who, missing)
	case nested && p.reserved[ns]:
		rule = ns + "/ is reserved for admins"
	default:
		rule = p.ownRule(id, who, missing)
	}
	s := who + " may not " + verbs(missing) + " " + name + ": " + rule
	if len(s) > MaxReasonBytes {
		s = s[:MaxReasonBytes-3] + "..."
	}
	return s
}

// ownRule says where who may do the actions in missing: its own namespace
// for push and delete, and public ones too for pull.
func (p *Policy) ownRule(id Identity, who string, missing int) string {
	public := ""
	switch {
	case len(p.publicNamespaces) > 0:
		public = "public namespaces"
	case len(p.publicRepositories) > 0:
		public = "public repositories"
	}
	writes := missing&(actPush|actDelete) != 0
	if !ValidComponent(id.Name) || p.reserved[id.Name] {
		none := who + " owns no namespace, as the name is not a lowercase repository path component"
		if ValidComponent(id.Name) {
			none = who + " owns no namespace: " + id.Name + "/ is reserved"
		}
		switch {
		case public == "":
			return none
		case missing&actPull == 0:
			return none
		case writes:
			return none + ", and may pull only from " + public
		}
		return who + " may pull only from " + public
	}
	own := id.Name + "/..."
	write := who + " may push only to " + own
	if missing&actPush == 0 {
		write = who + " may delete only in " + own
	}
	switch {
	case missing&actPull == 0:
		return write
	case !writes && public == "":
		return who + " may pull only from " + own
	case !writes:
		return who + " may pull only from " + own + " and " + public
	case public == "":
		return write + ", and pull from there"
	}
	return write + ", and pull from there and from " + public
}

// verbs names the actions in bits for "may not ... NAME": "pull from",
// "pull from or push to", "pull from, push to or delete from".
func verbs(bits int) string {
	var vs []string
	for _, a := range actionNames(bits) {
		switch a {
		case "pull":
			vs = append(vs, "pull from")
		case "push":
			vs = append(vs, "push to")
		case "delete":
			vs = append(vs, "delete from")
		}
	}
	if len(vs) == 1 {
		return vs[0]
	}
	return strings.Join(vs[:len(vs)-1], ", ") + " or " + vs[len(vs)-1]
}

// who is the user name as a reason may quote it: printable ASCII without
// '"' or '\' and at most maxWhoBytes, else "this user".
func who(name string) string {
	if name == "" || len(name) > maxWhoBytes {
		return "this user"
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < ' ' || c > '~' || c == '"' || c == '\\' {
			return "this user"
		}
	}
	return name
}
