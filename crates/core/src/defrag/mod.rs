//! Bounded IP reassembly (IPv4 RFC 791, IPv6 RFC 8200 §4.5), and the one
//! entry point from a captured frame to a decoded packet, [`Defrag::decode`].
//!
//! DNS responses larger than the path MTU arrive as IP fragments; only the
//! first carries the UDP header. [`Defrag::decode`] decodes a frame's
//! network layer; a whole packet goes straight on to its transport layer, a
//! fragment (its data, byte offset, more-fragments flag) is held here, and
//! the transport layer of its datagram is decoded once all of it has arrived.
//!
//! A datagram is keyed by (source, destination, identification, protocol for
//! IPv4). Its data is copied into one buffer at the fragment's offset; a list
//! of received ranges tells when it is complete: the last fragment (more = 0)
//! fixes the length, and the ranges must cover it without holes.
//!
//! Hostile input is dropped and counted, never buffered without bound:
//! - at most `max_datagrams` in flight; a new one evicts the oldest;
//! - at most [`MAX_DATAGRAM`] bytes and [`MAX_FRAGMENTS`] fragments each;
//! - overlapping fragments drop the datagram (RFC 5722 for IPv6; for IPv4
//!   an overlap is the classic evasion trick, and real stacks never send
//!   one), an exact duplicate is ignored;
//! - a datagram not complete `timeout_secs` (packet time) after its first
//!   fragment is dropped;
//! - a fragment cut by the snap length cannot be reassembled: dropped.

use std::net::IpAddr;

use crate::decode::{self, DecodeError, FragmentInfo, LinkType, Network, Packet};
use crate::hash::HashMap;
use crate::Timestamp;

/// Largest reassembled payload: the IPv4 total length is 16 bits, and an
/// IPv6 payload without a jumbo option is too.
pub const MAX_DATAGRAM: usize = 65_535;
/// Fragments per datagram: a 65 535-byte datagram at a 1280-byte MTU needs
/// 52; more is someone sending 8-byte fragments to make the overlap check costly.
pub const MAX_FRAGMENTS: usize = 128;

/// Why fragments were not kept (the engine counts them as
/// `SkipReason::FragmentOverlap`, `FragmentMalformed` or `FragmentDuplicate`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// A copy of a fragment already held (only this fragment is skipped).
    Duplicate,
    /// Fragments with overlapping data.
    Overlap,
    /// Too large, too many pieces, inconsistent end, cut by the snap length.
    Malformed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    src: IpAddr,
    dst: IpAddr,
    id: u32,
    /// IPv4 protocol; 0 for IPv6, where the key is (src, dst, id) only.
    protocol: u8,
}

#[derive(Debug)]
struct Datagram {
    first_seen: Timestamp,
    data: Vec<u8>,
    /// Received byte ranges `[start, end)`, unordered.
    ranges: Vec<(u32, u32)>,
    /// Payload length, once the last fragment arrived.
    total: Option<u32>,
    /// Protocol from the fragment at offset 0 (IPv6: its next header).
    protocol: Option<u8>,
}

impl Datagram {
    fn complete(&self) -> Option<u32> {
        let total = self.total?;
        let mut ranges = self.ranges.clone();
        ranges.sort_unstable();
        let mut covered = 0u32;
        for (start, end) in ranges {
            if start > covered {
                return None;
            }
            covered = covered.max(end);
        }
        (covered >= total).then_some(total)
    }
}

/// One fragment, as [`Defrag::decode`] hands it over.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fragment<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IPv4 protocol, or the IPv6 fragment header's next header.
    pub protocol: u8,
    pub is_v6: bool,
    pub info: FragmentInfo,
    /// Captured data.
    pub data: &'a [u8],
    /// Data length according to the IP header.
    pub wire_len: u32,
}

