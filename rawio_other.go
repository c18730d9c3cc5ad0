//go:build unix && !(linux && !race && !msan && !asan)

package tokenpipe

import "syscall"

// rawRead is read(2) for a descriptor that is non-blocking and whose open
// file description no other holder can make blocking (sysFile.private).
//
// Here it is syscall.Read: raw system calls are used on Linux only
// (rawio_linux.go says why), and not in race detector, msan or asan builds,
// which learn from syscall.Read about the memory it writes and the
// synchronisation a pipe gives.
func rawRead(fd int, p []byte) (int, error) {
	return syscall.Read(fd, p)
}

// rawWrite is write(2) under the same conditions as rawRead.
func rawWrite(fd int, p []byte) (int, error) {
	return syscall.Write(fd, p)
}
