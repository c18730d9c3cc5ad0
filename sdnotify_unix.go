//go:build unix

package tokenpipe

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
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
	conn    *net.UnixConn
	dir     string   // the private directory holding the socket
	dirFile *os.File // dir, held open: what dir named when it was made
	root    *os.Root // the same, for what it holds
	addr    string   // the socket's path: the child's NOTIFY_SOCKET

	owner, peer int // the users whose datagrams count (peer -1: none other)

	decision chan notifyResult // receives the first result that decides, once
	draining atomic.Bool       // set by drain: read what is queued, then stop
	stop     chan struct{}     // closed by drain and close
	stopOnce sync.Once
	done     chan struct{} // closed when the receive goroutine has returned
	closer   fdCloser      // closes the descriptors datagrams carry

	closeOnce sync.Once
	closeErr  error
}

// listenNotify makes a private directory (mode 0700) and a datagram socket in
// it, and starts reading reports from the socket. When attr makes the child
// run as another user, the directory and socket are handed to that user, as
// start-stop-daemon --chuid does, and that user's datagrams count too.
// Every descriptor a datagram carries is closed, in a goroutine of its own;
// datagrams from other users (checked on Linux, where the kernel attaches
// the sender's credentials) and truncated datagrams are dropped. The caller
// must call close, which removes socket and directory.
func listenNotify(attr *syscall.SysProcAttr) (*notifyListener, error) {
	dir, dirFile, root, err := makeSocketDir()
	if err != nil {
		return nil, err
	}
	l := &notifyListener{
		dir:      dir,
		dirFile:  dirFile,
		root:     root,
		addr:     filepath.Join(dir, "notify"),
		owner:    os.Getuid(),
		peer:     -1,
		decision: make(chan notifyResult, 1),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		closer:   fdCloser{progress: make(chan struct{}, 1)},
	}
	if err := l.listen(attr); err != nil {
		close(l.done)
		return nil, errors.Join(err, l.close())
	}
	return l, nil
}

// listen binds the socket, hands it to the child's user if that is another,
// and starts the receive goroutine.
func (l *notifyListener) listen(attr *syscall.SysProcAttr) error {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		// Before bind, so that no datagram arrives without credentials.
		return passCredentials(c)
	}}
	pc, err := lc.ListenPacket(context.Background(), "unixgram", l.addr)
	if err != nil {
		return fmt.Errorf("listening for sd_notify reports: %w", err)
	}
	l.conn = pc.(*net.UnixConn)
	rc, err := l.conn.SyscallConn()
	if err != nil {
		return fmt.Errorf("listening for sd_notify reports: %w", err)
	}
	if uid, gid, ok := childIDs(attr); ok && uid != l.owner {
		// The socket first: until the directory is handed over, nobody
		// but this process can reach either.
		if err := errors.Join(l.root.Lchown("notify", uid, gid), l.root.Chown(".", uid, gid)); err != nil {
			return fmt.Errorf("handing the sd_notify socket to the child's user %d: %w", uid, err)
		}
		l.peer = uid
	}
	go l.receive(rc)
	return nil
}

// makeSocketDir makes a new private directory whose socket path fits
// sun_path, in os.TempDir() if that is short enough, or else in /tmp, and
// opens it, as a file and as a Root.
func makeSocketDir() (string, *os.File, *os.Root, error) {
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
		return "", nil, nil, fmt.Errorf("making a directory for the sd_notify socket: %w", err)
	}
	if len(dir)+len("/notify") > maxSocketPath {
		os.Remove(dir)
		return "", nil, nil, fmt.Errorf("making a directory for the sd_notify socket: %s/notify is longer than the %d bytes a socket address holds: %w", dir, maxSocketPath, os.ErrInvalid)
	}
	f, root, err := openDir(dir)
	if err != nil {
		os.Remove(dir)
		return "", nil, nil, fmt.Errorf("making a directory for the sd_notify socket: %w", err)
	}
	return dir, f, root, nil
}

