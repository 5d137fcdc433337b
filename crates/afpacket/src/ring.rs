//! A TPACKET_V3 receive ring: the kernel writes frames straight into memory
//! shared with the process, packed into blocks, and hands a block over when
//! it is full or when its retire timer fires. Reading costs no system call
//! per frame; the process sleeps in `poll` only when every block it owns has
//! been read and given back. This is what libpcap (so tcpdump) uses.
//!
//! Layout (<linux/if_packet.h>): the mapping is `block_count` blocks of
//! `block_size` bytes. Each block starts with a `tpacket_block_desc` whose
//! `block_status` says who owns it (`TP_STATUS_KERNEL` or
//! `TP_STATUS_USER`), how many frames it holds and where the first one is.
//! Each frame is a `tpacket3_hdr` (timestamp, captured and original length,
//! offset of the frame data, offset of the next frame), then a `sockaddr_ll`
//! (direction in `sll_pkttype`), then the frame bytes. Blocks are handed over
//! in order, so the reader walks them round-robin.
//!
//! Everything the kernel writes is checked against the block's bounds before
//! a slice is made of it: a corrupt header ends the block (counted in
//! [`Ring::bad_blocks`]) instead of reading out of bounds.
//!
//! A block is the reader's from the moment the kernel hands it over until it
//! is given back, and must not be given back while any of its bytes is
//! read. The types hold that rule: [`Ring::next_frame`] lends a [`Frame`]
//! that borrows the ring mutably, so no other frame can be read (and no
//! block released) while it or a slice of it lives; the frame is consumed
//! when it drops, or, if its bytes were handed out, when the ring is next
//! read. No call can consume a frame twice or forget to.

use std::ffi::c_void;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::filter::Instruction;
use crate::socket::{Socket, Stats};
use crate::Error;

/// `TPACKET_V3` in `enum tpacket_versions`.
const TPACKET_V3: i32 = 2;

/// Size of the ring and how long the kernel keeps a block that is not full.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RingOptions {
    /// Bytes per block: a power of two, at least one page. A frame larger
    /// than a block (less its header) is cut to fit, its original length
    /// still reported.
    pub block_size: u32,
    /// Blocks in the ring; `block_size * block_count` bytes are mapped and
    /// stay resident (they count in the process's RSS).
    pub block_count: u32,
    /// Milliseconds after which the kernel hands over a block that holds
    /// frames but is not full (`tp_retire_blk_tov`): the longest a frame
    /// waits before the reader can see it, timer slack aside.
    pub retire_ms: u32,
}

impl Default for RingOptions {
    /// 4 MiB: 32 blocks of 128 KiB, retired after 8 ms.
    fn default() -> Self {
        RingOptions {
            block_size: 128 << 10,
            block_count: 32,
            retire_ms: 8,
        }
    }
}

impl RingOptions {
    /// `bytes` of ring in blocks of up to 128 KiB (at least 4 blocks, each a
    /// power of two of at least 4 KiB), retired after `retire_ms`.
    pub fn with_size(bytes: usize, retire_ms: u32) -> RingOptions {
        let bytes = bytes.clamp(16 << 10, 1 << 30);
        let mut block_size: usize = 128 << 10;
        while block_size > 4096 && bytes / block_size < 4 {
            block_size /= 2;
        }
        RingOptions {
            block_size: block_size as u32,
            block_count: (bytes / block_size).max(1) as u32,
            retire_ms,
        }
    }

    /// Total bytes mapped.
    pub fn bytes(&self) -> usize {
        self.block_size as usize * self.block_count as usize
    }
}

/// What the kernel says about a frame, without its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameInfo {
    /// Bytes captured (after the filter's snap length cut).
    pub len: usize,
    /// Length of the frame on the wire (`tp_len`).
    pub orig_len: u32,
    /// `sll_pkttype`.
    pub pkttype: u8,
    /// Kernel timestamp (CLOCK_REALTIME) since the Unix epoch.
    pub ts: Duration,
}

/// A frame's header, parsed and checked against its block's bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Parsed {
    info: FrameInfo,
    /// Offset of the frame bytes in its block.
    start: usize,
    /// Offset of the next frame from this one's header (0: last).
    next: u32,
}

