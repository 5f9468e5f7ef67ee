// Package access owns what a token may grant: the scope parameter's grammar
// (Access, ParseScopes, FormatScopes), distribution's repository name
// grammar, and the Policy that decides which requested accesses an Identity
// gets and says, in a Refusal, why it refuses the rest. It is pure: no I/O,
// no clock, no logging.
package access