// openDir opens dir as a file (for fchmod, which needs no search permission
// on it) and as a Root, and checks that both are the same directory.
func openDir(dir string) (*os.File, *os.Root, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, os.NewSyscallError("open", err)
	}
	f := os.NewFile(uintptr(fd), dir)
	root, err := os.OpenRoot(dir)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	fi, err1 := f.Stat()
	ri, err2 := root.Stat(".")
	if err1 != nil || err2 != nil || !os.SameFile(fi, ri) {
		f.Close()
		root.Close()
		return nil, nil, fmt.Errorf("%s changed while it was opened: %w", dir, os.ErrExist)
	}
	return f, root, nil
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
		l:   l,
	}
	var got bool // whether the last recvmsg got a datagram (or failed)
	recv := func(fd uintptr) bool {
		got = r.recv(fd)
		return got // false: wait until the socket is readable
	}
	for l.closer.waitForRoom(l.stop) {
		if err := rc.Read(recv); err != nil || !got || !r.handle() {
			break // closed, drained (a deadline in the past), or unreadable
		}
	}
	if !l.draining.Load() {
		return // closed: what is still queued is dropped with the socket
	}
	// Drain: what a child sent before it exited is queued by now; read it
	// without waiting for more. Bounded, and done once decided: a process
	// that still holds NOTIFY_SOCKET (a grandchild) could otherwise keep the
	// queue from ever emptying. maxDrained is more than a socket queues
	// (net.unix.max_dgram_qlen, 512 by default). Closes that block hold the
	// drain for at most maxWaitForCloses.
	giveUp := time.Now().Add(maxWaitForCloses)
	rc.Control(func(fd uintptr) {
		for i := 0; i < maxDrained && !r.decided && l.closer.roomBy(giveUp) && r.recv(fd) && r.handle(); i++ {
		}
	})
}

// maxDrained bounds how many datagrams drain and closeSocket read, and
// maxWaitForCloses how long drain and close wait for closes that block:
// those of received descriptors (drain waits for room), and those the
// kernel makes in the thread that receives (what it cannot install, when
// this process's descriptor table is full) or closes the socket (what is
// still queued).
const (
	maxDrained       = 1024
	maxWaitForCloses = time.Second
)

// receiver is the state of the receive goroutine.
type receiver struct {
	buf, oob       []byte
	n, oobn, flags int
	err            error // from recvmsg, other than EAGAIN
	fds            []int // the descriptors the datagram carried
	sender         int   // the sender's user id, or -1 if not known
	state          notifyState
	decided        bool
	l              *notifyListener
}

// recv receives one datagram without waiting: false when none is queued.
func (r *receiver) recv(fd uintptr) bool {
	if recvFlags == 0 {
		// No MSG_CMSG_CLOEXEC here: hold ForkLock until the descriptors
		// received are close-on-exec, as os does for pipe(2), so that no
		// child started meanwhile inherits them.
		syscall.ForkLock.RLock()
		defer syscall.ForkLock.RUnlock()
	}
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
		r.fds, r.sender = readControl(r.oob[:r.oobn], r.fds[:0])
		if recvFlags == 0 {
			for _, fd := range r.fds {
				unix.CloseOnExec(fd)
			}
		}
		return true
	}
}

// handle takes in what recv received, and reports false if it was an error
// that ends the reading (after sending it as the result, unless one was sent).
// What a datagram says counts before its descriptors are closed, and
// nothing waits for them to close: close(2) blocks for as long as the
// sender likes (a TCP socket with SO_LINGER and unsent data blocks its last
// close for the linger time), and a ready daemon must not be taken for a
// hung one meanwhile (TestStartAndWaitBlockingDescriptor).
func (r *receiver) handle() bool {
	defer r.l.closer.add(r.fds)
	if testHookReceived != nil {
		testHookReceived()
	}
	if r.err != nil {
		if !r.decided {
			r.decided = true
			r.l.decision <- notifyResult{err: fmt.Errorf("reading sd_notify reports from %s: %w", r.l.addr, os.NewSyscallError("recvmsg", r.err))}
		}
		return false
	}
	if !r.l.accepts(r.sender) || r.flags&unix.MSG_TRUNC != 0 || r.n > maxNotifyMessage {
		return true
	}
	r.state.parse(r.buf[:r.n])
	if !r.decided && r.state.decided() {
		r.decided = true
		r.l.decision <- notifyResult{state: r.state}
	}
	return true
}

