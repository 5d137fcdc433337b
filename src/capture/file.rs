//! Capture files: pcap (both byte orders, micro- and nanosecond, the
//! "modified" variant) and pcapng (several interfaces, any timestamp
//! resolution). pcapng is read with pcap-parser; legacy pcap records are
//! parsed in place (`LegacyReader`, same framing and errors as pcap-parser)
//! so frames are handed out without a copy. A regular file is mapped into
//! memory rather than copied in by `read(2)`; pipes and standard input are
//! read. Several files are merged in timestamp order, so a capture split by
//! `tcpdump -C` or taken per interface reads as one. [`ReadAhead`] runs all
//! of this on a thread of its own, handing frames over in batches.

use std::fs::File;
use std::io::{Cursor, Read};
use std::ops::Range;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

use pcap_parser::pcapng::Block;
use pcap_parser::traits::PcapReaderIterator;
use pcap_parser::{
    create_reader, parse_pcap_header, parse_sectionheaderblock, PcapBlockOwned, PcapError,
};
use podpath_afpacket::MappedFile;

use super::{CaptureError, Next, PacketSource, RawPacket};
use crate::decode::{LinkType, PacketType};
use crate::engine::SkipReason;
use crate::Timestamp;

/// Initial read buffer; grown up to `MAX_BUFFER` for blocks larger than it.
const INITIAL_BUFFER: usize = 1 << 20;
const MAX_BUFFER: usize = 64 << 20;
/// The largest legacy pcap record read (header included): what fits the
/// read buffer, as with pcap-parser; a mapped file keeps the same limit so
/// that a file reads the same however it is read.
const MAX_RECORD: usize = INITIAL_BUFFER;

/// All of a file's bytes in memory at once.
enum Whole {
    /// A regular file, mapped.
    Mapped(MappedFile),
    /// The embedded seed capture.
    Static(&'static [u8]),
}

impl AsRef<[u8]> for Whole {
    fn as_ref(&self) -> &[u8] {
        match self {
            Whole::Mapped(map) => map,
            Whole::Static(bytes) => bytes,
        }
    }
}

/// Where a file's bytes come from.
enum Input {
    Whole(Whole),
    /// Pipes, standard input, devices, and a file the kernel would not map:
    /// read in chunks.
    Stream(Box<dyn Read + Send>),
}

/// A link type as the file declared it: `None` when podpath does not decode it
/// (its packets are then counted as skipped, not fatal).
#[derive(Clone, Copy, Debug)]
struct Interface {
    link: Option<LinkType>,
    raw_link: u32,
    /// pcapng: units per second and offset in seconds.
    resolution: u64,
    offset: i64,
}

/// One frame held by a file reader until the merge hands it out.
#[derive(Debug, Default)]
struct Held {
    ts: Timestamp,
    iface: usize,
    orig_len: u32,
    /// pcapng: the frame, copied out of pcap-parser's buffer.
    data: Vec<u8>,
    /// Legacy pcap: where the frame is in the reader's buffer (which stays
    /// put until the frame has been handed out and the reader is filled again).
    in_buffer: Option<Range<usize>>,
}

/// How a file's blocks are read.
enum Blocks {
    /// pcapng (and anything that is not legacy pcap) through pcap-parser.
    Parser(Box<dyn PcapReaderIterator + Send>),
    /// Legacy pcap, the bulk of captures (`tcpdump -w`): records are parsed
    /// in place from a large buffer and handed out without a copy.
    Legacy(LegacyReader),
}

struct FileReader {
    path: String,
    reader: Blocks,
    interfaces: Vec<Interface>,
    /// Legacy pcap: timestamps in nanoseconds rather than microseconds.
    nanos: bool,
    held: Option<Held>,
    spare: Vec<u8>,
    exhausted: bool,
    /// Trailing bytes that did not form a whole block (file cut mid-record).
    truncated_tail: bool,
}

impl FileReader {
    fn open(path: &str) -> Result<FileReader, CaptureError> {
        let file = File::open(path).map_err(|source| CaptureError::Io {
            path: path.to_string(),
            source,
        })?;
        // A file that cannot be mapped (not a regular file, or a file system
        // that refuses) is read instead: reading reports its own errors.
        // pcapng is read too: pcap-parser copies blocks into its own buffer
        // either way, so mapping would save nothing.
        let input = match MappedFile::map(&file) {
            Ok(Some(map)) if is_legacy(&map) => Input::Whole(Whole::Mapped(map)),
            Ok(_) | Err(_) => Input::Stream(Box::new(file)),
        };
        FileReader::from_input(path, input)
    }