/// A frame borrowed from the ring. Its bytes lie in a block the reader
/// owns, and the frame holds the ring mutably borrowed, so the block cannot
/// be given back to the kernel while the frame (or a slice of it) lives.
/// Dropping the frame consumes it, giving the block back if it was the
/// block's last frame; [`Frame::keep`] leaves it in the ring instead, and
/// [`Frame::into_data`] hands its bytes out for as long as the ring stays
/// borrowed.
///
/// The borrow is what keeps a block from being released under a reader:
///
/// ```compile_fail,E0499
/// fn two(ring: &mut podpath_afpacket::Ring) {
///     let first = ring.next_frame();
///     let second = ring.next_frame(); // the first frame still borrows the ring
///     drop((first, second));
/// }
/// ```
///
/// (the same with the first frame gone before the second is read compiles:
///
/// ```
/// fn two(ring: &mut podpath_afpacket::Ring) {
///     let first = ring.next_frame().map(|f| f.info());
///     let second = ring.next_frame();
///     drop((first, second));
/// }
/// ```
///
/// stable rustdoc does not check the error code), and a slice handed out
/// keeps it borrowed just the same:
///
/// ```compile_fail,E0499
/// fn held(ring: &mut podpath_afpacket::Ring) {
///     let bytes = ring.next_frame().map(podpath_afpacket::Frame::into_data);
///     let _ = ring.next_frame(); // `bytes` still borrows the ring
///     drop(bytes);
/// }
/// ```
#[derive(Debug)]
pub struct Frame<'r> {
    /// `None` once the frame was kept or its bytes handed out.
    blocks: Option<&'r mut Blocks>,
    at: Parsed,
}

impl<'r> Frame<'r> {
    /// Length, direction and time.
    pub fn info(&self) -> FrameInfo {
        self.at.info
    }

    /// The frame's bytes.
    pub fn data(&self) -> &[u8] {
        self.blocks
            .as_deref()
            .map_or(&[], |b| b.frame_bytes(&self.at))
    }

    /// Leaves the frame in the ring, unread: the next [`Ring::next_frame`] yields
    /// it again. For a reader that looks at a frame's time before deciding
    /// to take it.
    pub fn keep(mut self) -> FrameInfo {
        if let Some(blocks) = self.blocks.take() {
            blocks.kept = Some(self.at);
        }
        self.at.info
    }

    /// The frame's bytes, borrowed as long as the ring was: the frame is
    /// consumed (and its block given back if it was the last) when the ring
    /// is next read, which the borrow orders after the last use of the
    /// bytes. For a reader that lends frames out of a `&mut self` method.
    pub fn into_data(mut self) -> &'r [u8] {
        let Some(blocks) = self.blocks.take() else {
            return &[];
        };
        blocks.lent = Some(self.at.next);
        let blocks: &'r Blocks = blocks;
        blocks.frame_bytes(&self.at)
    }
}

impl Drop for Frame<'_> {
    fn drop(&mut self) {
        if let Some(blocks) = self.blocks.take() {
            blocks.consume(self.at.next);
        }
    }
}

/// Where the reader is in the block it owns.
#[derive(Clone, Copy, Debug)]
struct Cursor {
    /// Offset of the current frame's header within the block.
    offset: usize,
    /// Frames left in the block, the current one included.
    remaining: u32,
}