// accepts reports whether a datagram from sender (-1: not known) counts.
func (l *notifyListener) accepts(sender int) bool {
	if sender < 0 {
		return !credentialsRequired
	}
	return sender == l.owner || sender == l.peer
}

// testHookReceived, if set, is called for each datagram received, before it
// is handled.
var testHookReceived func()

// readControl appends to fds every descriptor in the control messages oob
// holds, also those of a message that was cut short, and returns them with
// the sender's user id, or -1 where the datagram carries no credentials.
func readControl(oob []byte, fds []int) ([]int, int) {
	sender := -1
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
			for ; len(data) >= 4; data = data[4:] {
				fds = append(fds, int(nativeInt32(data)))
			}
		default:
			if uid, isCred := parseCredentials(h, data); isCred {
				sender = uid
			}
		}
		next := unix.CmsgSpace(msgLen - hdrLen)
		if next >= len(oob) {
			break
		}
		oob = oob[next:]
	}
	return fds, sender
}

// fdCloser closes descriptors in goroutines that nothing waits for:
// close(2) may block for as long as whoever sent a descriptor likes (a TCP
// socket with SO_LINGER and unsent data), and a blocked close holds its
// thread. maxClosers close at once, so that one blocked close does not hold
// the rest, and a child cannot make this process start threads without
// bound (Go's thread limit is fatal). While maxHeldDescriptors wait to be
// closed, the listener receives no more: the child's datagrams, and the
// descriptors they carry, wait in the socket's queue, not in this process's
// descriptor table (TestStartAndWaitBlockedCloseHoldsNoMore).
type fdCloser struct {
	mu       sync.Mutex
	queue    []int
	pending  int           // descriptors queued or being closed
	workers  int           // goroutines closing them
	progress chan struct{} // receives after a close (buffered: one)
}

const (
	maxClosers = 4
	// maxHeldDescriptors is how many received descriptors may wait to be
	// closed before the listener stops receiving; one datagram may bring
	// 253 more.
	maxHeldDescriptors = 256
)

// add queues fds to be closed, and starts closing goroutines for them.
func (c *fdCloser) add(fds []int) {
	if len(fds) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.queue = append(c.queue, fds...)
	c.pending += len(fds)
	for c.workers < maxClosers && c.workers < len(c.queue) {
		c.workers++
		go c.run()
	}
}

// run closes what is queued until the queue is empty.
func (c *fdCloser) run() {
	for {
		c.mu.Lock()
		if len(c.queue) == 0 {
			c.workers--
			c.mu.Unlock()
			return
		}
		fd := c.queue[0]
		c.queue = c.queue[1:]
		c.mu.Unlock()
		unix.Close(fd)
		c.mu.Lock()
		c.pending--
		c.mu.Unlock()
		select {
		case c.progress <- struct{}{}:
		default:
		}
	}
}

// hasRoom reports whether fewer than maxHeldDescriptors wait to be closed.
func (c *fdCloser) hasRoom() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pending < maxHeldDescriptors
}

// waitForRoom waits until hasRoom, and reports true, or until stop is
// closed, and reports false.
func (c *fdCloser) waitForRoom(stop <-chan struct{}) bool {
	for {
		select {
		case <-stop:
			return false
		default:
		}
		if c.hasRoom() {
			return true
		}
		select {
		case <-c.progress:
		case <-stop:
			return false
		}
	}
}

// roomBy waits until hasRoom, or until the time giveUp; it reports hasRoom.
func (c *fdCloser) roomBy(giveUp time.Time) bool {
	for !c.hasRoom() {
		timer := time.NewTimer(time.Until(giveUp))
		select {
		case <-c.progress:
			timer.Stop()
		case <-timer.C:
			return c.hasRoom()
		}
	}
	return true
}

