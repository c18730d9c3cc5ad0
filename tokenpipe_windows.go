package tokenpipe

import (
	"errors"
	"io"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"
)

// sysFile is an open pipe end: an anonymous pipe handle used with synchronous
// ReadFile and WriteFile, on which CancelIoEx interrupts a pending call.
//
// Why synchronous: a handle opened for overlapped I/O can join the runtime's
// completion port (Go 1.25 and later), which gives deadlines for free, but a
// handle belongs to one completion port for life, so an end handed to a Go
// child could not join the child's, and a child not written in Go expects
// plain ReadFile and WriteFile to work. Synchronous ends hand off both ways.
//
// Why not *os.File: its Close calls CancelIoEx once and then waits for the
// pending read, which hangs if the reader had checked the handle but not yet
// entered ReadFile. sysFile counts its calls under way and keeps cancelling
// until they have all returned, and only then closes the handle, so
// CancelIoEx never lands on a handle value that was closed and reused.
type sysFile struct {
	h windows.Handle

	mu          sync.Mutex
	idle        sync.Cond // broadcast when inflight drops or cancelling ends
	inflight    int       // ReadFile and WriteFile calls under way
	reads       int       // of which ReadFile
	closing     bool
	exported    bool
	interrupted bool
	cancelling  bool // cancelLoop is running

	cleanup runtime.Cleanup // closes h if the end is dropped unclosed
}

// scratch is the memory one system call reads or writes a token through.
type scratch struct {
	busy atomic.Bool
	b    [1]byte
	n    uint32 // bytes that ReadFile or WriteFile transferred
}

// claim returns s if it is free, or else a new scratch. (On Unix a read
// knows from the end's count of calls under way whether it is alone, and
// needs no claim: see sysFile.enter.)
func (s *scratch) claim() *scratch {
	if s.busy.CompareAndSwap(false, true) {
		return s
	}
	return new(scratch)
}

// release frees what claim returned.
func (s *scratch) release(claimed *scratch) {
	if claimed == s {
		s.busy.Store(false)
	}
}

func makePipe() (r, w *sysFile, err error) {
	var rh, wh windows.Handle
	// A nil SECURITY_ATTRIBUTES makes both handles not inheritable.
	if err := windows.CreatePipe(&rh, &wh, nil, 0); err != nil {
		return nil, nil, os.NewSyscallError("CreatePipe", err)
	}
	return newSysFile(rh), newSysFile(wh), nil
}

func newSysFile(h windows.Handle) *sysFile {
	s := &sysFile{h: h}
	s.idle.L = &s.mu
	s.cleanup = runtime.AddCleanup(s, func(h windows.Handle) {
		windows.CloseHandle(h)
		disown(uintptr(h))
	}, h)
	return s
}

func (s *sysFile) handle() uintptr { return uintptr(s.h) }

func (s *sysFile) read(rs *scratch) (byte, error) {
	b := rs.claim()
	defer rs.release(b)
	for {
		if err := s.enter(true); err != nil {
			return 0, err
		}
		b.n = 0
		err := windows.ReadFile(s.h, b.b[:], &b.n, nil)
		shut, interrupted := s.leave(true)
		switch {
		case (err == nil || err == windows.ERROR_MORE_DATA) && b.n == 1:
			// ERROR_MORE_DATA comes from a pipe of message type in
			// message-read mode, as a C or .NET parent may create (or any
			// holder of the handle with FILE_WRITE_ATTRIBUTES may set, also
			// after FromEnv): ReadFile took one byte of a longer message and
			// left the rest for the next reads. That byte is a
			// token, and the rest are the tokens after it, just as in
			// byte-read mode; refusing such pipes in FromEnv instead could
			// not cover a mode set later. "If the specified number of bytes
			// to read is less than the size of the next message, the
			// function reads as much of the message as possible ... The
			// remainder of the message can be read using another read
			// operation":
			// https://learn.microsoft.com/windows/win32/ipc/named-pipe-type-read-and-wait-modes
			// (and ReadFile's "Pipes" remarks). An empty message completes
			// ReadFile with nothing read, like a zero-byte write below.
			// TestMessageModePipe.
			return b.b[0], nil
		case err == windows.ERROR_BROKEN_PIPE:
			return 0, io.EOF // every write handle is closed
		case err == windows.ERROR_NO_DATA:
			// Only a pipe in no-wait mode says this of a read; FromEnv
			// refuses those, but the mode can be changed later from outside.
			return 0, errNoWait
		case err == windows.ERROR_OPERATION_ABORTED && shut != nil:
			return 0, shut
		case err == windows.ERROR_OPERATION_ABORTED && interrupted:
			return 0, errInterrupted
		case err != nil && err != windows.ERROR_OPERATION_ABORTED:
			return 0, err
		}
		// A zero-byte write at the other end completes ReadFile with nothing
		// read, and an abort whose cause is over leaves nothing to report.
	}
}

