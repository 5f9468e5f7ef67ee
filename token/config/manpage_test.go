package config

import (
	"testing"

	"stx-registry/shared/testrig"
)

// TestManPageKeywords keeps stx-token-server.conf(5) and the parser in step.
func TestManPageKeywords(t *testing.T) {
	testrig.CheckManPage(t, "../../man/stx-token-server.conf.5", Keywords())
}
