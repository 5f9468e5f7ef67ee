package access

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Bounds on the scope parameter. Real clients ask for one to three scopes of
// well under 200 bytes each; these leave ample room while keeping the work
// per request small.
const (
	// MaxScopes is the most scopes one request may carry, over all values.
	MaxScopes = 64
	// MaxScopeBytes bounds one scope: type, name and actions with colons.
	MaxScopeBytes = 512
	// MaxActions is the most distinct actions one scope, or one resource
	// over repeated scopes, may list (there are four).
	MaxActions = 8
	// MaxScopeParamBytes bounds all scope values together; a GET query
	// cannot be longer anyway (serve.MaxHeaderBytes is 16 KiB).
	MaxScopeParamBytes = 16 << 10
	// maxNameBytes is distribution's 255-byte repository name plus room for
	// a "host:port/" prefix, which the policy later refuses.
	maxNameBytes = 255 + 64
	// maxTypeBytes bounds the resource type ("repository", "registry").
	maxTypeBytes = 32
	// maxActionBytes bounds one action ("delete" is the longest known).
	maxActionBytes = 32
	// maxEchoBytes is how much of a bad scope an error may quote.
	maxEchoBytes = 64
)

// Access is one resource and the actions on it, as in the token's "access"
// claim.
type Access struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// String formats a as a scope, e.g. "repository:demo/x:pull,push".
func (a Access) String() string {
	return a.Type + ":" + a.Name + ":" + strings.Join(a.Actions, ",")
}

// FormatScopes joins the scopes with spaces, as in a POST reply's "scope".
func FormatScopes(as []Access) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, " ")
}

// ParseScopes parses the values of the scope parameter. The parameter may
// repeat and each value may hold several scopes separated by spaces; empty
// values are ignored. A scope is TYPE:NAME:ACTIONS where the type runs to
// the first colon and the actions follow the last one, so that a name may
// carry one host:port colon (repository:localhost:5000/foo:pull). Scopes
// for the same type and name are merged, keeping the order of first
// appearance. It returns an empty, non-nil slice when there are no scopes.
func ParseScopes(values []string) ([]Access, error) {
	total := 0
	for _, v := range values {
		total += len(v)
	}
	if total > MaxScopeParamBytes {
		return nil, fmt.Errorf("scope: %d bytes in total, at most %d allowed", total, MaxScopeParamBytes)
	}
	out := []Access{}
	index := map[string]int{} // type + ":" + name → position in out
	n := 0
	for _, v := range values {
		for s := range strings.SplitSeq(v, " ") {
			if s == "" {
				continue // several spaces in a row
			}
			n++
			if n > MaxScopes {
				return nil, fmt.Errorf("scope: more than %d scopes in one request", MaxScopes)
			}
			a, err := parseScope(s)
			if err != nil {
				return nil, fmt.Errorf("scope %s: %w", echo(s), err)
			}
			key := a.Type + ":" + a.Name
			if i, ok := index[key]; ok {
				out[i].Actions = mergeActions(out[i].Actions, a.Actions)
				if len(out[i].Actions) > MaxActions {
					return nil, fmt.Errorf("scope %s: more than %d actions over repeated scopes", echo(s), MaxActions)
				}
				continue
			}
			index[key] = len(out)
			out = append(out, a)
		}
	}
	return out, nil
}

// parseScope parses one TYPE:NAME:ACTIONS scope.
func parseScope(s string) (Access, error) {
	if len(s) > MaxScopeBytes {
		return Access{}, fmt.Errorf("longer than %d bytes", MaxScopeBytes)
	}
	first := strings.IndexByte(s, ':')
	last := strings.LastIndexByte(s, ':')
	if first < 0 || first == last {
		return Access{}, errors.New("want type:name:actions")
	}
	typ, name, actions := s[:first], s[first+1:last], s[last+1:]
	if err := checkType(typ); err != nil {
		return Access{}, err
	}
	if err := checkName(name); err != nil {
		return Access{}, err
	}
	acts, err := parseActions(actions)
	if err != nil {
		return Access{}, err
	}
	return Access{Type: typ, Name: name, Actions: acts}, nil
}

// checkType accepts [a-z0-9]+.
func checkType(t string) error {
	if t == "" {
		return errors.New("type is empty")
	}
	if len(t) > maxTypeBytes {
		return fmt.Errorf("type is longer than %d bytes", maxTypeBytes)
	}
	for i := 0; i < len(t); i++ {
		if c := t[i]; !isLowerDigit(c) {
			return errors.New("type may hold only a-z and 0-9")
		}
	}
	return nil
}

// checkName accepts printable ASCII without spaces and at most one colon.
// The repository grammar is the policy's business, not the parser's.
func checkName(n string) error {
	if n == "" {
		return errors.New("name is empty")
	}
	if len(n) > maxNameBytes {
		return fmt.Errorf("name is longer than %d bytes", maxNameBytes)
	}
	if strings.Count(n, ":") > 1 {
		return errors.New("name holds more than one colon (host:port)")
	}
	for i := 0; i < len(n); i++ {
		if c := n[i]; c <= ' ' || c > '~' {
			return errors.New("name may hold only printable ASCII without spaces")
		}
	}
	return nil
}

// parseActions splits a comma-separated list of actions, each "*" or
// [a-z0-9_-]+, dropping repeats.
func parseActions(s string) ([]string, error) {
	if s == "" {
		return nil, errors.New("actions are empty")
	}
	if strings.Count(s, ",") >= MaxActions {
		return nil, fmt.Errorf("more than %d actions", MaxActions)
	}
	var acts []string
	for a := range strings.SplitSeq(s, ",") {
		if err := checkAction(a); err != nil {
			return nil, err
		}
		acts = mergeActions(acts, []string{a})
	}
	return acts, nil
}

func checkAction(a string) error {
	if a == "" {
		return errors.New("an action is empty")
	}
	if a == "*" {
		return nil
	}
	if len(a) > maxActionBytes {
		return fmt.Errorf("an action is longer than %d bytes", maxActionBytes)
	}
	for i := 0; i < len(a); i++ {
		if c := a[i]; !isLowerDigit(c) && c != '_' && c != '-' {
			return errors.New(`an action may be "*" or hold only a-z, 0-9, '_' and '-'`)
		}
	}
	return nil
}

// mergeActions appends to dst the actions of add it does not hold yet.
func mergeActions(dst, add []string) []string {
	for _, a := range add {
		if !slices.Contains(dst, a) {
			dst = append(dst, a)
		}
	}
	return dst
}

func isLowerDigit(c byte) bool {
	return 'a' <= c && c <= 'z' || '0' <= c && c <= '9'
}

// echo quotes at most maxEchoBytes of untrusted input for an error message,
// escaping anything unprintable.
func echo(s string) string {
	if len(s) > maxEchoBytes {
		return strconv.QuoteToASCII(s[:maxEchoBytes]) + "..."
	}
	return strconv.QuoteToASCII(s)
}
