//go:build !linux

package main

import "syscall"

// childAttr returns nil: only Linux can tie a child's life to its parent.
// kesload needs /proc anyway and fails early elsewhere.
func childAttr() *syscall.SysProcAttr { return nil }