    #[cfg(test)]
    fn from_reader<R: Read + Send + 'static>(
        path: &str,
        input: R,
    ) -> Result<FileReader, CaptureError> {
        FileReader::from_input(path, Input::Stream(Box::new(input)))
    }

    fn from_input(path: &str, input: Input) -> Result<FileReader, CaptureError> {
        // The first bytes decide the format (for a stream, what one read
        // into a buffer of pcap-parser's initial size returns).
        let reader = match input {
            Input::Whole(whole) if is_legacy(whole.as_ref()) => {
                Blocks::Legacy(LegacyReader::new(LegacyBytes::Whole(whole)))
            }
            Input::Whole(whole) => Blocks::Parser(parser(path, Cursor::new(whole))?),
            Input::Stream(mut input) => {
                let mut first = vec![0u8; INITIAL_BUFFER];
                let n = input.read(&mut first).map_err(|source| CaptureError::Io {
                    path: path.to_string(),
                    source,
                })?;
                first.truncate(n);
                if is_legacy(&first) {
                    Blocks::Legacy(LegacyReader::new(LegacyBytes::Buffer {
                        buf: first,
                        input,
                        done: false,
                    }))
                } else {
                    Blocks::Parser(parser(path, Cursor::new(first).chain(input))?)
                }
            }
        };
        Ok(FileReader {
            path: path.to_string(),
            reader,
            interfaces: Vec::new(),
            nanos: false,
            held: None,
            spare: Vec::new(),
            exhausted: false,
            truncated_tail: false,
        })
    }

    /// Reads blocks until a packet is held, or the file ends.
    fn fill(&mut self) -> Result<(), CaptureError> {
        if self.held.is_some() || self.exhausted {
            return Ok(());
        }
        let reader = match &mut self.reader {
            Blocks::Legacy(legacy) => {
                return match legacy.next_record() {
                    Ok(Some(record)) => {
                        if let Some(header) = legacy.header.take() {
                            (self.nanos, self.interfaces) = legacy_header(&header);
                        }
                        let frac = if self.nanos {
                            record.ts_frac
                        } else {
                            record.ts_frac.saturating_mul(1000)
                        };
                        self.held = Some(Held {
                            ts: Timestamp::from_secs_nanos(record.ts_sec as u64, frac),
                            iface: 0,
                            orig_len: record.orig_len,
                            data: Vec::new(),
                            in_buffer: Some(record.data),
                        });
                        Ok(())
                    }
                    Ok(None) => {
                        self.exhausted = true;
                        self.truncated_tail = legacy.truncated;
                        Ok(())
                    }
                    Err(LegacyError::Io(source)) => Err(CaptureError::Io {
                        path: self.path.clone(),
                        source,
                    }),
                    Err(LegacyError::TooLarge) => Err(CaptureError::Parse {
                        path: self.path.clone(),
                        source: PcapError::BufferTooSmall,
                    }),
                };
            }
            Blocks::Parser(reader) => reader,
        };
        while self.held.is_none() && !self.exhausted {
            match reader.next() {
                Ok((offset, block)) => {
                    let mut held = None;
                    match block {
                        PcapBlockOwned::LegacyHeader(header) => {
                            (self.nanos, self.interfaces) = legacy_header(&header);
                        }
                        PcapBlockOwned::Legacy(frame) => {
                            let frac = if self.nanos {
                                frame.ts_usec
                            } else {
                                frame.ts_usec.saturating_mul(1000)
                            };
                            let mut data = std::mem::take(&mut self.spare);
                            data.clear();
                            let len = (frame.caplen as usize).min(frame.data.len());
                            data.extend_from_slice(&frame.data[..len]);
                            held = Some(Held {
                                ts: Timestamp::from_secs_nanos(frame.ts_sec as u64, frac),
                                iface: 0,
                                orig_len: frame.origlen,
                                data,
                                in_buffer: None,
                            });
                        }
                        PcapBlockOwned::NG(Block::SectionHeader(_)) => {
                            // A new section restarts interface numbering.
                            self.interfaces.clear();
                        }
                        PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                            let raw = idb.linktype.0 as u32;
                            self.interfaces.push(Interface {
                                link: LinkType::from_linktype(raw),
                                raw_link: raw,
                                resolution: idb.ts_resolution().unwrap_or(1_000_000),
                                offset: idb.ts_offset(),
                            });
                        }
                        PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                            let iface = epb.if_id as usize;
                            let (resolution, offset) = match self.interfaces.get(iface) {
                                Some(i) => (i.resolution.max(1), i.offset),
                                None => {
                                    return Err(CaptureError::Corrupt {
                                        path: self.path.clone(),
                                        detail: format!(
                                            "packet refers to undeclared interface {iface}"
                                        ),
                                    })
                                }
                            };
                            let ts = ng_timestamp(epb.ts_high, epb.ts_low, resolution, offset);
                            let mut data = std::mem::take(&mut self.spare);
                            data.clear();
                            let len = (epb.caplen as usize).min(epb.data.len());
                            data.extend_from_slice(&epb.data[..len]);
                            held = Some(Held {
                                ts,
                                iface,
                                orig_len: epb.origlen,
                                data,
                                in_buffer: None,
                            });
                        }
                        PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                            // No timestamp: the engine sees it at the time of the previous packet.
                            let mut data = std::mem::take(&mut self.spare);
                            data.clear();
                            let len = (spb.origlen as usize).min(spb.data.len());
                            data.extend_from_slice(&spb.data[..len]);
                            held = Some(Held {
                                ts: Timestamp::ZERO,
                                iface: 0,
                                orig_len: spb.origlen,
                                data,
                                in_buffer: None,
                            });
                        }
                        PcapBlockOwned::NG(_) => {}
                    }
                    reader.consume(offset);
                    self.held = held;
                }
                Err(PcapError::Eof) => self.exhausted = true,
                Err(PcapError::Incomplete(_)) => {
                    if reader.reader_exhausted() {
                        // Bytes remain that do not make a whole block.
                        self.truncated_tail = !reader.data().is_empty();
                        self.exhausted = true;
                        continue;
                    }
                    let before = reader.data().len();
                    reader.refill().map_err(|e| CaptureError::Parse {
                        path: self.path.clone(),
                        source: e.to_owned_vec(),
                    })?;
                    if reader.data().len() == before && !reader.reader_exhausted() {
                        // Buffer full and the block still incomplete: grow it.
                        let size = (before * 2).min(MAX_BUFFER);
                        if size <= before || !reader.grow(size) {
                            return Err(CaptureError::Corrupt {
                                path: self.path.clone(),
                                detail: format!("block larger than {MAX_BUFFER} bytes"),
                            });
                        }
                    }
                }
                Err(e) => {
                    return Err(CaptureError::Parse {
                        path: self.path.clone(),
                        source: e.to_owned_vec(),
                    })
                }
            }
        }
        Ok(())
    }
}

