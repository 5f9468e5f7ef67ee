// Package e2e holds the end-to-end tests of stx-registry and
// stx-token-server: both daemons are built and started exactly as an
// operator would (ops/demo-config.sh lays out the certificates, users and
// configuration files), and real clients drive them over TLS on 127.0.0.1:
// skopeo, podman, containerd's ctr, a private docker engine (dockerd), and
// raw HTTP requests for the exact shapes of docker login's exchange and for
// deliberately bad input. It also runs both daemons against a real
// Keystone, drives the OCF agents with ocf-tester, and drills a controller
// failover through the agents. The daemons, their set-up, Keystone,
// containerd, dockerd, processes and images come from the test rig,
// shared/testrig.
//
// The clients are Debian packages installed by "make test-deps". A missing
// client makes the tests fail, never skip: an end-to-end test that did not
// run has proven nothing.
//
// Run with:
//
//	go test -count=1 ./ops/e2e/ -v
package e2e