/// A mapping of the process's address space, unmapped on drop.
#[derive(Debug)]
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is owned by this value alone (no other handle to it
// exists in the process) and is only read through `&self`; the kernel side
// synchronises through the block status words.
unsafe impl Send for Mapping {}

impl Mapping {
    /// Maps `len` bytes of `fd` shared, as `op` (for the error).
    fn shared(fd: RawFd, len: usize, op: &'static str) -> Result<Mapping, Error> {
        // SAFETY: a fresh shared mapping of what `fd` offers (the ring the
        // kernel just allocated for it); no address hint; the result is
        // checked against MAP_FAILED.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        Mapping::checked(ptr, len, op)
    }

    /// Zeroed private memory, standing in for the kernel's ring in tests.
    #[cfg(test)]
    fn anonymous(len: usize) -> Mapping {
        // SAFETY: a fresh private anonymous mapping; no address hint, no
        // descriptor; the result is checked against MAP_FAILED.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        Mapping::checked(ptr, len, "mmap(MAP_ANONYMOUS)").expect("anonymous mapping")
    }

    fn checked(ptr: *mut c_void, len: usize, op: &'static str) -> Result<Mapping, Error> {
        if ptr == libc::MAP_FAILED {
            return Err(Error::Os {
                op,
                source: io::Error::last_os_error(),
            });
        }
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or(Error::Os {
            op,
            source: io::Error::from_raw_os_error(libc::ENOMEM),
        })?;
        Ok(Mapping { ptr, len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `shared` or `anonymous`, with its
        // length; every slice of it borrows its owner, so none outlives it.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast::<c_void>(), self.len);
        }
    }
}

/// The reader's side of the ring: which block it is on and where in it.
#[derive(Debug)]
struct Blocks {
    map: Mapping,
    block_size: usize,
    block_count: usize,
    /// The block the reader is on (owned by us while `cursor` is set).
    block: usize,
    cursor: Option<Cursor>,
    /// A frame whose bytes were handed out ([`Frame::into_data`]), with its
    /// offset to the next: consumed when the ring is next read.
    lent: Option<u32>,
    /// The current frame, parsed, left in the ring by [`Frame::keep`]: the
    /// next read yields it without parsing its header again.
    kept: Option<Parsed>,
    bad_blocks: u64,
}

const BLOCK_DESC: usize = size_of::<libc::tpacket_block_desc>();
const FRAME_HDR: usize = size_of::<libc::tpacket3_hdr>();
/// `TPACKET_ALIGN(sizeof(struct tpacket3_hdr))`: where the `sockaddr_ll` is.
const SLL_OFFSET: usize = (FRAME_HDR + 15) & !15;
/// Offset of `sll_pkttype` in `sockaddr_ll`.
const SLL_PKTTYPE: usize = 10;

impl Blocks {
    /// `map` holds `block_count` blocks of `block_size` bytes (a multiple
    /// of 4096, so every block and its status word is aligned).
    fn new(map: Mapping, block_size: usize, block_count: usize) -> Blocks {
        debug_assert!(map.len >= block_size * block_count && block_size % 4096 == 0);
        Blocks {
            map,
            block_size,
            block_count,
            block: 0,
            cursor: None,
            lent: None,
            kept: None,
            bad_blocks: 0,
        }
    }

    /// The status word of block `i`, shared with the kernel.
    fn status(&self, i: usize) -> &AtomicU32 {
        assert!(i < self.block_count);
        // SAFETY: `i < block_count`, so the block descriptor lies within the
        // mapping; the status word is the first u32 of `tpacket_hdr_v1`,
        // 4-aligned (blocks are page-aligned), and the kernel accesses it
        // only as a whole word, so viewing it as an atomic is sound.
        unsafe {
            &*self
                .map
                .ptr
                .as_ptr()
                .add(i * self.block_size + 8)
                .cast::<AtomicU32>()
        }
    }

    /// The bytes of block `i`. Only called for a block the reader owns
    /// (status USER, read with Acquire), which the kernel does not write
    /// until it is given back.
    fn block_bytes(&self, i: usize) -> &[u8] {
        assert!(i < self.block_count);
        // SAFETY: `i < block_count`, so the block lies within the mapping;
        // the reader owns it (see above), and the slice borrows `self`, so
        // it cannot outlive `release`, which takes `&mut self`.
        unsafe {
            std::slice::from_raw_parts(
                self.map.ptr.as_ptr().add(i * self.block_size),
                self.block_size,
            )
        }
    }

    /// Writes block `i` as the kernel would and hands it to the reader.
    #[cfg(test)]
    fn fill(&mut self, i: usize, bytes: &[u8]) {
        assert!(i < self.block_count && bytes.len() <= self.block_size);
        // SAFETY: `i < block_count`, so the block lies within the mapping;
        // `&mut self` excludes every slice of it made by `block_bytes`.
        let block = unsafe {
            std::slice::from_raw_parts_mut(
                self.map.ptr.as_ptr().add(i * self.block_size),
                self.block_size,
            )
        };
        block[..bytes.len()].copy_from_slice(bytes);
        self.status(i)
            .store(libc::TP_STATUS_USER, Ordering::Release);
    }

    /// The bytes of a frame of the current block (checked by `frame_at`).
    fn frame_bytes(&self, at: &Parsed) -> &[u8] {
        self.block_bytes(self.block)
            .get(at.start..at.start + at.info.len)
            .unwrap_or(&[])
    }

    /// Gives the current block back to the kernel and moves to the next.
    fn release(&mut self) {
        self.status(self.block)
            .store(libc::TP_STATUS_KERNEL, Ordering::Release);
        self.cursor = None;
        self.kept = None;
        self.block = (self.block + 1) % self.block_count;
    }

    /// Moves past the current frame (whose offset to the next is `next`);
    /// gives the block back when it was the last one.
    fn consume(&mut self, next: u32) {
        let Some(c) = self.cursor.as_mut() else {
            return;
        };
        c.remaining = c.remaining.saturating_sub(1);
        if c.remaining == 0 || next == 0 {
            if c.remaining != 0 {
                self.bad_blocks += 1;
            }
            self.release();
        } else {
            c.offset = c.offset.saturating_add(next as usize);
        }
    }

    fn next_frame(&mut self) -> Option<Frame<'_>> {
        if let Some(next) = self.lent.take() {
            self.consume(next);
        }
        if let Some(at) = self.kept.take() {
            return Some(Frame {
                blocks: Some(self),
                at,
            });
        }
        // At most one pass over the ring, two steps per block (open it, then
        // read or skip it): empty or corrupt blocks are given back and
        // skipped.
        for _ in 0..=2 * self.block_count {
            match self.cursor {
                Some(c) if c.remaining > 0 => {
                    match frame_at(self.block_bytes(self.block), c.offset) {
                        Some(at) => {
                            return Some(Frame {
                                blocks: Some(self),
                                at,
                            })
                        }
                        None => {
                            self.bad_blocks += 1;
                            self.release();
                        }
                    }
                }
                Some(_) => self.release(),
                None => {
                    if self.status(self.block).load(Ordering::Acquire) & libc::TP_STATUS_USER == 0 {
                        return None;
                    }
                    let (remaining, offset) = block_header(self.block_bytes(self.block));
                    self.cursor = Some(Cursor { offset, remaining });
                }
            }
        }
        None
    }
}

/// A socket with a TPACKET_V3 receive ring mapped.
#[derive(Debug)]
pub struct Ring {
    // Unmapped before the socket closes (fields drop in order).
    blocks: Blocks,
    socket: Socket,
}

impl Ring {
    /// Opens a socket on `ifindex` with `filter`, maps a TPACKET_V3 ring of
    /// `options`, then binds (which starts the capture).
    pub fn open(
        ifindex: u32,
        filter: &[Instruction],
        options: &RingOptions,
    ) -> Result<Ring, Error> {
        let bs = options.block_size;
        if bs < 4096 || !bs.is_power_of_two() || options.block_count == 0 {
            return Err(Error::Os {
                op: "PACKET_RX_RING: block size must be a power of two >= 4096, blocks >= 1",
                source: io::Error::from_raw_os_error(libc::EINVAL),
            });
        }
        let socket = Socket::filtered(filter)?;
        socket.setsockopt(
            libc::SOL_PACKET,
            libc::PACKET_VERSION,
            &TPACKET_V3,
            "setsockopt(PACKET_VERSION, TPACKET_V3)",
        )?;
        // Frames are variable-sized in V3; the frame size only has to divide
        // the block and satisfy the kernel's arithmetic checks.
        let frame_size: u32 = 2048;
        let req = libc::tpacket_req3 {
            tp_block_size: bs,
            tp_block_nr: options.block_count,
            tp_frame_size: frame_size,
            tp_frame_nr: (bs / frame_size) * options.block_count,
            tp_retire_blk_tov: options.retire_ms.max(1),
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        socket.setsockopt(
            libc::SOL_PACKET,
            libc::PACKET_RX_RING,
            &req,
            "setsockopt(PACKET_RX_RING)",
        )?;
        let map = Mapping::shared(socket.as_raw_fd(), options.bytes(), "mmap(PACKET_RX_RING)")?;
        let ring = Ring {
            blocks: Blocks::new(map, bs as usize, options.block_count as usize),
            socket,
        };
        ring.socket.bind(ifindex)?;
        Ok(ring)
    }

    /// The next frame; `None` when the kernel has handed over nothing more.
    /// A frame whose bytes were handed out ([`Frame::into_data`]) is
    /// consumed first.
    ///
    /// ```
    /// /// Bytes of the frames handed over so far; each frame is consumed
    /// /// (its block given back after its last) as it drops.
    /// fn drain(ring: &mut podpath_afpacket::Ring) -> usize {
    ///     let mut bytes = 0;
    ///     while let Some(frame) = ring.next_frame() {
    ///         bytes += frame.data().len();
    ///     }
    ///     bytes
    /// }
    ///
    /// /// The next frame's bytes, lent until the ring is read again.
    /// fn lend(ring: &mut podpath_afpacket::Ring) -> &[u8] {
    ///     ring.next_frame().map_or(&[], podpath_afpacket::Frame::into_data)
    /// }
    /// ```
    pub fn next_frame(&mut self) -> Option<Frame<'_>> {
        self.blocks.next_frame()
    }

    /// Blocks found corrupt (a header pointing out of the block) and skipped.
    pub fn bad_blocks(&self) -> u64 {
        self.blocks.bad_blocks
    }

    /// PACKET_STATISTICS since the previous read: frames that passed the
    /// filter (including dropped ones) and frames dropped because every
    /// block was still held by the reader.
    pub fn stats(&self) -> io::Result<Stats> {
        self.socket.stats()
    }

    /// Takes the socket's pending error: see [`Socket::take_error`].
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.socket.take_error()
    }

    /// Bytes mapped.
    pub fn mapped_bytes(&self) -> usize {
        self.blocks.map.len
    }
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let bytes = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_ne_bytes(bytes.try_into().ok()?))
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    let bytes = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_ne_bytes(bytes.try_into().ok()?))
}

