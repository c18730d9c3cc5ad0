//go:build unix

package tokenpipe

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// notifySupported reports whether this platform has sd_notify sockets.
const notifySupported = true

// notifySendTimeout bounds how long sendNotify waits for room in a receiver's
// queue. A datagram socket's queue fills only when its reader has stopped
// reading (Linux queues net.unix.max_dgram_qlen datagrams), so this is about
// a dead receiver, never a slow one.
const notifySendTimeout = 5 * time.Second

// maxSocketPath is the longest socket path that fits sockaddr_un's sun_path
// with its terminating NUL: 107 bytes on Linux, 103 on the BSDs and macOS.
// libsystemd refuses a NOTIFY_SOCKET path that leaves no room for the NUL.
// An abstract name needs none: its '@', which stands for a leading NUL,
// and up to 107 more bytes fill sun_path (unix(7); Go's net package and
// libsystemd take those too; TestSendNotifyAbstract).
var maxSocketPath = len(unix.RawSockaddrUnix{}.Path) - 1

// sendNotify sends msg as one datagram to the socket addr names: an absolute
// path or, on Linux, an abstract name written with a leading '@'. It never
// waits for an answer (start-stop-daemon answers no BARRIER=1), and blocks
// only while the receiver's queue is full, for at most notifySendTimeout.
// Errors name addr.
func sendNotify(addr string, msg []byte) error {
	fail := func(err error) error {
		return fmt.Errorf("%s=%q: %w", notifySocketEnv, addr, err)
	}
	switch {
	case strings.HasPrefix(addr, "@") && runtime.GOOS == "linux":
		// Go's net package writes a leading '@' as the abstract
		// namespace's leading NUL, as libsystemd does.
	case strings.HasPrefix(addr, "/"):
	case strings.HasPrefix(addr, "@"):
		return fail(fmt.Errorf("abstract socket names exist only on Linux: %w", errors.ErrUnsupported))
	default:
		// systemd 253 and later also accept vsock:CID:PORT, for virtual
		// machines; not supported here.
		return fail(fmt.Errorf("not an absolute path or an abstract @name: %w", os.ErrInvalid))
	}
	limit := maxSocketPath
	if addr[0] == '@' {
		limit++
	}
	if len(addr) > limit {
		return fail(fmt.Errorf("longer than the %d bytes a socket address holds: %w", limit, os.ErrInvalid))
	}
	// The net package makes the socket close-on-exec and non-blocking, so a
	// deadline can bound the send.
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return fail(err)
	}
	defer conn.Close()
	conn.SetWriteDeadline(time.Now().Add(notifySendTimeout))
	if _, err := conn.Write(msg); err != nil {
		return fail(err)
	}
	return nil
}

// notifyListener is a datagram socket that a child reports to with
// sd_notify, in a directory of its own, and the goroutine that reads it.
type notifyListener struct {
	conn *net.UnixConn
	dir  string // the private directory holding the socket
	addr string // the socket's path: the child's NOTIFY_SOCKET

	decision chan notifyResult // receives the first result that decides, once
	draining atomic.Bool       // set by drain: read what is queued, then stop
	done     chan struct{}     // closed when the receive goroutine has returned

	closeOnce sync.Once
	closeErr  error
}

// listenNotify makes a private directory (mode 0700) and a datagram socket in
// it, and starts reading reports from the socket. Every descriptor a datagram
// carries is closed at once, so that a sender waiting for BARRIER=1 goes on;
// datagrams from another user (checked on Linux, where the kernel attaches
// the sender's credentials) and truncated datagrams are dropped. The caller
// must call close, which removes socket and directory.
func listenNotify() (*notifyListener, error) {
	dir, err := makeSocketDir()
	if err != nil {
		return nil, err
	}
	addr := filepath.Join(dir, "notify")
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		// Before bind, so that no datagram arrives without credentials.
		return passCredentials(c)
	}}
	pc, err := lc.ListenPacket(context.Background(), "unixgram", addr)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("listening for sd_notify reports: %w", err)
	}
	conn := pc.(*net.UnixConn)
	rc, err := conn.SyscallConn()
	if err != nil {
		conn.Close()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("listening for sd_notify reports: %w", err)
	}
	l := &notifyListener{
		conn:     conn,
		dir:      dir,
		addr:     addr,
		decision: make(chan notifyResult, 1),
		done:     make(chan struct{}),
	}
	go l.receive(rc)
	return l, nil
}

