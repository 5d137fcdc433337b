//! Capture files: pcap (both byte orders, micro- and nanosecond, the
//! "modified" variant) and pcapng (several interfaces, any timestamp
//! resolution). pcapng is read with pcap-parser; legacy pcap records are
//! parsed in place from a large buffer (`LegacyReader`, same framing and
//! errors as pcap-parser) so frames are handed out without a copy. Several
//! files are merged in timestamp order, so a capture split by `tcpdump -C`
//! or taken per interface reads as one.

use std::fs::File;
use std::io::{Cursor, Read};
use std::ops::Range;

use pcap_parser::pcapng::Block;
use pcap_parser::traits::PcapReaderIterator;
use pcap_parser::{
    create_reader, parse_pcap_header, parse_sectionheaderblock, PcapBlockOwned, PcapError,
};

use super::{CaptureError, Next, PacketSource, RawPacket};
use crate::decode::LinkType;
use crate::engine::SkipReason;
use crate::Timestamp;

/// Initial read buffer; grown up to `MAX_BUFFER` for blocks larger than it.
const INITIAL_BUFFER: usize = 1 << 20;
const MAX_BUFFER: usize = 64 << 20;

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
        FileReader::from_reader(path, file)
    }

    fn from_reader<R: Read + Send + 'static>(
        path: &str,
        mut input: R,
    ) -> Result<FileReader, CaptureError> {
        // What pcap-parser's `create_reader` reads first (one read into a
        // buffer of this size) decides the format; a legacy header goes to
        // `LegacyReader`, anything else to pcap-parser as before.
        let mut first = vec![0u8; INITIAL_BUFFER];
        let n = input.read(&mut first).map_err(|source| CaptureError::Io {
            path: path.to_string(),
            source,
        })?;
        first.truncate(n);
        let legacy =
            n > 0 && parse_sectionheaderblock(&first).is_err() && parse_pcap_header(&first).is_ok();
        let reader = if legacy {
            Blocks::Legacy(LegacyReader::new(first, Box::new(input)))
        } else {
            let input = Cursor::new(first).chain(input);
            Blocks::Parser(create_reader(INITIAL_BUFFER, input).map_err(|e| {
                CaptureError::NotACapture {
                    path: path.to_string(),
                    detail: match e {
                        PcapError::Eof => "empty file".to_string(),
                        PcapError::HeaderNotRecognized => "unrecognised file header".to_string(),
                        other => other.to_string(),
                    },
                }
            })?)
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

/// One record of a legacy pcap file, its bytes in the reader's buffer.
struct Record {
    ts_sec: u32,
    ts_frac: u32,
    orig_len: u32,
    data: Range<usize>,
}

/// Legacy pcap records read in place, with pcap-parser's framing and
/// errors: 16-byte record headers in the file's byte order (24, little
/// endian, in the "modified" format), and a record that cannot fit the
/// buffer is `Buffer is too small`. A file that ends inside a record ends
/// there, with `truncated` set (pcap-parser would call it an error and lose
/// nothing more, but the records before it are good data).
struct LegacyReader {
    input: Box<dyn Read + Send>,
    buf: Vec<u8>,
    /// Unread bytes are `buf[start..end]`; everything before `start` may be
    /// dropped at the next refill (the record handed out last lies there).
    start: usize,
    end: usize,
    input_done: bool,
    big_endian: bool,
    record_header: usize,
    /// The file header, until the first record is read.
    header: Option<pcap_parser::PcapHeader>,
    /// The file ended inside a record.
    truncated: bool,
}

/// Why a legacy pcap file cannot be read further.
enum LegacyError {
    /// A record larger than the read buffer can grow to.
    TooLarge,
    Io(std::io::Error),
}

impl LegacyReader {
    /// `first` holds the file's first bytes, which start with a legacy header.
    fn new(mut first: Vec<u8>, input: Box<dyn Read + Send>) -> LegacyReader {
        let header = parse_pcap_header(&first).ok().map(|(_, h)| h);
        let (big_endian, record_header, start) = match &header {
            Some(h) if h.is_modified_format() => (false, 24, h.size()),
            Some(h) => (h.is_bigendian(), 16, h.size()),
            None => (false, 16, 0),
        };
        let end = first.len();
        first.resize(INITIAL_BUFFER, 0);
        LegacyReader {
            input,
            buf: first,
            start,
            end,
            input_done: false,
            big_endian,
            record_header,
            header,
            truncated: false,
        }
    }

    fn bytes(&self, range: Range<usize>) -> &[u8] {
        self.buf.get(range).unwrap_or_default()
    }

    fn u32_at(&self, at: usize) -> u32 {
        let b = match self.buf.get(at..at + 4) {
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
                if available >= needed {
                    let at = self.start;
                    self.start += needed;
                    return Ok(Some(Record {
                        ts_sec: self.u32_at(at),
                        ts_frac: self.u32_at(at + 4),
                        orig_len: self.u32_at(at + 12),
                        data: at + h..at + needed,
                    }));
                }
            } else if available == 0 && self.input_done {
                return Ok(None);
            }
            if self.input_done {
                // The file ends inside a record (tcpdump killed mid-write,
                // a copy taken while it ran): everything before it stands;
                // the caller reports the cut record.
                self.truncated = true;
                self.start = self.end;
                return Ok(None);
            }
            if needed >= self.buf.len() {
                return Err(LegacyError::TooLarge);
            }
            // Keep the unread bytes, drop the rest, read more behind them.
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            let n = self
                .input
                .read(&mut self.buf[self.end..])
                .map_err(LegacyError::Io)?;
            self.input_done = n == 0;
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
        let mut reader = FileReader::from_reader(name, bytes)?;
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
}
