package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// envPerf is the path prefix of the files "kesload run" records every
// server's profile into with "perf record -g" (PREFIX.kes, PREFIX.bare, …);
// empty means no profiles.
const envPerf = "KESLOAD_PERF"

// startPerfs starts perf on every server if KESLOAD_PERF is set. The
// returned stop function ends the recordings and may be called more than
// once.
func startPerfs(servers []*Server, dir string) (stop func(), err error) {
	prefix := os.Getenv(envPerf)
	var stops []func()
	stop = func() {
		for _, f := range stops {
			f()
		}
	}
	if prefix == "" {
		return stop, nil
	}
	for _, srv := range servers {
		f, err := startPerf(srv, prefix+"."+srv.Name, dir)
		if err != nil {
			stop()
			return nil, err
		}
		stops = append(stops, f)
	}
	return stop, nil
}

// startPerf records srv into out.
func startPerf(srv *Server, out, dir string) (stop func(), err error) {
	log, err := os.Create(filepath.Join(dir, "perf-"+srv.Name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("perf", "record", "-g", "-F", "4999", "-p", strconv.Itoa(srv.Pid()), "-o", out)
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