// drain makes the receive goroutine read every datagram queued now, send
// its result if they decide, and stop; it returns once the goroutine has,
// or after maxWaitForCloses. Whatever a child sent before it exited is
// queued once its exit is seen (a datagram is queued by the sender's send),
// so after drain an undecided listener means the child said nothing
// decisive. Call close afterwards.
func (l *notifyListener) drain() {
	l.draining.Store(true)
	l.conn.SetReadDeadline(time.Unix(1, 0)) // wakes the goroutine
	l.stopOnce.Do(func() { close(l.stop) })
	waitAtMost(l.done, maxWaitForCloses)
}

// close stops the receive goroutine and closes the socket, then removes
// the socket and its directory. It is idempotent. The goroutine's return and
// the socket's close are waited for at most maxWaitForCloses, and finish by
// themselves (TestStartAndWaitLingeringSocketPastFullTable).
func (l *notifyListener) close() error {
	l.closeOnce.Do(func() {
		l.stopOnce.Do(func() { close(l.stop) })
		var err error
		if l.conn != nil {
			l.conn.SetReadDeadline(time.Unix(1, 0)) // wakes the goroutine
			closed := make(chan error, 1)
			go func() {
				<-l.done
				closed <- l.closeSocket()
			}()
			timer := time.NewTimer(maxWaitForCloses)
			select {
			case err = <-closed:
			case <-timer.C:
			}
			timer.Stop()
		}
		if rmErr := removeSocketDir(l.dirFile, l.root, l.dir); rmErr != nil {
			err = errors.Join(err, rmErr)
		}
		if err != nil {
			l.closeErr = fmt.Errorf("closing the sd_notify socket %s: %w", l.addr, err)
		}
	})
	return l.closeErr
}

// waitAtMost waits until done is closed, or d has passed; it reports which.
func waitAtMost(done <-chan struct{}, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-done:
		return true
	case <-timer.C:
		return false
	}
}

// removeSocketDir removes dir, which f and root hold open, with all it
// holds. The child (the same user, or the one the directory was handed to)
// may have put files there, taken away its permissions or those of what it
// holds, or moved the directory away and put something else in its place: f
// and root still name the directory that was made, and root never leads out
// of it, so nothing outside it is changed, even for a parent running as
// root (TestStartAndWaitRemovesSocketDir). The directory itself is made
// writable through f, as resolving "." in root would need search
// permission on it. What a child can make it do is bounded: a directory
// holding more than maxLeftEntries entries, or deeper than maxLeftDepth
// levels, is left as it is, with an error
// (TestStartAndWaitSocketDirCleanupIsBounded).
func removeSocketDir(f *os.File, root *os.Root, dir string) error {
	defer f.Close()
	defer root.Close()
	f.Chmod(0o700)
	var names []string
	err := fs.WalkDir(root.FS(), ".", func(name string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case len(names) == maxLeftEntries || strings.Count(name, "/") >= maxLeftDepth:
			return fmt.Errorf("the child left more than %d entries, or more than %d levels deep", maxLeftEntries, maxLeftDepth)
		case name == ".":
			return nil
		case d.IsDir():
			root.Chmod(name, 0o700) // so that it can be read and emptied; before WalkDir reads it
		}
		names = append(names, name)
		return nil
	})
	for i := len(names) - 1; i >= 0 && err == nil; i-- { // children before parents
		err = root.Remove(names[i])
	}
	if err == nil {
		err = removeIfMade(root, dir)
	}
	if err != nil {
		return fmt.Errorf("removing %s: %w", dir, err)
	}
	return nil
}

// maxLeftEntries and maxLeftDepth bound what removeSocketDir removes.
const (
	maxLeftEntries = 4096
	maxLeftDepth   = 32
)

// removeIfMade removes dir, empty by now, if it is still the directory
// root holds.
func removeIfMade(root *os.Root, dir string) error {
	made, err := root.Stat(".")
	if err != nil {
		return err
	}
	if now, err := os.Lstat(dir); err != nil || !os.SameFile(made, now) {
		return fmt.Errorf("it was moved away, and is left where it went: %w", os.ErrExist)
	}
	return os.Remove(dir)
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