/// Whether a file's first bytes are a legacy pcap header (read by
/// `LegacyReader`; anything else goes to pcap-parser).
fn is_legacy(first: &[u8]) -> bool {
    !first.is_empty()
        && parse_sectionheaderblock(first).is_err()
        && parse_pcap_header(first).is_ok()
}

/// pcap-parser's reader over a file that is not legacy pcap.
fn parser<R: Read + Send + 'static>(
    path: &str,
    input: R,
) -> Result<Box<dyn PcapReaderIterator + Send>, CaptureError> {
    create_reader(INITIAL_BUFFER, input).map_err(|e| CaptureError::NotACapture {
        path: path.to_string(),
        detail: match e {
            PcapError::Eof => "empty file".to_string(),
            PcapError::HeaderNotRecognized => "unrecognised file header".to_string(),
            other => other.to_string(),
        },
    })
}

/// One record of a legacy pcap file, its bytes in the reader's buffer.
struct Record {
    ts_sec: u32,
    ts_frac: u32,
    orig_len: u32,
    data: Range<usize>,
}

/// Legacy pcap records read in place, with pcap-parser's framing and
/// errors: 16-byte record headers in the file's byte order (24, little
/// endian, in the "modified" format), and a record of `MAX_RECORD` bytes or
/// more is `Buffer is too small`. A file that ends inside a record ends
/// there, with `truncated` set (pcap-parser would call it an error and lose
/// nothing more, but the records before it are good data).
struct LegacyReader {
    bytes: LegacyBytes,
    /// Unread bytes are `bytes[start..end]`; when read in chunks, everything
    /// before `start` may be dropped at the next refill (the record handed
    /// out last lies there).
    start: usize,
    end: usize,
    big_endian: bool,
    record_header: usize,
    /// The file header, until the first record is read.
    header: Option<pcap_parser::PcapHeader>,
    /// The file ended inside a record.
    truncated: bool,
    /// A mapped file: its pages before this offset have been released.
    released: usize,
}

/// A mapped file's pages are released every time this many bytes have been
/// read past them: the resident set holds at most this much of the file (and
/// the kernel's read-ahead), for one `madvise` call per step. (Without it,
/// `analyze` of the 76 MB flood capture peaked at its tables plus 76 MB.)
const RELEASE_STEP: usize = 1 << 20;

