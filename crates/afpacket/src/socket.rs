//! The AF_PACKET socket: open, filter, bind, receive with metadata, count.

use std::ffi::c_void;
use std::io;
use std::mem::{size_of, MaybeUninit};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use crate::filter::Instruction;
use crate::Error;

/// Socket options applied before the socket is bound.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Receive buffer in bytes (`SO_RCVBUFFORCE`, falling back to
    /// `SO_RCVBUF`, which `net.core.rmem_max` caps). `None` keeps the default.
    /// Default 16 MiB: the kernel charges every queued frame its full skb,
    /// however much the filter cut it.
    pub rcvbuf: Option<usize>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            rcvbuf: Some(16 << 20),
        }
    }
}

/// Metadata of one received frame; the bytes are in the caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    /// Bytes written to the buffer.
    pub len: usize,
    /// Length of the frame before the filter's snap length cut it
    /// (`tpacket_auxdata.tp_len`). Larger than `len` also when the buffer was
    /// too small.
    pub orig_len: u32,
    /// `sll_pkttype`: 0 host, 1 broadcast, 2 multicast, 3 other host, 4 outgoing.
    pub pkttype: u8,
    /// Interface the frame was seen on.
    pub ifindex: u32,
    /// Kernel receive timestamp (`SO_TIMESTAMPNS`, CLOCK_REALTIME) since the
    /// Unix epoch; `None` if the kernel sent none.
    pub ts: Option<Duration>,
}

/// PACKET_STATISTICS since the previous read (the kernel resets both).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames that passed the filter, including the dropped ones.
    pub packets: u32,
    /// Frames that passed the filter but found the receive buffer full.
    pub drops: u32,
}

/// A raw AF_PACKET socket bound to one interface with a cBPF filter.
#[derive(Debug)]
pub struct Socket {
    fd: OwnedFd,
}

/// Space for the two control messages we ask for (a `timespec` and a
/// `tpacket_auxdata`, each behind a 16-byte `cmsghdr`), 8-byte aligned as
/// `cmsghdr` requires.
const CONTROL_WORDS: usize = 16;

impl Socket {
    /// Opens a socket on interface `ifindex`, attaches `filter`, then binds.
    ///
    /// The socket is created with protocol 0 so that the kernel queues
    /// nothing before the filter is attached; binding with ETH_P_ALL starts
    /// the capture.
    pub fn open(ifindex: u32, filter: &[Instruction], options: &Options) -> Result<Socket, Error> {
        let socket = Socket::filtered(filter)?;
        socket.setsockopt(
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            &1i32,
            "setsockopt(SO_TIMESTAMPNS)",
        )?;
        socket.setsockopt(
            libc::SOL_PACKET,
            libc::PACKET_AUXDATA,
            &1i32,
            "setsockopt(PACKET_AUXDATA)",
        )?;
        if let Some(bytes) = options.rcvbuf {
            let bytes = i32::try_from(bytes).unwrap_or(i32::MAX);
            // SO_RCVBUFFORCE needs CAP_NET_ADMIN; without it the plain
            // option still gets up to net.core.rmem_max.
            if socket
                .setsockopt(
                    libc::SOL_SOCKET,
                    libc::SO_RCVBUFFORCE,
                    &bytes,
                    "setsockopt(SO_RCVBUFFORCE)",
                )
                .is_err()
            {
                socket.setsockopt(
                    libc::SOL_SOCKET,
                    libc::SO_RCVBUF,
                    &bytes,
                    "setsockopt(SO_RCVBUF)",
                )?;
            }
        }
        socket.bind(ifindex)?;
        Ok(socket)
    }

    /// A socket with `filter` attached and nothing queued yet: protocol 0
    /// until [`Socket::bind`].
    pub(crate) fn filtered(filter: &[Instruction]) -> Result<Socket, Error> {
        // SAFETY: socket(2) takes no pointers; the result is checked below.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            let source = io::Error::last_os_error();
            return Err(match source.raw_os_error() {
                Some(libc::EPERM) | Some(libc::EACCES) => Error::NeedsCapNetRaw {
                    op: "socket(AF_PACKET)",
                    source,
                },
                _ => Error::Os {
                    op: "socket(AF_PACKET)",
                    source,
                },
            });
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let socket = Socket {
            fd: unsafe { OwnedFd::from_raw_fd(raw) },
        };

        let mut code: Vec<libc::sock_filter> = filter
            .iter()
            .map(|i| libc::sock_filter {
                code: i.code,
                jt: i.jt,
                jf: i.jf,
                k: i.k,
            })
            .collect();
        let prog = libc::sock_fprog {
            len: u16::try_from(code.len()).map_err(|_| Error::Os {
                op: "setsockopt(SO_ATTACH_FILTER)",
                source: io::Error::from_raw_os_error(libc::EINVAL),
            })?,
            filter: code.as_mut_ptr(),
        };
        // The kernel copies the program during the call; `code` outlives it.
        socket.setsockopt(
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            &prog,
            "setsockopt(SO_ATTACH_FILTER)",
        )?;
        Ok(socket)
    }

