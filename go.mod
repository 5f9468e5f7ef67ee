module stx-registry

go 1.26

require (
	// The registry daemon embeds distribution's HTTP handlers; stx-registry only.
	github.com/distribution/distribution/v3 v3.1.2
	// bcrypt for the local users file; nothing else from x/crypto.
	golang.org/x/crypto v0.59.0
)
