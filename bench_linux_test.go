package tokenpipe_test

import (
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

func init() {
	benchRawSyscalls = func(b *testing.B) {
		var p [2]int
		if err := unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { unix.Close(p[0]); unix.Close(p[1]) })
		buf := make([]byte, 1)
		b.ReportAllocs()
		for b.Loop() {
			if _, _, e := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(p[1]), uintptr(unsafe.Pointer(&buf[0])), 1); e != 0 {
				b.Fatal(e)
			}
			if _, _, e := syscall.RawSyscall(syscall.SYS_READ, uintptr(p[0]), uintptr(unsafe.Pointer(&buf[0])), 1); e != 0 {
				b.Fatal(e)
			}
		}
	}
}