    /// Binds to interface `ifindex` with ETH_P_ALL, which starts the capture.
    pub(crate) fn bind(&self, ifindex: u32) -> Result<(), Error> {
        let ifindex_c = i32::try_from(ifindex).map_err(|_| Error::Os {
            op: "bind(AF_PACKET)",
            source: io::Error::from_raw_os_error(libc::ENODEV),
        })?;
        // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        addr.sll_ifindex = ifindex_c;
        // SAFETY: `addr` is a valid sockaddr_ll and the length passed is its size.
        let rc = unsafe {
            libc::bind(
                self.fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_ll).cast::<libc::sockaddr>(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(Error::Os {
                op: "bind(AF_PACKET)",
                source: io::Error::last_os_error(),
            });
        }
        Ok(())
    }

    pub(crate) fn setsockopt<T>(
        &self,
        level: i32,
        name: i32,
        value: &T,
        op: &'static str,
    ) -> Result<(), Error> {
        // SAFETY: `value` points to a live `T` of the size passed; the kernel
        // only reads it during the call.
        let rc = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                level,
                name,
                (value as *const T).cast::<c_void>(),
                size_of::<T>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(Error::Os {
                op,
                source: io::Error::last_os_error(),
            });
        }
        Ok(())
    }

    /// Receives one frame into `buf` without blocking. `Ok(None)` when no
    /// frame is queued (or a signal interrupted the call).
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<Received>> {
        let mut addr = MaybeUninit::<libc::sockaddr_ll>::zeroed();
        let mut control = [0u64; CONTROL_WORDS];
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast::<c_void>(),
            iov_len: buf.len(),
        };
        // SAFETY: msghdr is plain data; all-zero is a valid value.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = addr.as_mut_ptr().cast::<c_void>();
        msg.msg_namelen = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast::<c_void>();
        msg.msg_controllen = std::mem::size_of_val(&control) as _;
        // SAFETY: every pointer in `msg` refers to a live local or to `buf`,
        // with the lengths set above; the kernel writes within them.
        let n = unsafe {
            libc::recvmsg(
                self.fd.as_raw_fd(),
                &mut msg,
                libc::MSG_TRUNC | libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            return match err.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
                _ => Err(err),
            };
        }
        // With MSG_TRUNC the return value is the frame's length after the
        // filter cut it, even when `buf` was smaller.
        let wire = n as usize;
        // SAFETY: the kernel filled the sockaddr_ll (it was zeroed before, so
        // every byte is initialised either way).
        let addr = unsafe { addr.assume_init() };
        let mut received = Received {
            len: wire.min(buf.len()),
            orig_len: u32::try_from(wire).unwrap_or(u32::MAX),
            pkttype: addr.sll_pkttype,
            ifindex: u32::try_from(addr.sll_ifindex).unwrap_or(0),
            ts: None,
        };
        if msg.msg_flags & libc::MSG_CTRUNC != 0 {
            return Ok(Some(received));
        }
        // SAFETY: `msg` describes the control buffer the kernel just filled;
        // CMSG_FIRSTHDR/CMSG_NXTHDR stay within msg_controllen and return
        // null at its end.
        let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
        while !cmsg.is_null() {
            // SAFETY: non-null cmsg pointers from CMSG_* point to an aligned,
            // initialised cmsghdr inside `control`.
            let hdr = unsafe { &*cmsg };
            // SAFETY: CMSG_DATA of a valid header is within the control buffer.
            let data = unsafe { libc::CMSG_DATA(cmsg) };
            let fits = |len: usize| {
                // SAFETY: CMSG_LEN is arithmetic only.
                hdr.cmsg_len as usize >= unsafe { libc::CMSG_LEN(len as u32) } as usize
            };
            match (hdr.cmsg_level, hdr.cmsg_type) {
                (libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS) if fits(size_of::<libc::timespec>()) => {
                    // SAFETY: the kernel wrote a timespec of this size here
                    // (checked against cmsg_len); it may be unaligned.
                    let ts = unsafe { data.cast::<libc::timespec>().read_unaligned() };
                    if let (Ok(secs), Ok(nanos)) =
                        (u64::try_from(ts.tv_sec), u32::try_from(ts.tv_nsec))
                    {
                        received.ts = Some(Duration::new(secs, nanos));
                    }
                }
                (libc::SOL_PACKET, libc::PACKET_AUXDATA)
                    if fits(size_of::<libc::tpacket_auxdata>()) =>
                {
                    // SAFETY: as above, a tpacket_auxdata of checked size.
                    let aux = unsafe { data.cast::<libc::tpacket_auxdata>().read_unaligned() };
                    received.orig_len = aux.tp_len.max(received.orig_len);
                }
                _ => {}
            }
            // SAFETY: `cmsg` is a valid header within `msg`'s control buffer.
            cmsg = unsafe { libc::CMSG_NXTHDR(&msg, cmsg) };
        }
        Ok(Some(received))
    }

    /// Reads PACKET_STATISTICS; the kernel resets the counters on each read.
    pub fn stats(&self) -> io::Result<Stats> {
        let mut st = libc::tpacket_stats {
            tp_packets: 0,
            tp_drops: 0,
        };
        let mut len = size_of::<libc::tpacket_stats>() as libc::socklen_t;
        // SAFETY: `st` and `len` are live locals; the kernel writes at most
        // `len` bytes into `st` and updates `len`.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&mut st as *mut libc::tpacket_stats).cast::<c_void>(),
                &mut len,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Stats {
            packets: st.tp_packets,
            drops: st.tp_drops,
        })
    }

    /// Takes the socket's pending error (`SO_ERROR`), which also clears it:
    /// the kernel sets ENETDOWN when the interface goes down, and until it
    /// is read `poll` reports the socket ready (POLLERR) at once. A ring is
    /// never read with `recvmsg`, which would clear it, so the reader must.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        let value = self.socket_option(libc::SO_ERROR)?;
        Ok((value != 0).then(|| io::Error::from_raw_os_error(value)))
    }

    /// The receive buffer the kernel actually granted (`SO_RCVBUF`; the
    /// kernel doubles the requested value for its own bookkeeping).
    pub fn rcvbuf(&self) -> io::Result<usize> {
        Ok(usize::try_from(self.socket_option(libc::SO_RCVBUF)?).unwrap_or(0))
    }

    /// An `int` option at level SOL_SOCKET.
    fn socket_option(&self, name: i32) -> io::Result<i32> {
        let mut value: i32 = 0;
        let mut len = size_of::<i32>() as libc::socklen_t;
        // SAFETY: `value` and `len` are live locals of the sizes given.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                name,
                (&mut value as *mut i32).cast::<c_void>(),
                &mut len,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(value)
    }
}