// makeSocketDir makes a new private directory whose socket path fits
// sun_path: in os.TempDir() if that is short enough, or else in /tmp.
func makeSocketDir() (string, error) {
	// os.MkdirTemp adds up to 10 digits to the pattern.
	const tail = "/tokenpipe-1234567890/notify"
	// A relative TMPDIR would give a NOTIFY_SOCKET that sd_notify senders
	// refuse (they take only absolute paths and @names) and that names
	// another place from the child's working directory.
	base := os.TempDir()
	if !filepath.IsAbs(base) || len(base)+len(tail) > maxSocketPath {
		base = "/tmp"
	}
	dir, err := os.MkdirTemp(base, "tokenpipe-") // mode 0700
	if err != nil && base != "/tmp" {
		// TMPDIR is missing or not writable: the pipe alone would still
		// work, so try harder than failing every StartAndWait.
		dir, err = os.MkdirTemp("/tmp", "tokenpipe-")
	}
	if err != nil {
		return "", fmt.Errorf("making a directory for the sd_notify socket: %w", err)
	}
	if len(dir)+len("/notify") > maxSocketPath {
		os.Remove(dir)
		return "", fmt.Errorf("making a directory for the sd_notify socket: %s/notify is longer than the %d bytes a socket address holds: %w", dir, maxSocketPath, os.ErrInvalid)
	}
	return dir, nil
}

// oobSize is room for the sender's credentials and the most descriptors one
// datagram can carry (Linux's SCM_MAX_FD, 253), so that none is cut off.
var oobSize = unix.CmsgSpace(credentialsSize) + unix.CmsgSpace(253*4)

// receive reads datagrams until the socket is closed, or until drain asks
// it to read what is queued and stop.
func (l *notifyListener) receive(rc syscall.RawConn) {
	defer close(l.done)
	r := receiver{
		// One byte more than a message may hold, to tell a message that
		// fills the buffer from a longer one where MSG_TRUNC is not reported.
		buf: make([]byte, maxNotifyMessage+1),
		oob: make([]byte, oobSize),
		uid: os.Getuid(),
		l:   l,
	}
	var got bool // whether the last recvmsg got a datagram (or failed)
	recv := func(fd uintptr) bool {
		got = r.recv(fd)
		return got // false: wait until the socket is readable
	}
	for {
		err := rc.Read(recv)
		switch {
		case err == nil && got:
			if !r.handle() {
				return
			}
			continue
		case errors.Is(err, os.ErrDeadlineExceeded) && l.draining.Load():
		default:
			return // closed
		}
		// Drain: what a child sent before it exited is queued by now; read
		// it without waiting for more.
		// Bounded, and done once decided: a process that still holds
		// NOTIFY_SOCKET (a grandchild) could otherwise keep the queue from
		// ever emptying. maxDrained is more than a socket queues
		// (net.unix.max_dgram_qlen, 512 by default).
		rc.Control(func(fd uintptr) {
			for i := 0; i < maxDrained && !r.decided && r.recv(fd) && r.handle(); i++ {
			}
		})
		return
	}
}

// maxDrained bounds how many datagrams drain reads.
const maxDrained = 1024

// receiver is the state of the receive goroutine.
type receiver struct {
	buf, oob       []byte
	n, oobn, flags int
	err            error // from recvmsg, other than EAGAIN
	uid            int
	state          notifyState
	decided        bool
	l              *notifyListener
}

