package main

import "syscall"

// childAttr makes the kernel kill a child when this process dies, so that
// no server outlives a crashed or killed kesload.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