/// A legacy pcap file's bytes.
enum LegacyBytes {
    /// All of them (a mapped file, the embedded capture): records are read
    /// where they lie, never moved.
    Whole(Whole),
    /// Read in chunks into `buf` (`MAX_RECORD` bytes, reused): the unread
    /// bytes move to its front before each read. `done`: a read returned 0.
    Buffer {
        buf: Vec<u8>,
        input: Box<dyn Read + Send>,
        done: bool,
    },
}

impl LegacyBytes {
    fn as_slice(&self) -> &[u8] {
        match self {
            LegacyBytes::Whole(whole) => whole.as_ref(),
            LegacyBytes::Buffer { buf, .. } => buf,
        }
    }

    /// No more bytes will come in.
    fn ended(&self) -> bool {
        match self {
            LegacyBytes::Whole(_) => true,
            LegacyBytes::Buffer { done, .. } => *done,
        }
    }
}

/// Why a legacy pcap file cannot be read further.
enum LegacyError {
    /// A record larger than the read buffer can grow to.
    TooLarge,
    Io(std::io::Error),
}

impl LegacyReader {
    /// `bytes` start with a legacy header (a `Buffer` holds what the first
    /// read returned).
    fn new(mut bytes: LegacyBytes) -> LegacyReader {
        let header = parse_pcap_header(bytes.as_slice()).ok().map(|(_, h)| h);
        let (big_endian, record_header, start) = match &header {
            Some(h) if h.is_modified_format() => (false, 24, h.size()),
            Some(h) => (h.is_bigendian(), 16, h.size()),
            None => (false, 16, 0),
        };
        let end = bytes.as_slice().len();
        if let LegacyBytes::Buffer { buf, .. } = &mut bytes {
            buf.resize(MAX_RECORD, 0);
        }
        LegacyReader {
            bytes,
            start,
            end,
            big_endian,
            record_header,
            header,
            truncated: false,
            released: 0,
        }
    }

    fn bytes(&self, range: Range<usize>) -> &[u8] {
        self.bytes.as_slice().get(range).unwrap_or_default()
    }

    fn u32_at(&self, at: usize) -> u32 {
        let b = match self.bytes.as_slice().get(at..at + 4) {
            Some(&[a, b, c, d]) => [a, b, c, d],
            _ => [0; 4],
        };
        if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    }

    /// The next record, `None` at the end of the file.
    fn next_record(&mut self) -> Result<Option<Record>, LegacyError> {
        loop {
            let available = self.end - self.start;
            let h = self.record_header;
            let mut needed = h;
            if available >= h {
                let caplen = self.u32_at(self.start + 8) as usize;
                needed = h.saturating_add(caplen);
                // A buffer of MAX_RECORD bytes never holds a record that
                // long whole after a record before it: the size check
                // keeps whole files to the same limit.
                if available >= needed && needed < MAX_RECORD {
                    let at = self.start;
                    self.start += needed;
                    if let LegacyBytes::Whole(Whole::Mapped(map)) = &self.bytes {
                        if at.saturating_sub(self.released) >= RELEASE_STEP {
                            map.release_before(at);
                            self.released = at;
                        }
                    }
                    return Ok(Some(Record {
                        ts_sec: self.u32_at(at),
                        ts_frac: self.u32_at(at + 4),
                        orig_len: self.u32_at(at + 12),
                        data: at + h..at + needed,
                    }));
                }
            } else if available == 0 && self.bytes.ended() {
                return Ok(None);
            }
            // (Read in chunks, a record this long fails here before the
            // input ends: the file ending is only learnt inside a record
            // shorter than the buffer.)
            if needed >= MAX_RECORD {
                return Err(LegacyError::TooLarge);
            }
            let (buf, input, done) = match &mut self.bytes {
                LegacyBytes::Buffer { buf, input, done } if !*done => (buf, input, done),
                _ => {
                    // The file ends inside a record (tcpdump killed
                    // mid-write, a copy taken while it ran): everything
                    // before it stands; the caller reports the cut record.
                    self.truncated = true;
                    self.start = self.end;
                    return Ok(None);
                }
            };
            // Keep the unread bytes, drop the rest, read more behind them.
            buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            let n = input.read(&mut buf[self.end..]).map_err(LegacyError::Io)?;
            *done = n == 0;
            self.end += n;
        }
    }
}

/// A legacy file's timestamp precision (nanoseconds?) and its one interface.
fn legacy_header(header: &pcap_parser::PcapHeader) -> (bool, Vec<Interface>) {
    let raw = header.network.0 as u32;
    let interface = Interface {
        link: LinkType::from_linktype(raw),
        raw_link: raw,
        resolution: 0,
        offset: 0,
    };
    (header.is_nanosecond_precision(), vec![interface])
}

