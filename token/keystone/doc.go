// Package keystone owns the OpenStack Keystone backend: password logins
// (Keystone v3 password authentication, optionally with an admin role
// check), readiness, and the refresh re-check of a user through a service
// account. It is the only package that imports gophercloud.
package keystone
