// Package testrig is the one test rig of stx-registry: the end-to-end tests
// (ops/e2e), the benchmark (ops/bench) and the Keystone tests build and run
// the real daemons and their real upstreams through it.
//
// It owns:
//   - building stx-registry and stx-token-server once per process from this
//     module's source (BuildDaemons), and any other package (GoBuild);
//   - free ports on 127.0.0.1 (FreeAddr);
//   - certificates, users and configuration files: a set-up laid out by
//     ops/demo-config.sh on free ports (NewLayout), users added with
//     stx-token-server passwd, and configuration files edited by keyword
//     (EditConf, AppendConf, WriteConf);
//   - processes: started with their output in a log file, stopped by their
//     PID, killed should the test or benchmark die first, and polled until
//     they answer (Start, Proc);
//   - a throwaway Keystone run by ops/test-keystone.sh and its admin REST
//     calls: users, projects, roles, domains, role assignments (StartKeystone);
//   - a private containerd (StartContainerd) and a private docker engine on
//     it, with the docker CLI and the registry CA dockerd reads from
//     /etc/docker/certs.d, sharing nothing with the machine's own
//     (StartDockerd);
//   - OCI image layouts with random, incompressible layers (NewImage);
//   - ext4 filesystems on loop devices, for storage roots that must be
//     mount points or must fill up (LoopDevice);
//   - the check that a daemon's section 5 man page documents exactly the
//     configuration keywords it accepts (CheckManPage).
//
// It is not a _test package so that the benchmark, a command, can import it.
// It runs programs, writes files and opens sockets for tests only: no daemon
// may import it, and it imports nothing from registry/ or token/.
package testrig