fn ng_timestamp(high: u32, low: u32, resolution: u64, offset: i64) -> Timestamp {
    let units = ((high as u64) << 32) | low as u64;
    let secs = (units / resolution) as i64 + offset;
    let frac = units % resolution;
    let nanos = (frac as u128 * 1_000_000_000 / resolution as u128) as u32;
    Timestamp::from_secs_nanos(secs.max(0) as u64, nanos)
}

/// Reads one or more capture files, yielding frames in timestamp order.
///
/// Frames of link types podpath cannot decode are not yielded; they are
/// counted per link type ([`FileSource::unsupported`]).
pub struct FileSource {
    files: Vec<FileReader>,
    current: Option<Held>,
    last_ts: Timestamp,
    unsupported: Vec<(u32, u64)>,
}

impl FileSource {
    /// Opens every file and reads its header; any file that cannot be opened
    /// or is not a capture fails the whole call, naming the file.
    pub fn open<S: AsRef<str>>(paths: &[S]) -> Result<FileSource, CaptureError> {
        let mut files = Vec::with_capacity(paths.len());
        for path in paths {
            let mut reader = FileReader::open(path.as_ref())?;
            reader.fill()?;
            files.push(reader);
        }
        Ok(FileSource {
            files,
            current: None,
            last_ts: Timestamp::ZERO,
            unsupported: Vec::new(),
        })
    }

    /// Reads a capture held in memory (the embedded seed capture, tests).
    pub fn from_bytes(name: &str, bytes: &'static [u8]) -> Result<FileSource, CaptureError> {
        let mut reader = FileReader::from_input(name, Input::Whole(Whole::Static(bytes)))?;
        reader.fill()?;
        Ok(FileSource {
            files: vec![reader],
            current: None,
            last_ts: Timestamp::ZERO,
            unsupported: Vec::new(),
        })
    }

    /// Frames skipped because podpath has no decoder for their link type:
    /// (pcap LINKTYPE number, frames).
    pub fn unsupported(&self) -> &[(u32, u64)] {
        &self.unsupported
    }

    /// What the files held that no frame came of, in the engine's skip
    /// vocabulary: frames of a link type podpath cannot decode, records cut
    /// at the end of a file. For `Event::Skipped`, once the files are read.
    pub fn skipped(&self) -> Vec<(SkipReason, u64)> {
        let unsupported: u64 = self.unsupported.iter().map(|&(_, n)| n).sum();
        let truncated = self.files.iter().filter(|f| f.truncated_tail).count() as u64;
        [
            (SkipReason::UnsupportedLinkType, unsupported),
            (SkipReason::TruncatedRecord, truncated),
        ]
        .into_iter()
        .filter(|&(_, n)| n > 0)
        .collect()
    }

    /// Files that ended in the middle of a record.
    pub fn truncated_files(&self) -> Vec<&str> {
        self.files
            .iter()
            .filter(|f| f.truncated_tail)
            .map(|f| f.path.as_str())
            .collect()
    }

    fn count_unsupported(&mut self, raw: u32) {
        match self.unsupported.iter_mut().find(|(l, _)| *l == raw) {
            Some((_, n)) => *n += 1,
            None => self.unsupported.push((raw, 1)),
        }
    }
}

impl PacketSource for FileSource {
    fn next_packet(&mut self) -> Result<Next<'_>, CaptureError> {
        // Give the buffer of the packet handed out last time back for reuse.
        let mut spare = self.current.take().map(|h| h.data);
        loop {
            for f in &mut self.files {
                if f.spare.capacity() == 0 {
                    if let Some(buf) = spare.take() {
                        f.spare = buf;
                    }
                }
                f.fill()?;
            }
            let pick = self
                .files
                .iter()
                .enumerate()
                .filter_map(|(i, f)| f.held.as_ref().map(|h| (h.ts, i)))
                .min();
            let Some((_, index)) = pick else {
                return Ok(Next::End);
            };
            let file = &mut self.files[index];
            let Some(mut held) = file.held.take() else {
                return Ok(Next::End);
            };
            if held.ts == Timestamp::ZERO {
                held.ts = self.last_ts;
            }
            self.last_ts = self.last_ts.max(held.ts);
            let link = match file.interfaces.get(held.iface) {
                Some(Interface {
                    link: Some(link), ..
                }) => *link,
                Some(i) => {
                    let raw = i.raw_link;
                    spare = Some(held.data);
                    self.count_unsupported(raw);
                    continue;
                }
                None => {
                    spare = Some(held.data);
                    self.count_unsupported(u32::MAX);
                    continue;
                }
            };
            let interface = u16::try_from(held.iface).unwrap_or(u16::MAX);
            let held = self.current.insert(held);
            let data = match (&held.in_buffer, &self.files[index].reader) {
                (Some(range), Blocks::Legacy(legacy)) => legacy.bytes(range.clone()),
                _ => &held.data[..],
            };
            return Ok(Next::Packet(RawPacket {
                ts: held.ts,
                link,
                data,
                orig_len: held.orig_len,
                packet_type: None,
                interface,
            }));
        }
    }
}