// recv receives one datagram without waiting: false when none is queued.
func (r *receiver) recv(fd uintptr) bool {
	for {
		var err error
		r.n, r.oobn, r.flags, _, err = unix.Recvmsg(int(fd), r.buf, r.oob, recvFlags)
		switch err {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		r.err = err
		return true
	}
}

// handle takes in what recv received, and reports false if it was an error
// that ends the reading (after sending it as the result, unless one was sent).
func (r *receiver) handle() bool {
	if r.err != nil {
		if !r.decided {
			r.decided = true
			r.l.decision <- notifyResult{err: fmt.Errorf("reading sd_notify reports from %s: %w", r.l.addr, os.NewSyscallError("recvmsg", r.err))}
		}
		return false
	}
	sender, known := closeRightsAndCheckSender(r.oob[:r.oobn])
	if !known || sender != r.uid || r.flags&unix.MSG_TRUNC != 0 || r.n > maxNotifyMessage {
		return true
	}
	r.state.parse(r.buf[:r.n])
	if !r.decided && r.state.decided() {
		r.decided = true
		r.l.decision <- notifyResult{state: r.state}
	}
	return true
}

// closeRightsAndCheckSender closes every descriptor in the control messages
// oob holds, also those of a message that was cut short, and returns the
// sender's user id, with ok false when credentials are required but missing.
func closeRightsAndCheckSender(oob []byte) (uid int, ok bool) {
	uid, ok = os.Getuid(), !credentialsRequired
	hdrLen := unix.CmsgLen(0)
	for len(oob) >= hdrLen {
		h := cmsgHeader(oob)
		msgLen := int(h.Len)
		if msgLen < hdrLen {
			break // malformed: nothing more can be found
		}
		data := oob[hdrLen:min(msgLen, len(oob))]
		switch {
		case h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_RIGHTS:
			for len(data) >= 4 {
				unix.Close(int(nativeInt32(data)))
				data = data[4:]
			}
		default:
			if sender, isCred := parseCredentials(h, data); isCred {
				uid, ok = sender, true
			}
		}
		next := unix.CmsgSpace(msgLen - hdrLen)
		if next >= len(oob) {
			break
		}
		oob = oob[next:]
	}
	return uid, ok
}

// drain makes the receive goroutine read every datagram queued now, send
// its result if they decide, and stop; it returns once the goroutine has.
// Whatever a child sent before it exited is queued once its exit is seen
// (a datagram is queued by the sender's send), so after drain an undecided
// listener means the child said nothing decisive. Call close afterwards.
func (l *notifyListener) drain() {
	l.draining.Store(true)
	l.conn.SetReadDeadline(time.Unix(1, 0)) // wakes the goroutine
	<-l.done
}

// close stops the receive goroutine and closes the socket, then removes
// the socket and its directory. It is idempotent.
func (l *notifyListener) close() error {
	l.closeOnce.Do(func() {
		err := l.conn.Close()
		<-l.done
		// The child, being the same user, may have changed the directory's
		// mode or put files in it; neither may keep it from going.
		os.Chmod(l.dir, 0o700)
		if rmErr := os.RemoveAll(l.dir); rmErr != nil {
			err = errors.Join(err, rmErr)
		}
		if err != nil {
			l.closeErr = fmt.Errorf("closing the sd_notify socket %s: %w", l.addr, err)
		}
	})
	return l.closeErr
}

// cmsgHeader returns the control message header at the start of b, which
// holds at least unix.CmsgLen(0) bytes at an offset the kernel aligned.
func cmsgHeader(b []byte) *unix.Cmsghdr {
	return (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
}

// nativeInt32 reads a descriptor number as the kernel wrote it.
func nativeInt32(b []byte) int32 {
	return int32(binary.NativeEndian.Uint32(b))
}

// errnoOf returns the errno that Fail sends for reason: reason's own, where
// it wraps a syscall.Errno, or else failErrno.
func errnoOf(reason error) int {
	var errno syscall.Errno
	if errors.As(reason, &errno) && errno != 0 {
		return int(errno)
	}
	return failErrno
}

// errnoError returns the error an ERRNO= value stands for.
func errnoError(n int) error { return syscall.Errno(n) }