impl<'a> Fragment<'a> {
    fn new(net: &Network<'a>, info: FragmentInfo) -> Fragment<'a> {
        Fragment {
            src: net.src,
            dst: net.dst,
            protocol: net.protocol,
            is_v6: net.is_v6,
            info,
            data: net.payload,
            wire_len: net.payload_len,
        }
    }
}

/// What became of a fragment.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Held until the rest arrives.
    Held,
    /// The datagram is complete: its payload and upper-layer protocol.
    Complete { protocol: u8, payload: Vec<u8> },
    /// An exact copy of a fragment already held (retransmission, capture
    /// on two interfaces).
    Duplicate,
    /// The fragment and every one held for its datagram were dropped;
    /// `fragments` of them (this one included), for this skip reason.
    Dropped { reason: DropReason, fragments: u64 },
}

/// What one captured frame came to.
///
/// A packet borrows the frame (`'f`) or, when reassembled, the caller's
/// buffer (`'b`); the two are kept apart so that a whole packet outlives the
/// buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoded<'f, 'b> {
    /// A whole packet, read from the frame.
    Packet(Packet<'f>),
    /// The datagram this fragment completed, read from the reassembly
    /// buffer; its network-layer fields are this fragment's.
    Reassembled(Packet<'b>),
    /// A fragment, held until the rest of its datagram arrives.
    Held,
    /// Not a packet podpath reads: one frame to count as skipped for
    /// its `DecodeError`.
    Invalid(DecodeError),
    /// Fragments given up: `count` of them (this one included) to count as
    /// skipped for `reason`.
    Skipped { reason: DropReason, count: u64 },
}

impl<'f, 'b> Decoded<'f, 'b> {
    /// The packet, whole or reassembled.
    pub fn packet<'a>(self) -> Option<Packet<'a>>
    where
        'f: 'a,
        'b: 'a,
    {
        match self {
            Decoded::Packet(p) | Decoded::Reassembled(p) => Some(p),
            _ => None,
        }
    }
}

/// Datagrams that left the table without completing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Expired {
    pub datagrams: u64,
    pub fragments: u64,
}

/// Counters; cumulative.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DefragStats {
    pub reassembled: u64,
    pub duplicates: u64,
    pub overlaps: u64,
    pub malformed: u64,
    pub timed_out: u64,
    pub evicted: u64,
}

/// The reassembly table.
#[derive(Debug)]
pub struct Defrag {
    map: HashMap<Key, Datagram>,
    max_datagrams: usize,
    timeout_secs: f64,
    stats: DefragStats,
}

impl Defrag {
    pub fn new(max_datagrams: usize, timeout_secs: f64) -> Defrag {
        Defrag {
            map: HashMap::default(),
            max_datagrams: max_datagrams.max(1),
            timeout_secs,
            stats: DefragStats::default(),
        }
    }

    pub fn stats(&self) -> DefragStats {
        self.stats
    }

    /// Datagrams in flight.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Buffered bytes across all datagrams in flight.
    pub fn buffered_bytes(&self) -> usize {
        self.map.values().map(|d| d.data.capacity()).sum()
    }

    /// Decodes one captured frame at packet time `now`: the way from bytes
    /// to a [`Packet`] for the engine, tests, benches and fuzz targets alike.
    /// A fragment is held here; the one that completes its datagram comes
    /// back as the reassembled packet, whose bytes are moved into
    /// `reassembled` (the only allocation, and only for fragments).
    /// `evicted` receives the datagram pushed out to make room, if any.
    // Inlined into the caller, with the fragment path out of line: as a
    // call of its own, moving the network view and the packet through it
    // cost 90 more instructions per established TCP segment through
    // `Engine::process` (callgrind: 851 against 761 for the code before
    // this entry point; 756 as written).
    #[inline]
    pub fn decode<'f, 'b>(
        &mut self,
        now: Timestamp,
        link: LinkType,
        frame: &'f [u8],
        reassembled: &'b mut Vec<u8>,
        evicted: &mut Expired,
    ) -> Decoded<'f, 'b> {
        // Borrowed, not moved out of the `Result`: the move was a copy of
        // the whole view.
        let net = &decode::network(link, frame);
        let net = match net {
            Ok(net) => net,
            Err(e) => return Decoded::Invalid(*e),
        };
        if let Some(info) = net.fragment {
            return self.reassemble(now, net, info, reassembled, evicted);
        }
        match net.packet() {
            Ok(p) => Decoded::Packet(p),
            Err(e) => Decoded::Invalid(e),
        }
    }