/// Frames handed from the reader thread to the engine's per batch: one
/// channel operation per batch, not per frame. 1024 frames of the benchmark
/// capture's mix (~170 bytes each) are ~170 KiB, within a core's L2 cache
/// (2 MiB here) between the copy in and the engine reading it; 256 woke the
/// reader twice as often (1 480 context switches for 200 000 frames, 680
/// with 1024) for no gain.
const BATCH_FRAMES: usize = 1024;
/// A batch is handed over early once its frames hold this many bytes.
const BATCH_BYTES: usize = 256 << 10;
/// Batches in flight: filled and waiting, besides the one each side holds.
/// Bounds the read-ahead (and its memory) while absorbing the reader's
/// bursts (a pcapng block refill, a page fault on a mapped file).
const BATCHES_QUEUED: usize = 4;

/// One frame of a batch; its bytes are `Batch::bytes[data]`.
#[derive(Clone, Debug)]
struct Frame {
    ts: Timestamp,
    link: LinkType,
    orig_len: u32,
    packet_type: Option<PacketType>,
    interface: u16,
    data: Range<usize>,
}

/// Frames read ahead, their bytes back to back. Batches go back to the
/// reader once read, so their buffers are reused, not reallocated.
#[derive(Debug, Default)]
struct Batch {
    bytes: Vec<u8>,
    frames: Vec<Frame>,
}

impl Batch {
    fn push(&mut self, p: &RawPacket<'_>) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(p.data);
        self.frames.push(Frame {
            ts: p.ts,
            link: p.link,
            orig_len: p.orig_len,
            packet_type: p.packet_type,
            interface: p.interface,
            data: start..self.bytes.len(),
        });
    }

    fn is_full(&self) -> bool {
        self.frames.len() >= BATCH_FRAMES || self.bytes.len() >= BATCH_BYTES
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.frames.clear();
    }
}

/// A [`FileSource`] read on a thread of its own: file I/O (or page faults of
/// a mapped file), record parsing and the merge run there, and frames come
/// over in batches through a bounded channel, in the order the source
/// yields them. An error of the source arrives after every frame read
/// before it, as reading in line would deliver them.
///
/// `analyze` uses it only when asked (`PODPATH_ANALYZE_THREADS=2`): on the
/// 2-core benchmark machine, shared with other work, it did not pay. With
/// legacy pcap read in place the source is only ~5 % of `analyze`; the
/// engine's thread did ~8 % less (83 vs 91 ms of CPU on the 200 000-packet
/// benchmark capture, perf per thread), the reader ~18 ms more (the copy
/// into batches, wake-ups). Interleaved runs against `tcpdump -r -w
/// /dev/null`, 25 to 100 rounds each: CPU 2.88–2.94× with the thread,
/// 2.54–2.62× without; wall time 2.42–2.86× with, 2.43–2.62× without (the
/// thread ahead only when podpath ran at nice -20). A machine with an idle
/// core could gain up to the ~8 %.
pub struct ReadAhead {
    filled: Receiver<Result<Batch, CaptureError>>,
    emptied: SyncSender<Batch>,
    batch: Batch,
    next: usize,
    reader: JoinHandle<FileSource>,
}

impl ReadAhead {
    /// Starts the reader thread over an opened source.
    pub fn spawn(source: FileSource) -> std::io::Result<ReadAhead> {
        let (fill, filled) = sync_channel(BATCHES_QUEUED);
        // Room for every batch there is, so handing one back never waits.
        let (emptied, empty) = sync_channel(BATCHES_QUEUED + 2);
        for _ in 0..BATCHES_QUEUED + 1 {
            let _ = emptied.send(Batch::default());
        }
        let reader = std::thread::Builder::new()
            .name("podpath-reader".into())
            .spawn(move || read_ahead(source, fill, empty))?;
        Ok(ReadAhead {
            filled,
            emptied,
            batch: Batch::default(),
            next: 0,
            reader,
        })
    }

