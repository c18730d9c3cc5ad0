package tokenpipe_test

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/tokenpipe/tokenpipe"
	"golang.org/x/sys/unix"
)

// Close also wakes a writer blocked on a full pipe. Linux tells the pipe's
// capacity, so the test can fill it and know the next write blocks.
func TestCloseUnblocksWriter(t *testing.T) {
	r, w := mustMake(t)
	for n := tokenpipe.PipeCapacity(t, w); n > 0; n-- {
		if err := w.TokenWrite(1); err != nil {
			t.Fatal(err)
		}
	}
	started, done := readAsync(func() (byte, error) { return 0, w.TokenWrite(2) })
	<-started
	w.Close()
	if res := await(t, done, "write to a full pipe after Close"); !errors.Is(res.err, os.ErrClosed) {
		t.Fatalf("got %v, want an error matching os.ErrClosed", res.err)
	}
	if !r.IsOpen() {
		t.Fatal("the read end was closed")
	}
}

// userfaultfd(2) ioctls, as <linux/userfaultfd.h> defines them with the
// generic _IOWR encoding (x86, arm, arm64, riscv64, loong64, s390x). Where
// the encoding differs (mips, ppc64) the kernel refuses them, and the test
// that needs them skips, saying so.
const (
	uffdAPI          = 0xAA
	uffdioAPI        = 0xc018aa3f // _IOWR(0xAA, 0x3F, struct uffdio_api)
	uffdioRegister   = 0xc020aa00 // _IOWR(0xAA, 0x00, struct uffdio_register)
	uffdioZeropage   = 0xc020aa04 // _IOWR(0xAA, 0x04, struct uffdio_zeropage)
	uffdRegisterMiss = 1          // UFFDIO_REGISTER_MODE_MISSING
)

// How long lock-the-pipe waits for the parent to say that its garbage
// collection is done before it lets the pipe go anyway: a hang guard only.
const lockGuard = 5 * time.Second

func init() {
	// lock-the-pipe writes to its end from a page that is not there yet and
	// that userfaultfd keeps from being faulted in: the writer then sits in
	// write(2) holding the pipe's lock (pipe_write copies from the caller's
	// memory under pipe->mutex), as a peer does whose buffer is on a stalled
	// FUSE or NFS mount. It prints "holding" once the fault has been
	// reported, lets the page in when a line arrives on standard input or
	// after lockGuard, and exits 9 in the second case.
	register("lock-the-pipe", func() int {
		fd, err := strconv.Atoi(os.Getenv(endEnv))
		if err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			return 3
		}
		uffd, _, errno := syscall.Syscall(unix.SYS_USERFAULTFD, unix.O_CLOEXEC, 0, 0)
		if errno != 0 {
			fmt.Printf("no userfaultfd: %v\n", errno)
			return 0
		}
		api := [3]uint64{uffdAPI, 0, 0}
		if _, _, errno := syscall.Syscall(unix.SYS_IOCTL, uffd, uffdioAPI, uintptr(unsafe.Pointer(&api))); errno != 0 {
			fmt.Printf("no userfaultfd: UFFDIO_API: %v\n", errno)
			return 0
		}
		page := os.Getpagesize()
		mem, err := unix.Mmap(-1, 0, page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			return 1
		}
		addr := uintptr(unsafe.Pointer(&mem[0]))
		reg := [4]uint64{uint64(addr), uint64(page), uffdRegisterMiss, 0}
		if _, _, errno := syscall.Syscall(unix.SYS_IOCTL, uffd, uffdioRegister, uintptr(unsafe.Pointer(&reg))); errno != 0 {
			fmt.Printf("no userfaultfd: UFFDIO_REGISTER: %v\n", errno)
			return 0
		}
		written := make(chan error, 1)
		go func() {
			_, _, errno := syscall.Syscall(unix.SYS_WRITE, uintptr(fd), addr, 1)
			if errno != 0 {
				written <- errno
				return
			}
			written <- nil
		}()
		var msg [32]byte // struct uffd_msg: the fault, while write(2) holds the lock
		if _, err := unix.Read(int(uffd), msg[:]); err != nil {
			fmt.Fprintln(os.Stderr, "helper: reading the fault:", err)
			return 1
		}
		fmt.Println("holding")
		told := make(chan struct{})
		go func() {
			bufio.NewReader(os.Stdin).ReadString('\n')
			close(told)
		}()
		code := 0
		select {
		case <-told:
		case <-time.After(lockGuard):
			code = 9
		}
		zero := [4]uint64{uint64(addr), uint64(page), 0, 0}
		if _, _, errno := syscall.Syscall(unix.SYS_IOCTL, uffd, uffdioZeropage, uintptr(unsafe.Pointer(&zero))); errno != 0 {
			fmt.Fprintln(os.Stderr, "helper: UFFDIO_ZEROPAGE:", errno)
			return 1
		}
		if err := <-written; err != nil {
			fmt.Fprintln(os.Stderr, "helper: write:", err)
			return 1
		}
		return code
	})
}