/// Frames in a block and the offset of the first (`tpacket_hdr_v1`:
/// `block_status`, `num_pkts`, `offset_to_first_pkt` at 8, 12, 16); no
/// frames if the header does not fit.
fn block_header(block: &[u8]) -> (u32, usize) {
    match (u32_at(block, 12), u32_at(block, 16)) {
        (Some(n), Some(first)) => (n, first as usize),
        _ => (0, 0),
    }
}

/// Parses the `tpacket3_hdr` at `offset` in `block`: `None` if anything in
/// it points outside the block. Pure: the ring calls it on a block it owns,
/// the tests on made-up ones.
fn frame_at(block: &[u8], offset: usize) -> Option<Parsed> {
    if offset < BLOCK_DESC {
        return None;
    }
    // tpacket3_hdr: tp_next_offset, tp_sec, tp_nsec, tp_snaplen, tp_len,
    // tp_status, tp_mac (u16), tp_net (u16); then the sockaddr_ll.
    let next = u32_at(block, offset)?;
    let sec = u32_at(block, offset + 4)?;
    let nsec = u32_at(block, offset + 8)?;
    let snaplen = u32_at(block, offset + 12)?;
    let orig_len = u32_at(block, offset + 16)?;
    let mac = usize::from(u16_at(block, offset + 24)?);
    let pkttype = *block.get(offset + SLL_OFFSET + SLL_PKTTYPE)?;
    let start = offset.checked_add(mac)?;
    let len = snaplen as usize;
    if mac < SLL_OFFSET + SLL_PKTTYPE + 1
        || start.checked_add(len)? > block.len()
        || nsec >= 1_000_000_000
    {
        return None;
    }
    Some(Parsed {
        info: FrameInfo {
            len,
            orig_len: orig_len.max(snaplen),
            pkttype,
            ts: Duration::new(u64::from(sec), nsec),
        },
        start,
        next,
    })
}