    /// Waits for the reader thread and returns the source, for what it
    /// counted (unsupported link types, truncated files). A panic on the
    /// reader thread goes on here.
    pub fn finish(self) -> FileSource {
        let ReadAhead {
            filled,
            emptied,
            reader,
            ..
        } = self;
        // A reader still running (the engine stopped early) sees both
        // channels closed and returns.
        drop(filled);
        drop(emptied);
        match reader.join() {
            Ok(source) => source,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

/// The reader thread: fills batches from `source` until it ends, fails, or
/// the other side hangs up.
fn read_ahead(
    mut source: FileSource,
    fill: SyncSender<Result<Batch, CaptureError>>,
    empty: Receiver<Batch>,
) -> FileSource {
    while let Ok(mut batch) = empty.recv() {
        batch.clear();
        let outcome = loop {
            match source.next_packet() {
                Ok(Next::Packet(p)) => {
                    batch.push(&p);
                    if batch.is_full() {
                        break Ok(false);
                    }
                }
                // Files have no idle time; nothing to hand over.
                Ok(Next::Idle { .. }) => {}
                Ok(Next::End) => break Ok(true),
                Err(e) => break Err(e),
            }
        };
        let (last, error) = match outcome {
            Ok(end) => (end, None),
            Err(e) => (true, Some(e)),
        };
        if !batch.frames.is_empty() && fill.send(Ok(batch)).is_err() {
            break;
        }
        if let Some(e) = error {
            let _ = fill.send(Err(e));
        }
        if last {
            break;
        }
    }
    source
}

impl PacketSource for ReadAhead {
    fn next_packet(&mut self) -> Result<Next<'_>, CaptureError> {
        while self.next >= self.batch.frames.len() {
            match self.filled.recv() {
                Ok(Ok(batch)) => {
                    let done = std::mem::replace(&mut self.batch, batch);
                    let _ = self.emptied.try_send(done);
                    self.next = 0;
                }
                Ok(Err(e)) => return Err(e),
                // The reader hung up: the source ended (or the thread
                // panicked, which `finish` passes on).
                Err(_) => return Ok(Next::End),
            }
        }
        let frame = &self.batch.frames[self.next];
        self.next += 1;
        Ok(Next::Packet(RawPacket {
            ts: frame.ts,
            link: frame.link,
            data: self.batch.bytes.get(frame.data.clone()).unwrap_or_default(),
            orig_len: frame.orig_len,
            packet_type: frame.packet_type,
            interface: frame.interface,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    /// Hands out `head`, then fails every read.
    struct FailsAfter(Option<Vec<u8>>);

    impl Read for FailsAfter {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            match self.0.take() {
                Some(head) => {
                    buf[..head.len()].copy_from_slice(&head);
                    Ok(head.len())
                }
                None => Err(std::io::Error::other("disk gone")),
            }
        }
    }

    fn assert_read_error(err: Option<CaptureError>) {
        assert!(
            matches!(&err, Some(CaptureError::Io { path, .. }) if path == "x.pcap"),
            "{err:?}"
        );
        let err = err.unwrap();
        // The path names the place; the OS error is the source, printed
        // once by the binary's `{:#}`.
        assert_eq!(err.to_string(), "x.pcap");
        assert_eq!(
            err.source().map(ToString::to_string).as_deref(),
            Some("disk gone")
        );
        assert_eq!(
            format!("{:#}", anyhow::Error::from(err)),
            "x.pcap: disk gone"
        );
    }

    #[test]
    fn a_failed_first_read_keeps_the_os_error_as_its_source() {
        assert_read_error(FileReader::from_reader("x.pcap", FailsAfter(None)).err());
    }

    #[test]
    fn a_failed_read_inside_a_legacy_pcap_keeps_the_os_error_as_its_source() {
        // Legacy header (little-endian, Ethernet), then a record header
        // announcing 100 bytes that the failing read never delivers.
        let mut head = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
        head.extend([0; 8]);
        head.extend(65535u32.to_le_bytes());
        head.extend(1u32.to_le_bytes());
        head.extend([0; 8]);
        head.extend(100u32.to_le_bytes());
        head.extend(100u32.to_le_bytes());
        let mut reader = FileReader::from_reader("x.pcap", FailsAfter(Some(head))).unwrap();
        assert_read_error(reader.fill().err());
    }

    /// A little-endian microsecond pcap (Ethernet) of `sizes.len()` records,
    /// record `i` holding `sizes[i]` bytes of the value `i as u8`, at second `i`.
    fn pcap(sizes: &[usize]) -> Vec<u8> {
        let mut out = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
        out.extend([0; 8]);
        out.extend(262_144u32.to_le_bytes());
        out.extend(1u32.to_le_bytes());
        for (i, &size) in sizes.iter().enumerate() {
            out.extend((i as u32).to_le_bytes());
            out.extend(0u32.to_le_bytes());
            out.extend((size as u32).to_le_bytes());
            out.extend((size as u32 + 4).to_le_bytes());
            out.extend(std::iter::repeat_n(i as u8, size));
        }
        out
    }

    /// A frame as yielded: time, original length, bytes.
    type Yielded = (Timestamp, u32, Vec<u8>);

    /// Every frame a source yields, then how it ended (the error, if any).
    fn drain(source: &mut dyn PacketSource) -> (Vec<Yielded>, Option<String>) {
        let mut frames = Vec::new();
        loop {
            match source.next_packet() {
                Ok(Next::Packet(p)) => frames.push((p.ts, p.orig_len, p.data.to_vec())),
                Ok(Next::Idle { .. }) => {}
                Ok(Next::End) => return (frames, None),
                Err(e) => return (frames, Some(format!("{:#}", anyhow::Error::from(e)))),
            }
        }
    }

    #[test]
    fn batches_hand_over_every_frame_in_order_whatever_its_size() {
        // Past several batches by count (1024) and by bytes (256 KiB, and
        // frames larger than that on their own).
        let sizes: Vec<usize> = (0..5000)
            .map(|i| match i % 1000 {
                7 => 300_000,
                8 => 0,
                n => 40 + n % 200,
            })
            .collect();
        let bytes: &'static [u8] = Box::leak(pcap(&sizes).into_boxed_slice());
        let (inline, end) = drain(&mut FileSource::from_bytes("x.pcap", bytes).unwrap());
        assert_eq!(end, None);
        assert_eq!(inline.len(), sizes.len());
        let mut ahead = ReadAhead::spawn(FileSource::from_bytes("x.pcap", bytes).unwrap()).unwrap();
        let (read_ahead, end) = drain(&mut ahead);
        assert_eq!(end, None);
        assert!(read_ahead == inline, "frames differ");
        // Past the end it stays ended, and the source comes back.
        assert!(matches!(ahead.next_packet(), Ok(Next::End)));
        assert!(ahead.finish().truncated_files().is_empty());
    }

    #[test]
    fn an_error_arrives_after_the_frames_read_before_it() {
        // Three records, then a record header announcing bytes that a
        // failing read never delivers.
        let mut head = pcap(&[60, 70, 80]);
        head.extend(9u32.to_le_bytes());
        head.extend(0u32.to_le_bytes());
        head.extend(100u32.to_le_bytes());
        head.extend(100u32.to_le_bytes());
        let source = |head: &[u8]| FileSource {
            files: vec![
                FileReader::from_reader("x.pcap", FailsAfter(Some(head.to_vec()))).unwrap(),
            ],
            current: None,
            last_ts: Timestamp::ZERO,
            unsupported: Vec::new(),
        };
        let inline = drain(&mut source(&head));
        assert_eq!(inline.0.len(), 3);
        assert_eq!(inline.1.as_deref(), Some("x.pcap: disk gone"));
        let mut ahead = ReadAhead::spawn(source(&head)).unwrap();
        assert!(drain(&mut ahead) == inline);
        ahead.finish();
    }

    #[test]
    fn a_whole_file_reads_like_one_read_in_chunks() {
        let one = |reader: FileReader| {
            let mut source = FileSource {
                files: vec![reader],
                current: None,
                last_ts: Timestamp::ZERO,
                unsupported: Vec::new(),
            };
            let (frames, end) = drain(&mut source);
            (frames, end, source.truncated_files().len())
        };
        let both = |bytes: Vec<u8>| {
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            let whole =
                one(FileReader::from_input("x.pcap", Input::Whole(Whole::Static(bytes))).unwrap());
            let chunks = one(FileReader::from_reader("x.pcap", Cursor::new(bytes)).unwrap());
            assert!(
                whole == chunks,
                "{:?} / {:?}",
                (whole.0.len(), &whole.1, whole.2),
                (chunks.0.len(), &chunks.1, chunks.2)
            );
            whole
        };
        // The largest record that reads (header and data one byte short of
        // the limit), past a first small one so the buffer has moved.
        let (frames, end, cut) = both(pcap(&[50, MAX_RECORD - 17, 60]));
        assert_eq!((frames.len(), end, cut), (3, None, 0));
        // One byte more is too large, however it is read.
        let (frames, end, _) = both(pcap(&[50, MAX_RECORD - 16, 60]));
        assert_eq!(frames.len(), 1);
        assert!(
            end.as_ref().is_some_and(|e| e.contains("too small")),
            "{end:?}"
        );
        // Cut inside the last record's data, and inside its header.
        let whole = pcap(&[50, 70, 90]);
        let (frames, end, cut) = both(whole[..whole.len() - 10].to_vec());
        assert_eq!((frames.len(), end, cut), (2, None, 1));
        let (frames, end, cut) = both(whole[..whole.len() - 90 - 8].to_vec());
        assert_eq!((frames.len(), end, cut), (2, None, 1));
    }
}