// On a pipe of message type each WriteFile is one message ("the system
// treats the bytes written in each write operation to the pipe as a message
// unit", in blocking-wait mode whole:
// https://learn.microsoft.com/windows/win32/ipc/named-pipe-type-read-and-wait-modes),
// so a token is a message of its own and Ready's report one message, which
// a peer reading in message-read mode gets whole; only a call cancelled
// part-way, which is written on from where it stopped, splits p in two.
// TestMessageModePipe.
func (s *sysFile) write(p []byte, ws *scratch) error {
	b := ws.claim() // WriteFile needs somewhere to report the count
	defer ws.release(b)
	for len(p) > 0 {
		if err := s.enter(false); err != nil {
			return err
		}
		b.n = 0
		err := windows.WriteFile(s.h, p, &b.n, nil)
		shut, _ := s.leave(false)
		// What went into the pipe stays there, also from a call that was
		// cancelled part-way: write on from after it, never again.
		p = p[min(int(b.n), len(p)):]
		switch {
		case err == nil && b.n > 0:
		case err == nil:
			// A pipe in no-wait mode that is full takes nothing and says
			// nothing; retrying would spin.
			return errNoWait
		case err == windows.ERROR_OPERATION_ABORTED && shut != nil:
			return shut
		case err != nil && err != windows.ERROR_OPERATION_ABORTED:
			return err
		}
		// Aborted by an interrupt meant for readers of this handle: what
		// was not written is written again.
	}
	return nil
}

func (s *sysFile) pending() bool {
	if s.enter(false) != nil {
		return false
	}
	defer s.leave(false)
	var avail uint32
	ok, _, err := procPeekNamedPipe.Call(uintptr(s.h), 0, 0, 0, uintptr(unsafe.Pointer(&avail)), 0)
	if ok == 0 {
		return err == windows.ERROR_BROKEN_PIPE // every write handle is closed
	}
	return avail > 0
}

// procPeekNamedPipe is PeekNamedPipe, which x/sys/windows lacks; it works on
// anonymous pipes too:
// https://learn.microsoft.com/windows/win32/api/namedpipeapi/nf-namedpipeapi-peeknamedpipe
var procPeekNamedPipe = windows.NewLazySystemDLL("kernel32.dll").NewProc("PeekNamedPipe")

func (s *sysFile) setInterrupted(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.interrupted = on
	s.startCancelling()
}

func (s *sysFile) close() error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return nil
	}
	s.closing = true
	s.waitIdle()
	s.mu.Unlock()
	s.cleanup.Stop()
	err := windows.CloseHandle(s.h)
	disown(uintptr(s.h))
	return os.NewSyscallError("CloseHandle", err)
}

// waitIdle cancels the calls under way and waits until they have returned
// and cancelLoop has stopped, so that no CancelIoEx can land on the handle
// later. s.mu must be held.
func (s *sysFile) waitIdle() {
	s.startCancelling()
	for s.inflight > 0 || s.cancelling {
		s.idle.Wait()
	}
}

func isBrokenPipe(err error) bool {
	// WriteFile fails with ERROR_NO_DATA ("the pipe is being closed") once the
	// read handle is closed; ERROR_BROKEN_PIPE is the same news, worded so by
	// some Windows versions and by Wine.
	return err == windows.ERROR_NO_DATA || err == windows.ERROR_BROKEN_PIPE
}

// errNoWait is what a read or write returns on a pipe that was put in
// no-wait mode (PIPE_NOWAIT) after FromEnv took it.
var errNoWait = errors.New("the pipe is in no-wait mode (PIPE_NOWAIT), in which no call can wait for a token")

// enter registers a call under way, or says why none may start.
func (s *sysFile) enter(read bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.shutError(); err != nil {
		return err
	}
	if read && s.interrupted {
		return errInterrupted
	}
	s.inflight++
	if read {
		s.reads++
	}
	return nil
}

// leave unregisters a call and reports why it might have been cancelled: the
// error for a closed or exported end, and whether reads are interrupted.
func (s *sysFile) leave(read bool) (shut error, interrupted bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if read {
		s.reads--
	}
	if s.inflight--; s.inflight == 0 {
		s.idle.Broadcast()
	}
	return s.shutError(), s.interrupted
}

// shutError says why no call may start: os.ErrClosed once close has begun,
// ErrExported once export has, nil otherwise. s.mu must be held.
func (s *sysFile) shutError() error {
	switch {
	case s.closing:
		return os.ErrClosed
	case s.exported:
		return ErrExported
	}
	return nil
}

// startCancelling starts cancelLoop if calls under way must be cancelled.
// s.mu must be held.
func (s *sysFile) startCancelling() {
	if !s.cancelling && s.mustCancel() {
		s.cancelling = true
		go s.cancelLoop()
	}
}

// mustCancel reports whether calls under way must be cancelled: every call
// once the end is shut; for an interrupt, only while a read is under way,
// lest CancelIoEx, which cancels every call on the handle, abort a write
// part-way for nothing (and Wine then reports no bytes written, although
// some went into the pipe).
func (s *sysFile) mustCancel() bool {
	return s.inflight > 0 && (s.closing || s.exported) || s.reads > 0 && s.interrupted
}

// cancelLoop calls CancelIoEx until no call that must end is under way.
//
// It has to repeat: a caller counted in inflight may not have entered ReadFile
// yet when CancelIoEx runs, which then cancels nothing, and Windows offers no
// way to learn when a thread has entered a synchronous call. Each round is
// cheap and the rounds stop as soon as the calls have returned. The handle
// stays open meanwhile: close waits for this loop to end.
func (s *sysFile) cancelLoop() {
	delay := 20 * time.Microsecond
	for {
		s.mu.Lock()
		if !s.mustCancel() {
			s.cancelling = false
			s.idle.Broadcast()
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		windows.CancelIoEx(s.h, nil) // ERROR_NOT_FOUND when nothing was pending
		time.Sleep(delay)
		delay = min(2*delay, 5*time.Millisecond)
	}
}