    #[inline(never)]
    fn reassemble<'f, 'b>(
        &mut self,
        now: Timestamp,
        net: &Network<'f>,
        info: FragmentInfo,
        reassembled: &'b mut Vec<u8>,
        evicted: &mut Expired,
    ) -> Decoded<'f, 'b> {
        match self.insert(now, &Fragment::new(net, info), evicted) {
            Outcome::Held => Decoded::Held,
            Outcome::Duplicate => Decoded::Skipped {
                reason: DropReason::Duplicate,
                count: 1,
            },
            Outcome::Dropped { reason, fragments } => Decoded::Skipped {
                reason,
                count: fragments,
            },
            Outcome::Complete { protocol, payload } => {
                *reassembled = payload;
                match net.reassembled(protocol, reassembled) {
                    Ok(p) => Decoded::Reassembled(p),
                    Err(e) => Decoded::Invalid(e),
                }
            }
        }
    }

    /// Adds one fragment at packet time `now`. `evicted` receives the
    /// datagram pushed out to make room, if any.
    pub(crate) fn insert(
        &mut self,
        now: Timestamp,
        frag: &Fragment<'_>,
        evicted: &mut Expired,
    ) -> Outcome {
        let key = Key {
            src: frag.src,
            dst: frag.dst,
            id: frag.info.id,
            protocol: if frag.is_v6 { 0 } else { frag.protocol },
        };
        let start = frag.info.offset;
        let len = frag.wire_len;
        let end = start.saturating_add(len);
        let malformed = frag.data.len() as u64 != u64::from(len)
            || end as usize > MAX_DATAGRAM
            || (frag.info.more && (len == 0 || len % 8 != 0));
        if malformed {
            return self.drop_datagram(&key, DropReason::Malformed);
        }
        if !self.map.contains_key(&key) {
            if self.map.len() >= self.max_datagrams {
                *evicted = self.evict_oldest();
            }
            self.map.insert(
                key,
                Datagram {
                    first_seen: now,
                    data: Vec::new(),
                    ranges: Vec::new(),
                    total: None,
                    protocol: None,
                },
            );
        }
        let Some(dg) = self.map.get_mut(&key) else {
            return Outcome::Held;
        };
        // An exact repeat of a held fragment changes nothing.
        if dg.ranges.contains(&(start, end))
            && dg.data.get(start as usize..end as usize) == Some(frag.data)
            && (frag.info.more || dg.total == Some(end))
        {
            self.stats.duplicates += 1;
            return Outcome::Duplicate;
        }
        if dg.ranges.iter().any(|&(s, e)| start < e && s < end) {
            return self.drop_datagram(&key, DropReason::Overlap);
        }
        let inconsistent = match (frag.info.more, dg.total) {
            // A second "last" fragment, or one ending before data already held.
            (false, Some(_)) => true,
            (false, None) => dg.ranges.iter().any(|&(_, e)| e > end),
            (true, Some(total)) => end > total,
            (true, None) => false,
        };
        if inconsistent || dg.ranges.len() >= MAX_FRAGMENTS {
            return self.drop_datagram(&key, DropReason::Malformed);
        }
        if !frag.info.more {
            dg.total = Some(end);
        }
        if start == 0 {
            dg.protocol = Some(frag.protocol);
        }
        if dg.data.len() < end as usize {
            dg.data.resize(end as usize, 0);
        }
        if let Some(slot) = dg.data.get_mut(start as usize..end as usize) {
            slot.copy_from_slice(frag.data);
        }
        dg.ranges.push((start, end));
        let Some(total) = dg.complete() else {
            return Outcome::Held;
        };
        let protocol = dg.protocol;
        let Some(mut dg) = self.map.remove(&key) else {
            return Outcome::Held;
        };
        match protocol {
            Some(protocol) => {
                self.stats.reassembled += 1;
                dg.data.truncate(total as usize);
                Outcome::Complete {
                    protocol,
                    payload: dg.data,
                }
            }
            None => {
                self.stats.malformed += 1;
                Outcome::Dropped {
                    reason: DropReason::Malformed,
                    fragments: dg.ranges.len() as u64,
                }
            }
        }
    }

