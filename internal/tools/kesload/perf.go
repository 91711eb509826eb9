package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// envPerf names the file "kesload run" records the first kes server's
// profile into with "perf record -g"; empty means no profile.
const envPerf = "KESLOAD_PERF"

// startPerf starts perf on srv if KESLOAD_PERF is set. The returned stop
// function ends the recording and may be called more than once.
func startPerf(srv *Server, dir string) (stop func(), err error) {
	out := os.Getenv(envPerf)
	if out == "" {
		return func() {}, nil
	}
	log, err := os.Create(filepath.Join(dir, "perf.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("perf", "record", "-g", "-F", "499", "-p", strconv.Itoa(srv.Pid()), "-o", out)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		log.Close()
		close(done)
	}()
	return func() {
		cmd.Process.Signal(syscall.SIGINT) // perf writes its file on SIGINT
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}, nil
}