impl AsRawFd for Socket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Waits for any of several sockets to become readable.
///
/// It holds descriptor numbers, not the sockets: if a socket is closed while
/// a `Poller` still lists it, poll(2) reports POLLNVAL for it, which
/// `is_ready` reports as ready so that the next `recv` surfaces the error.
#[derive(Debug)]
pub struct Poller {
    fds: Vec<libc::pollfd>,
}

impl Poller {
    pub fn new<'a, S: AsRawFd + ?Sized + 'a>(sockets: impl IntoIterator<Item = &'a S>) -> Poller {
        Poller {
            fds: sockets
                .into_iter()
                .map(|s| libc::pollfd {
                    fd: s.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                })
                .collect(),
        }
    }

    /// Blocks up to `timeout`; returns how many sockets are ready (0 on
    /// timeout or when a signal interrupted the wait).
    pub fn wait(&mut self, timeout: Duration) -> io::Result<usize> {
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: `fds` is a live, exclusively borrowed array of pollfd of
        // the length passed.
        let rc = unsafe { libc::poll(self.fds.as_mut_ptr(), self.fds.len() as libc::nfds_t, ms) };
        if rc < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                for fd in &mut self.fds {
                    fd.revents = 0;
                }
                return Ok(0);
            }
            return Err(err);
        }
        Ok(rc as usize)
    }

    /// Includes socket `i` (in the order given to `new`) in the next waits,
    /// or leaves it out (poll(2) skips a negative descriptor): a ring whose
    /// visible frames are still held would otherwise wake every wait at once.
    pub fn set_enabled(&mut self, i: usize, enabled: bool) {
        if let Some(fd) = self.fds.get_mut(i) {
            let raw = if fd.fd < 0 { !fd.fd } else { fd.fd };
            fd.fd = if enabled { raw } else { !raw };
            fd.revents = 0;
        }
    }

    /// Whether socket `i` reported an error or hang-up in the last `wait`.
    pub fn has_error(&self, i: usize) -> bool {
        self.fds
            .get(i)
            .is_some_and(|fd| fd.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0)
    }

    /// Whether socket `i` (in the order given to `new`) had an event in the
    /// last `wait`.
    pub fn is_ready(&self, i: usize) -> bool {
        self.fds.get(i).is_some_and(|fd| fd.revents != 0)
    }
}