    /// Drops datagrams older than the timeout at `now`.
    pub fn expire(&mut self, now: Timestamp) -> Expired {
        let timeout = self.timeout_secs;
        let mut out = Expired::default();
        self.map.retain(|_, d| {
            let keep = now.secs_since(d.first_seen) < timeout;
            if !keep {
                out.datagrams += 1;
                out.fragments += d.ranges.len() as u64;
            }
            keep
        });
        self.stats.timed_out += out.datagrams;
        out
    }

    /// End of input: every datagram still in flight is incomplete.
    pub fn flush(&mut self) -> Expired {
        let out = Expired {
            datagrams: self.map.len() as u64,
            fragments: self.map.values().map(|d| d.ranges.len() as u64).sum(),
        };
        self.map.clear();
        out
    }

    fn drop_datagram(&mut self, key: &Key, reason: DropReason) -> Outcome {
        let held = self.map.remove(key).map_or(0, |d| d.ranges.len() as u64);
        if reason == DropReason::Overlap {
            self.stats.overlaps += 1;
        } else {
            self.stats.malformed += 1;
        }
        Outcome::Dropped {
            reason,
            fragments: held + 1,
        }
    }

    fn evict_oldest(&mut self) -> Expired {
        let oldest = self
            .map
            .iter()
            .min_by_key(|(_, d)| d.first_seen)
            .map(|(k, _)| *k);
        match oldest.and_then(|k| self.map.remove(&k)) {
            Some(d) => {
                self.stats.evicted += 1;
                Expired {
                    datagrams: 1,
                    fragments: d.ranges.len() as u64,
                }
            }
            None => Expired::default(),
        }
    }
}

/// What the decode entry point promises for any frame, checked the same way
/// by the property tests (`tests/properties.rs`) and the `decode` fuzz target.
#[cfg(any(test, feature = "testkit"))]
pub mod testkit {
    use super::{Decoded, Defrag, DropReason, Expired};
    use crate::decode::{LinkType, Transport};
    use crate::Timestamp;

    /// Feeds `frame` twice through one reassembly table: the captured
    /// payload stays within the header's length and the frame, and the second
    /// answer equals the first, except that a held fragment is then a
    /// duplicate. The error says which promise broke.
    pub fn check_entry_point(link: LinkType, frame: &[u8]) -> Result<(), String> {
        let mut d = Defrag::new(4, 5.0);
        let (mut first_buf, mut second_buf) = (Vec::new(), Vec::new());
        let mut ev = Expired::default();
        let first = d.decode(Timestamp(1), link, frame, &mut first_buf, &mut ev);
        let second = d.decode(Timestamp(2), link, frame, &mut second_buf, &mut ev);
        if ev != Expired::default() {
            return Err(format!("a datagram expired: {ev:?}"));
        }
        if let Some(p) = first.packet() {
            let lengths = match p.transport {
                Transport::Tcp(s) => Some((s.payload.len(), s.payload_len)),
                Transport::Udp(u) => Some((u.payload.len(), u.payload_len)),
                _ => None,
            };
            if let Some((captured, declared)) = lengths {
                if captured as u64 > u64::from(declared) || captured >= frame.len() {
                    return Err(format!(
                        "payload of {captured} bytes, {declared} declared, frame of {}",
                        frame.len()
                    ));
                }
            }
        }
        let duplicate = Decoded::Skipped {
            reason: DropReason::Duplicate,
            count: 1,
        };
        match first {
            Decoded::Held if second == duplicate => Ok(()),
            Decoded::Held => Err(format!("a held fragment again gave {second:?}")),
            Decoded::Reassembled(p) => Err(format!("one frame reassembled: {p:?}")),
            _ if second == first => Ok(()),
            _ => Err(format!("decoded {first:?}, then {second:?}")),
        }
    }
}

#[cfg(test)]
mod tests;