impl AsRawFd for Ring {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_sizes_are_powers_of_two_blocks() {
        let r = RingOptions::with_size(4 << 20, 8);
        assert_eq!((r.block_size, r.block_count), (128 << 10, 32));
        let r = RingOptions::with_size(16 << 10, 8);
        assert_eq!((r.block_size, r.block_count), (4096, 4));
        let r = RingOptions::with_size(100 << 10, 8);
        assert_eq!((r.block_size, r.block_count), (16 << 10, 6));
        let r = RingOptions::with_size(1, 8);
        assert_eq!(r.bytes(), 16 << 10);
    }

    #[test]
    fn header_layout_matches_the_kernel() {
        assert_eq!(FRAME_HDR, 48);
        assert_eq!(SLL_OFFSET, 48);
        assert_eq!(BLOCK_DESC, 48);
        assert_eq!(
            std::mem::offset_of!(libc::sockaddr_ll, sll_pkttype),
            SLL_PKTTYPE
        );
        assert_eq!(std::mem::offset_of!(libc::tpacket3_hdr, tp_mac), 24);
        assert_eq!(std::mem::offset_of!(libc::tpacket3_hdr, tp_len), 16);
    }

    /// A block as the kernel lays it out: the descriptor, then each frame
    /// as header, sockaddr_ll, padding to `mac`, bytes.
    fn block(frames: &[(&[u8], u32, u8)]) -> Vec<u8> {
        let mut b = vec![0u8; 4096];
        let first = 48usize;
        b[12..16].copy_from_slice(&(frames.len() as u32).to_ne_bytes());
        b[16..20].copy_from_slice(&(first as u32).to_ne_bytes());
        let mut at = first;
        for (i, (bytes, orig, pkttype)) in frames.iter().enumerate() {
            let mac = 82usize; // TPACKET_ALIGN(48 + 20) + 2, as the kernel pads
            let size = (mac + bytes.len() + 15) & !15;
            let next = if i + 1 == frames.len() {
                0
            } else {
                size as u32
            };
            b[at..at + 4].copy_from_slice(&next.to_ne_bytes());
            b[at + 4..at + 8].copy_from_slice(&1_700_000_000u32.to_ne_bytes());
            b[at + 8..at + 12].copy_from_slice(&(i as u32 * 1000).to_ne_bytes());
            b[at + 12..at + 16].copy_from_slice(&(bytes.len() as u32).to_ne_bytes());
            b[at + 16..at + 20].copy_from_slice(&orig.to_ne_bytes());
            b[at + 24..at + 26].copy_from_slice(&(mac as u16).to_ne_bytes());
            b[at + SLL_OFFSET + SLL_PKTTYPE] = *pkttype;
            b[at + mac..at + mac + bytes.len()].copy_from_slice(bytes);
            at += size;
        }
        b
    }

