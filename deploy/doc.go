// Package deploy holds no code: its folder holds the files OpenKES is
// deployed with, a hardened systemd unit (systemd/kes.service) and a
// container build file (container/Containerfile). Its tests verify the
// unit with systemd-analyze and run the container's build command, so
// that neither file rots. The monitoring files (monitoring/) have their
// own tests.
package deploy
