//go:build unix

package tokenpipe

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

const maxEndValue = math.MaxInt32 // a descriptor is an int32

func (s *sysFile) export(cmd *exec.Cmd) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.shut(shutExported); err != nil {
		return "", err
	}
	// The child shares our open file description, and O_NONBLOCK lives there:
	// a child not written in Go expects the blocking pipe it would get from a
	// shell; FromEnv in a Go child gets a description of its own, or makes
	// this one non-blocking again. Nothing in this process uses fd from now
	// on, so nothing here can block on it.
	if err := unix.SetNonblock(s.fd, false); err != nil {
		s.state.Add(^uint64(shutExported - 1)) // clear the flag: e stays as it was
		s.setDeadlines()
		return "", os.NewSyscallError("fcntl", err)
	}
	// os/exec numbers ExtraFiles from 3 in the child. A new array: the
	// caller's may share its spare capacity with another Cmd's
	// (TestExportToSharedExtraFiles).
	value := strconv.Itoa(3 + len(cmd.ExtraFiles))
	f := s.adopt()
	cmd.ExtraFiles = append(slices.Clip(cmd.ExtraFiles), f)
	// cmd holds f now, and needs fd open until Start: an end dropped after
	// ExportTo must not be closed under cmd. So from here f alone closes fd
	// if dropped (its own finalizer, once neither cmd nor the end holds it),
	// and this cleanup, tied to f too, only takes fd out of the registry.
	s.cleanup.Stop()
	fd := s.fd
	s.cleanup = runtime.AddCleanup(f, func(int) { disown(uintptr(fd)) }, fd)
	return value, nil
}

func importEnd(n uint64) (*sysFile, error) {
	fd := int(n)
	if fd <= 2 {
		return nil, fmt.Errorf("descriptor %d is standard input, output or error, never an exported end: %w", fd, os.ErrInvalid)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("descriptor %d is not open: %w: %w", fd, err, os.ErrInvalid)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFIFO {
		return nil, fmt.Errorf("descriptor %d is a %s, not a pipe: %w", fd, fileType(uint32(st.Mode)), os.ErrInvalid)
	}
	fdFlags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	if err != nil {
		return nil, fmt.Errorf("descriptor %d: %w: %w", fd, os.NewSyscallError("fcntl", err), os.ErrInvalid)
	}
	flFlags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return nil, fmt.Errorf("descriptor %d: %w: %w", fd, os.NewSyscallError("fcntl", err), os.ErrInvalid)
	}
	if reopen(fd, flFlags) {
		return newSysFile(fd), nil // the inherited description is untouched
	}
	// Shared with the parent, then. Non-blocking first: it is the change
	// that fails on a descriptor that cannot be read or written (Linux's
	// O_PATH), and then nothing has been changed yet.
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFL, flFlags|unix.O_NONBLOCK); err != nil {
		return nil, fmt.Errorf("descriptor %d cannot be used for reading or writing: %w: %w", fd, os.NewSyscallError("fcntl", err), os.ErrInvalid)
	}
	// Hold ForkLock so that no child is forked between our inheriting the
	// descriptor and marking it close-on-exec, as os does for pipe(2).
	syscall.ForkLock.RLock()
	_, err = unix.FcntlInt(uintptr(fd), unix.F_SETFD, fdFlags|unix.FD_CLOEXEC)
	syscall.ForkLock.RUnlock()
	if err != nil {
		unix.FcntlInt(uintptr(fd), unix.F_SETFL, flFlags) // as it was
		return nil, fmt.Errorf("descriptor %d: %w: %w", fd, os.NewSyscallError("fcntl", err), os.ErrInvalid)
	}
	return newSysFile(fd), nil
}

func envKeyEqual(a, b string) bool {
	return a == b
}

func fileType(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return "regular file"
	case unix.S_IFSOCK:
		return "socket"
	case unix.S_IFCHR:
		return "character device"
	case unix.S_IFDIR:
		return "directory"
	case unix.S_IFBLK:
		return "block device"
	case unix.S_IFLNK:
		return "symbolic link"
	}
	return "file of unknown type"
}
