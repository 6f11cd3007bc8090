package local

import (
	"io"
	"os"
	"syscall"
	"time"
)

// captureStdio copies everything written to this process's stdout and
// stderr into out and errOut while still passing it on. It works on file
// descriptors 1 and 2, not on os.Stdout and os.Stderr, so it also sees the
// log package (which keeps the os.Stderr of start-up), slog's default
// logger, panics, and child processes that inherit the descriptors: in
// Lambda all of it goes to CloudWatch Logs, so the leak scan must search
// it. stop restores the descriptors.
func captureStdio(out, errOut *SyncBuffer) (stop func(), err error) {
	var stops []func()
	stop = func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	for fd, buf := range map[int]*SyncBuffer{1: out, 2: errOut} {
		saved, err := syscall.Dup(fd)
		if err != nil {
			stop()
			return nil, err
		}
		r, w, err := os.Pipe()
		if err != nil {
			_ = syscall.Close(saved)
			stop()
			return nil, err
		}
		if err := syscall.Dup3(int(w.Fd()), fd, 0); err != nil {
			_ = syscall.Close(saved)
			_, _ = r.Close(), w.Close()
			stop()
			return nil, err
		}
		_ = w.Close() // fd is the pipe's write end now
		orig := os.NewFile(uintptr(saved), "original")
		buf.mu.Lock()
		buf.tee = orig
		buf.mu.Unlock()
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, _ = io.Copy(buf, r)
		}()
		stops = append(stops, func() {
			// Pointing fd back closes the pipe's last write end (unless a
			// child still holds it: then give up waiting after a while).
			_ = syscall.Dup3(saved, fd, 0)
			select {
			case <-done:
			case <-time.After(2 * time.Second):
			}
			_ = r.Close()
			buf.mu.Lock()
			buf.tee = nil
			buf.mu.Unlock()
			_ = orig.Close()
		})
	}
	return stop, nil
}
