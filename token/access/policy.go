package access

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// maxRepositoryBytes is distribution's limit on a repository name.
const maxRepositoryBytes = 255

// MaxUsernameBytes bounds a user name everywhere (Keystone allows 255).
const MaxUsernameBytes = 255

// MaxServiceBytes bounds a service (the token's audience): a host:port.
const MaxServiceBytes = 255

// The actions a repository grant may carry, in the order they are written.
const (
	actPull = 1 << iota
	actPush
	actDelete
	actAll = actPull | actPush | actDelete
)

// Identity is who the token is for. Admin may be set by a backend (a
// Keystone role with admin_role); admin_user names are admins too. ID is
// the backend's own ID for the user, which a name reused by a new user does
// not share (Keystone's user id); "" for the users file. The policy uses
// only Name and Admin; refresh tokens are bound to ID.
type Identity struct {
	Name  string
	Admin bool
	ID    string
}

// PolicyConfig is the policy part of the configuration; each field is the
// repeatable keyword named in its comment.
type PolicyConfig struct {
	AdminUsers         []string // admin_user: granted everything, catalog too
	PublicNamespaces   []string // public_namespace: NAME/… pullable by all users
	PublicRepositories []string // public_repository: exact names pullable by all users
	ReservedNamespaces []string // reserved_namespace: NAME/… owned by admins only
}

// Policy decides which of the requested accesses an authenticated identity
// gets. It denies by default and does no I/O:
//
//   - admins get everything requested on valid repositories, and the catalog;
//   - user U gets pull, push and delete on U/… unless U is reserved (public
//     namespaces, and the first component of every public repository, are
//     reserved too) or is not a valid path component;
//   - every user gets pull on public namespaces and public repositories;
//   - anything else, including names outside distribution's repository
//     grammar and other resource types, is dropped.
type Policy struct {
	admins             map[string]bool
	publicNamespaces   map[string]bool
	publicRepositories map[string]bool
	reserved           map[string]bool // reserved_namespace, public_namespace, public_repository's first component
}

