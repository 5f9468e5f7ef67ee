package config

import (
	"testing"

	"stx-registry/shared/testrig"
)

// TestManPageKeywords keeps stx-registry.conf(5) and the parser in step.
func TestManPageKeywords(t *testing.T) {
	testrig.CheckManPage(t, "../../man/stx-registry.conf.5", Keywords())
}
