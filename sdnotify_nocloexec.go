//go:build unix && !linux && !dragonfly && !freebsd && !netbsd && !openbsd

package tokenpipe

// recvFlags makes recvmsg mark the descriptors it installs close-on-exec at
// once, so that no child started meanwhile inherits them. macOS, Solaris and
// AIX have no such flag: a child started in the instant between receiving a
// descriptor and closing it could inherit it.
const recvFlags = 0
