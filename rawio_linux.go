//go:build linux && !race && !msan && !asan

package tokenpipe

import (
	"syscall"
	"unsafe"
)

// rawRead is read(2) for a descriptor that is non-blocking and whose open
// file description no other holder can make blocking (sysFile.private).
//
// It is syscall.RawSyscall rather than syscall.Read because the runtime's
// bookkeeping around a system call (entersyscall) is not only overhead: when
// every P of the process is idle it wakes sysmon, which then polls every
// 20 µs for a millisecond and more, and a goroutine that has run for 10 ms
// without parking is taken off its P if sysmon finds it in a system call.
// Two processes passing a token back and forth both do exactly that all the
// time; measured on a 2-CPU VM, the round trip to a child took 23-35 µs with
// syscall.Read and Write (sysmon used a fifth of a CPU in each process) and
// 5-7 µs without them. A raw system call keeps the P for its duration, so it
// is only ever made on a descriptor that cannot block; the race detector,
// msan and asan builds use syscall.Read, which tells them about the memory
// and the synchronisation (rawio_other.go).
func rawRead(fd int, p []byte) (int, error) {
	r, _, errno := syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
	if errno != 0 {
		return 0, errno
	}
	return int(r), nil
}

// rawWrite is write(2) under the same conditions as rawRead.
func rawWrite(fd int, p []byte) (int, error) {
	r, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
	if errno != 0 {
		return 0, errno
	}
	return int(r), nil
}