// NewPolicy checks c and builds the policy.
func NewPolicy(c PolicyConfig) (*Policy, error) {
	p := &Policy{
		admins:             map[string]bool{},
		publicNamespaces:   map[string]bool{},
		publicRepositories: map[string]bool{},
		reserved:           map[string]bool{},
	}
	var errs []error
	for _, u := range c.AdminUsers {
		if err := checkUserName(u); err != nil {
			errs = append(errs, fmt.Errorf("admin_user %s: %w", echo(u), err))
		}
		p.admins[u] = true
	}
	for _, ns := range c.PublicNamespaces {
		if !ValidComponent(ns) {
			errs = append(errs, fmt.Errorf("public_namespace %s: not a repository path component, want lowercase like %q", echo(ns), "public"))
		}
		p.publicNamespaces[ns] = true
		p.reserved[ns] = true
	}
	for _, r := range c.PublicRepositories {
		if !validRepository(r) {
			errs = append(errs, fmt.Errorf("public_repository %s: not a repository name, want lowercase components joined by '/' like %q, no host:port", echo(r), "library/busybox"))
		}
		p.publicRepositories[r] = true
		// The user named like the first component would otherwise own
		// the image every user pulls.
		ns, _, _ := strings.Cut(r, "/")
		p.reserved[ns] = true
	}
	for _, ns := range c.ReservedNamespaces {
		if !ValidComponent(ns) {
			errs = append(errs, fmt.Errorf("reserved_namespace %s: not a repository path component, want lowercase like %q", echo(ns), "docker.io"))
		}
		p.reserved[ns] = true
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return p, nil
}

// checkUserName accepts a non-empty, bounded name without control characters.
func checkUserName(u string) error {
	if u == "" {
		return errors.New("empty user name")
	}
	if len(u) > MaxUsernameBytes {
		return fmt.Errorf("user name longer than %d bytes", MaxUsernameBytes)
	}
	for _, r := range u {
		if r < ' ' || r == 0x7f {
			return errors.New("user name holds a control character")
		}
	}
	return nil
}

// IsAdmin reports whether id is an admin, by backend role or admin_user.
func (p *Policy) IsAdmin(id Identity) bool {
	return id.Admin || (id.Name != "" && p.admins[id.Name])
}

// Grant returns the subset of requested that id may have, in the requested
// order, with repository actions expanded from "*" and written in the order
// pull, push, delete. It returns an empty, non-nil slice when nothing is
// granted. It also returns, for each valid repository and for the catalog
// whose known actions were not all granted, a Refusal saying which and why
// (at most MaxRefusals, in the requested order; nil when none).
func (p *Policy) Grant(id Identity, requested []Access) ([]Access, []Refusal) {
	granted := []Access{}
	var refused []Refusal
	if id.Name == "" {
		return granted, nil // only authenticated users get anything
	}
	refuse := func(r Refusal) {
		if len(refused) < MaxRefusals {
			refused = append(refused, r)
		}
	}
	admin := p.IsAdmin(id)
	for _, a := range requested {
		switch a.Type {
		case "registry":
			// The catalog lists every repository: admins only, and
			// distribution wants exactly the "*" action for it.
			if a.Name != "catalog" || !slices.Contains(a.Actions, "*") {
				continue
			}
			if admin {
				granted = append(granted, Access{Type: a.Type, Name: a.Name, Actions: []string{"*"}})
			} else {
				refuse(Refusal{Type: a.Type, Name: a.Name, Actions: []string{"*"}, Reason: catalogReason})
			}
		case "repository":
			if !validRepository(a.Name) {
				continue
			}
			want, allowed := requestedActions(a.Actions), p.allowed(id, admin, a.Name)
			if acts := want & allowed; acts != 0 {
				granted = append(granted, Access{Type: a.Type, Name: a.Name, Actions: actionNames(acts)})
			}
			if missing := want &^ allowed; missing != 0 {
				refuse(Refusal{Type: a.Type, Name: a.Name, Actions: actionNames(missing), Reason: p.reason(id, a.Name, missing)})
			}
		}
	}
	return granted, refused
}

// allowed returns the actions id may have on the repository name, which is
// known to be valid.
func (p *Policy) allowed(id Identity, admin bool, name string) int {
	if admin {
		return actAll
	}
	ns, _, nested := strings.Cut(name, "/")
	if nested && ns == id.Name && ValidComponent(id.Name) && !p.reserved[ns] {
		return actAll
	}
	if (nested && p.publicNamespaces[ns]) || p.publicRepositories[name] {
		return actPull
	}
	return 0
}

// ValidComponent reports whether s is one repository path component, such
// as a namespace, exactly as it stands. The grammar is distribution's
// (reference package, path-component):
//
//	[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*
//
// A user owns a namespace only if the user name matches it as it stands:
// names are never lowercased or rewritten. This is a scan of that grammar
// rather than the regular expression, which took most of a grant's policy
// time; FuzzValidComponent holds it to the expression.
func ValidComponent(s string) bool {
	i := 0
	for {
		start := i // a run of [a-z0-9]+
		for i < len(s) && (s[i] >= 'a' && s[i] <= 'z' || s[i] >= '0' && s[i] <= '9') {
			i++
		}
		if i == start {
			return false
		}
		if i == len(s) {
			return true
		}
		switch s[i] { // a separator, which another run must follow
		case '.':
			i++
		case '_':
			i++
			if i < len(s) && s[i] == '_' {
				i++
			}
		case '-':
			for i < len(s) && s[i] == '-' {
				i++
			}
		default:
			return false
		}
	}
}

// validRepository reports whether name follows distribution's repository
// grammar: path components joined by '/', at most 255 bytes. A host:port
// prefix is refused by the grammar, as it must be: it is not part of a
// repository's name inside the registry.
func validRepository(name string) bool {
	if name == "" || len(name) > maxRepositoryBytes {
		return false
	}
	for c := range strings.SplitSeq(name, "/") {
		if !ValidComponent(c) {
			return false
		}
	}
	return true
}

// requestedActions maps action names to bits; "*" means all, unknown
// actions count for nothing.
func requestedActions(actions []string) int {
	bits := 0
	for _, a := range actions {
		switch a {
		case "pull":
			bits |= actPull
		case "push":
			bits |= actPush
		case "delete":
			bits |= actDelete
		case "*":
			bits |= actAll
		}
	}
	return bits
}

// actionNames writes bits in the fixed order pull, push, delete.
func actionNames(bits int) []string {
	names := make([]string, 0, 3)
	if bits&actPull != 0 {
		names = append(names, "pull")
	}
	if bits&actPush != 0 {
		names = append(names, "push")
	}
	if bits&actDelete != 0 {
		names = append(names, "delete")
	}
	return names
}