    /// Walks a block as `Ring::next_frame` does, frame after frame.
    fn walk(b: &[u8]) -> Vec<(Vec<u8>, u32, u8, Duration)> {
        let (mut remaining, mut offset) = block_header(b);
        let mut out = Vec::new();
        while remaining > 0 {
            let Some(f) = frame_at(b, offset) else { break };
            out.push((
                b[f.start..f.start + f.info.len].to_vec(),
                f.info.orig_len,
                f.info.pkttype,
                f.info.ts,
            ));
            remaining -= 1;
            if f.next == 0 {
                break;
            }
            offset = offset.saturating_add(f.next as usize);
        }
        out
    }

    #[test]
    fn frames_are_read_with_length_direction_and_time() {
        let b = block(&[(b"first frame", 11, 0), (b"second, cut", 1500, 4)]);
        let frames = walk(&b);
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].0, b"first frame");
        assert_eq!((frames[0].1, frames[0].2), (11, 0));
        assert_eq!(frames[1].0, b"second, cut");
        assert_eq!((frames[1].1, frames[1].2), (1500, 4));
        assert_eq!(frames[1].3, Duration::new(1_700_000_000, 1000));
    }

    #[test]
    fn headers_pointing_out_of_the_block_are_refused() {
        let good = block(&[(b"x", 1, 0)]);
        // Frame data running past the block.
        let mut b = good.clone();
        b[48 + 12..48 + 16].copy_from_slice(&5000u32.to_ne_bytes());
        assert_eq!(frame_at(&b, 48), None);
        // `tp_mac` inside the header.
        let mut b = good.clone();
        b[48 + 24..48 + 26].copy_from_slice(&8u16.to_ne_bytes());
        assert_eq!(frame_at(&b, 48), None);
        // First frame inside the block descriptor, or past the end.
        assert_eq!(frame_at(&good, 0), None);
        assert_eq!(frame_at(&good, 4090), None);
        assert_eq!(frame_at(&good, usize::MAX), None);
        // Nanoseconds out of range.
        let mut b = good;
        b[48 + 8..48 + 12].copy_from_slice(&1_000_000_000u32.to_ne_bytes());
        assert_eq!(frame_at(&b, 48), None);
        // A header too short to hold the descriptor.
        assert_eq!(block_header(&[0; 10]), (0, 0));
    }

    /// Any bytes, any offset: a frame is either refused or lies within the
    /// block (the ring slices it without another check).
    #[test]
    fn arbitrary_blocks_never_yield_a_frame_out_of_bounds() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let template = block(&[(b"abc", 3, 0), (b"defgh", 5, 4), (b"ij", 2, 0)]);
        for _ in 0..20_000 {
            let mut b = template.clone();
            for _ in 0..(next() % 8) {
                let at = (next() % b.len() as u64) as usize;
                b[at] = next() as u8;
            }
            // Also aim at the header fields themselves.
            let field = [48 + 12, 48 + 24, 48, 12, 16][(next() % 5) as usize];
            b[field] = next() as u8;
            let (n, first) = block_header(&b);
            let mut offset = first;
            for _ in 0..n.min(64) {
                let Some(f) = frame_at(&b, offset) else { break };
                assert!(f.start + f.info.len <= b.len());
                assert!(f.info.orig_len as usize >= f.info.len);
                if f.next == 0 {
                    break;
                }
                offset = offset.saturating_add(f.next as usize);
            }
        }
    }

    /// A reader over `count` blocks of 4096 bytes, none handed over yet.
    fn reader(count: usize) -> Blocks {
        Blocks::new(Mapping::anonymous(count * 4096), 4096, count)
    }

    fn owned_by_reader(b: &Blocks, i: usize) -> bool {
        b.status(i).load(Ordering::Acquire) & libc::TP_STATUS_USER != 0
    }

    #[test]
    fn a_block_goes_back_once_its_last_frame_is_dropped() {
        let mut r = reader(4);
        r.fill(0, &block(&[(b"one", 3, 0), (b"two", 3, 4)]));
        r.fill(1, &block(&[(b"three", 9, 0)]));
        let f = r.next_frame().expect("first frame");
        assert_eq!(f.data(), b"one");
        assert_eq!(f.info().pkttype, 0);
        drop(f);
        assert!(owned_by_reader(&r, 0), "a frame of block 0 is still unread");
        let f = r.next_frame().expect("second frame");
        assert_eq!((f.data(), f.info().pkttype), (&b"two"[..], 4));
        drop(f);
        assert!(
            !owned_by_reader(&r, 0),
            "block 0 given back after its last frame"
        );
        assert!(owned_by_reader(&r, 1));
        let f = r.next_frame().expect("third frame");
        assert_eq!((f.data(), f.info().orig_len), (&b"three"[..], 9));
        drop(f);
        assert!(!owned_by_reader(&r, 1));
        assert!(r.next_frame().is_none(), "block 2 is the kernel's");
        assert_eq!(r.bad_blocks, 0);
    }

    #[test]
    fn a_kept_frame_comes_again_and_lent_bytes_hold_their_block() {
        let mut r = reader(4);
        r.fill(0, &block(&[(b"only", 4, 4)]));
        let info = r.next_frame().map(Frame::keep).expect("a frame");
        assert_eq!(info.len, 4);
        assert!(owned_by_reader(&r, 0));
        let f = r.next_frame().expect("the kept frame again");
        assert_eq!(f.info(), info);
        let bytes = f.into_data();
        assert_eq!(bytes, b"only");
        assert!(owned_by_reader(&r, 0), "lent bytes keep their block");
        // The next read consumes the lent frame first.
        assert!(r.next_frame().is_none());
        assert!(!owned_by_reader(&r, 0));
        // Blocks are walked round-robin: the next one is 1.
        r.fill(1, &block(&[(b"later", 5, 0)]));
        assert_eq!(
            r.next_frame().map(|f| f.data().to_vec()),
            Some(b"later".to_vec())
        );
    }

    #[test]
    fn corrupt_and_empty_blocks_are_given_back_and_skipped() {
        let mut r = reader(4);
        let mut bad = block(&[(b"x", 1, 0)]);
        bad[48 + 12..48 + 16].copy_from_slice(&5000u32.to_ne_bytes());
        r.fill(0, &bad);
        r.fill(1, &block(&[]));
        r.fill(2, &block(&[(b"good", 4, 0)]));
        let f = r.next_frame().expect("the frame after the bad blocks");
        assert_eq!(f.data(), b"good");
        drop(f);
        assert_eq!(r.bad_blocks, 1);
        assert!((0..4).all(|i| !owned_by_reader(&r, i)));
        assert!(r.next_frame().is_none());
    }

    #[test]
    fn bad_options_are_refused_before_any_socket() {
        let o = RingOptions {
            block_size: 5000,
            block_count: 4,
            retire_ms: 8,
        };
        assert!(Ring::open(1, &[], &o).is_err());
    }
}