// O_NONBLOCK does not keep read(2) on a pipe from sleeping: it first takes
// the pipe's lock, which a peer holds for as long as its own read or write
// takes to copy from or to its memory, and that can take forever (a page on
// a stalled FUSE or NFS mount, or here one that userfaultfd holds back). A
// read that waits there must not keep the rest of the process from running:
// a garbage collection, which stops the world, has to finish meanwhile.
// A raw system call holds its P while in the kernel, so with one the
// collection waited for the peer, and so did every goroutine.
func TestReadWaitingForThePipeLockLetsTheProcessRun(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		t.Skip("needs a second P to watch the reader from (GOMAXPROCS < 2)")
	}
	r, w := mustMake(t)
	cmd := helperCommand(t, "lock-the-pipe")
	if err := w.ExportTo(cmd, endEnv); err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	err = cmd.Start()
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	reapAtEnd(t, cmd, os.Kill)
	t.Cleanup(func() { stdin.Close() }) // before the kill: the helper may end by itself
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("lock-the-pipe: %v", err)
	}
	if strings.HasPrefix(line, "no userfaultfd") {
		t.Skipf("cannot hold a pipe's lock from a child here: %s", strings.TrimSpace(line))
	}

	// The reader, on a thread of its own, so that the kernel can tell when
	// it sits in read(2).
	tids := make(chan int, 1)
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		tids <- unix.Gettid()
		tok, err := r.TokenRead()
		done <- result{tok, err}
	}()
	tid := <-tids
	// /proc/self/task/TID/syscall starts with the number of the system call
	// a blocked thread is in.
	inRead := strconv.Itoa(unix.SYS_READ) + " "
	for guard := time.Now().Add(hangGuard); ; {
		b, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/syscall", tid))
		if err != nil {
			t.Skipf("cannot see which system call a thread is in: %v", err)
		}
		if strings.HasPrefix(string(b), inRead) {
			break
		}
		if time.Now().After(guard) {
			t.Fatalf("the reader never sat in read(2): %q", b)
		}
		runtime.Gosched()
	}

	runtime.GC() // stops the world
	fmt.Fprintln(stdin, "collected")
	res := <-done
	if res.err != nil || res.tok != 0 {
		t.Errorf("TokenRead: (%d, %v), want the zero page's (0, nil)", res.tok, res.err)
	}
	if err := cmd.Wait(); err != nil && !errors.As(err, new(*exec.ExitError)) {
		t.Fatal(err)
	}
	exit := cmd.ProcessState
	if exit.ExitCode() == 9 {
		t.Fatalf("a garbage collection could not finish (nor could any goroutine run) until the peer let go of the pipe's lock, %v later: the read waiting for the lock held its P", lockGuard)
	}
	if !exit.Success() {
		t.Fatalf("lock-the-pipe: %v", exit)
	}
}
