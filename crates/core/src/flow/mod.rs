//! The flow table: TCP connections and UDP flows, bounded.
//!
//! A TCP connection attempt is its first SYN (retransmitted SYNs are not new
//! attempts); connect latency is SYN → SYN-ACK; a RST answering the SYN is
//! `refused`, no SYN-ACK within the connect timeout is `timeout`. A UDP flow
//! is a 5-tuple until it idles out. The side that sent the SYN (or the first
//! datagram) is the initiator; outbound means the pod initiated.
//!
//! Nothing here knows an application protocol: what a TCP connection speaks
//! is the type parameter `A` (the engine's `AppState`), so the table's rules
//! (bounds, eviction, timeouts' inputs) cannot depend on HTTP, TLS or h2.

use std::hash::{Hash, Hasher};
use std::net::SocketAddr;

use crate::attribution::Attribution;
use crate::hash::HashMap;
use crate::Timestamp;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// Both endpoints in a canonical order, so either direction finds the flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowKey {
    pub protocol: Protocol,
    pub low: SocketAddr,
    pub high: SocketAddr,
}

/// Hashed per packet: a few wide writes instead of `SocketAddr`'s field by
/// field ones. Equal keys hash equally (IPv6 flow info and scope, which
/// `Eq` also compares, are left out of the hash, never out of `Eq`).
impl Hash for FlowKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        fn endpoint<H: Hasher>(a: &SocketAddr, state: &mut H) {
            match a {
                SocketAddr::V4(v4) => {
                    state.write_u64(u64::from(v4.ip().to_bits()) << 16 | u64::from(v4.port()))
                }
                SocketAddr::V6(v6) => {
                    state.write_u128(v6.ip().to_bits());
                    state.write_u16(v6.port());
                }
            }
        }
        state.write_u8(self.protocol as u8);
        endpoint(&self.low, state);
        endpoint(&self.high, state);
    }
}

impl FlowKey {
    pub fn new(protocol: Protocol, a: SocketAddr, b: SocketAddr) -> Self {
        if a <= b {
            FlowKey {
                protocol,
                low: a,
                high: b,
            }
        } else {
            FlowKey {
                protocol,
                low: b,
                high: a,
            }
        }
    }
}

/// Which end of a flow sent a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// The side that sent the SYN (or the first datagram): the client.
    Initiator,
    Responder,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpState {
    /// SYN sent, no SYN-ACK yet.
    SynSent,
    Established,
    /// FIN or RST seen; kept briefly to absorb the last segments.
    Closed,
    /// The attempt failed (refused or timed out).
    Failed,
    /// Joined after the handshake: no attempt was counted.
    Midstream,
}

/// A TCP connection: its handshake state and what it speaks.
#[derive(Debug)]
pub struct Tcp<A> {
    pub state: TcpState,
    /// The first SYN's sequence number (0 for a connection joined midstream):
    /// a SYN with another one on a live connection is a new connection.
    pub isn: u32,
    pub app: A,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UdpState {
    Open,
    /// An ICMP port unreachable answered the initiator.
    Unreachable,
}

/// The per-protocol part of a flow.
#[derive(Debug)]
pub enum FlowState<A> {
    Tcp(Tcp<A>),
    Udp(UdpState),
}

impl<A> FlowState<A> {
    pub fn protocol(&self) -> Protocol {
        match self {
            FlowState::Tcp(_) => Protocol::Tcp,
            FlowState::Udp(_) => Protocol::Udp,
        }
    }
}

#[derive(Debug)]
pub struct Flow<A> {
    pub id: u64,
    pub initiator: SocketAddr,
    pub responder: SocketAddr,
    /// The pod initiated the flow.
    pub outbound: bool,
    pub state: FlowState<A>,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    /// Set for outbound flows, at the first SYN (or first datagram).
    pub attribution: Option<Attribution>,
    /// Payload bytes initiator → responder and back, not yet exported.
    pub bytes_up: u64,
    pub bytes_down: u64,
    /// Counted in the metrics (attempt or inbound); false for excluded/midstream flows.
    pub counted: bool,
    /// Its attribution waits for the rewrite detector's decision: its
    /// events are kept by the detector until then.
    pub held: bool,
}

impl<A> Flow<A> {
    pub fn protocol(&self) -> Protocol {
        self.state.protocol()
    }

    pub fn key(&self) -> FlowKey {
        FlowKey::new(self.protocol(), self.initiator, self.responder)
    }

    /// Which end sent a packet from `src` (a packet of this flow).
    pub fn direction(&self, src: SocketAddr) -> Direction {
        if src == self.initiator {
            Direction::Initiator
        } else {
            Direction::Responder
        }
    }

    pub fn tcp(&self) -> Option<&Tcp<A>> {
        match &self.state {
            FlowState::Tcp(t) => Some(t),
            FlowState::Udp(_) => None,
        }
    }

    pub fn tcp_mut(&mut self) -> Option<&mut Tcp<A>> {
        match &mut self.state {
            FlowState::Tcp(t) => Some(t),
            FlowState::Udp(_) => None,
        }
    }

    /// The TCP state; `None` for UDP.
    pub fn tcp_state(&self) -> Option<TcpState> {
        self.tcp().map(|t| t.state)
    }

    /// Adds `len` payload bytes sent in `dir`.
    pub fn count(&mut self, dir: Direction, len: u32) {
        match dir {
            Direction::Initiator => self.bytes_up += u64::from(len),
            Direction::Responder => self.bytes_down += u64::from(len),
        }
    }
}

/// A flow about to enter the table.
#[derive(Debug)]
pub struct NewFlow<A> {
    pub initiator: SocketAddr,
    pub responder: SocketAddr,
    pub outbound: bool,
    pub state: FlowState<A>,
    pub attribution: Option<Attribution>,
    pub counted: bool,
}

impl<A> NewFlow<A> {
    pub fn key(&self) -> FlowKey {
        FlowKey::new(self.state.protocol(), self.initiator, self.responder)
    }
}

/// Bounded map of live flows. When full, the least recently seen flow is
/// evicted (and counted) to make room: one scan of the table picks the
/// oldest `capacity / 8` flows by `last_seen`, and the following insertions
/// evict them in that order (skipping any seen again or removed since), so
/// eviction costs O(1) amortised. (Sampling the first entries of the map
/// instead degrades to a scan of the whole table per insertion: evictions
/// empty the front of the map's bucket array and iteration starts there.)
#[derive(Debug)]
pub struct FlowTable<A> {
    flows: HashMap<FlowKey, Flow<A>>,
    capacity: usize,
    next_id: u64,
    pub evictions: u64,
    /// Flows chosen for eviction with their `last_seen` at that scan; the
    /// oldest last, so `pop` takes it.
    victims: Vec<(FlowKey, Timestamp)>,
    /// Reused by the scan that refills `victims`.
    scratch: Vec<Timestamp>,
}

/// Largest number of flows one eviction scan picks.
const MAX_EVICTION_BATCH: usize = 16_384;

impl<A> FlowTable<A> {
    pub fn new(capacity: usize) -> Self {
        FlowTable {
            flows: HashMap::with_capacity_and_hasher(capacity.min(4096), Default::default()),
            capacity: capacity.max(1),
            next_id: 1,
            evictions: 0,
            victims: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// Removes the least recently seen flow (approximately: the oldest of
    /// the last scan's batch that has not been seen since).
    fn evict_one(&mut self) -> Option<Flow<A>> {
        for _ in 0..2 {
            while let Some((key, seen)) = self.victims.pop() {
                if self.flows.get(&key).is_some_and(|f| f.last_seen <= seen) {
                    return self.flows.remove(&key);
                }
            }
            self.refill_victims();
        }
        // Every chosen flow was seen again in between: take any.
        let key = *self.flows.keys().next()?;
        self.flows.remove(&key)
    }

    fn refill_victims(&mut self) {
        let batch = (self.capacity / 8).clamp(1, MAX_EVICTION_BATCH);
        self.scratch.clear();
        self.scratch
            .extend(self.flows.values().map(|f| f.last_seen));
        if self.scratch.is_empty() {
            return;
        }
        let nth = batch.min(self.scratch.len()) - 1;
        let (_, cutoff, _) = self.scratch.select_nth_unstable(nth);
        let cutoff = *cutoff;
        self.victims.clear();
        self.victims.extend(
            self.flows
                .iter()
                .filter(|(_, f)| f.last_seen <= cutoff)
                .map(|(k, f)| (*k, f.last_seen))
                .take(batch),
        );
        self.victims
            .sort_unstable_by_key(|(_, seen)| std::cmp::Reverse(*seen));
    }

    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    pub fn get(&self, key: &FlowKey) -> Option<&Flow<A>> {
        self.flows.get(key)
    }

    pub fn get_mut(&mut self, key: &FlowKey) -> Option<&mut Flow<A>> {
        self.flows.get_mut(key)
    }

    pub fn remove(&mut self, key: &FlowKey) -> Option<Flow<A>> {
        self.flows.remove(key)
    }

    /// Inserts a new flow (replacing one under the same key), evicting the
    /// least recently seen first when the table is full. Returns the evicted
    /// flow, so the caller can account for it.
    pub fn insert(&mut self, new: NewFlow<A>, ts: Timestamp) -> (&mut Flow<A>, Option<Flow<A>>) {
        let key = new.key();
        let mut evicted = None;
        if self.flows.len() >= self.capacity && !self.flows.contains_key(&key) {
            evicted = self.evict_one();
            if evicted.is_some() {
                self.evictions += 1;
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        let NewFlow {
            initiator,
            responder,
            outbound,
            state,
            attribution,
            counted,
        } = new;
        let flow = Flow {
            id,
            initiator,
            responder,
            outbound,
            state,
            first_seen: ts,
            last_seen: ts,
            attribution,
            bytes_up: 0,
            bytes_down: 0,
            counted,
            held: false,
        };
        let slot = self.flows.entry(key).insert_entry(flow).into_mut();
        (slot, evicted)
    }

    /// Removes and returns every flow for which `expired` is true.
    pub fn drain_expired(&mut self, mut expired: impl FnMut(&Flow<A>) -> bool) -> Vec<Flow<A>> {
        let keys: Vec<FlowKey> = self
            .flows
            .iter()
            .filter(|(_, f)| expired(f))
            .map(|(k, _)| *k)
            .collect();
        keys.into_iter()
            .filter_map(|k| self.flows.remove(&k))
            .collect()
    }

    /// Visits every flow (for periodic byte export).
    pub fn for_each_mut(&mut self, mut f: impl FnMut(&mut Flow<A>)) {
        for flow in self.flows.values_mut() {
            f(flow);
        }
    }

    /// Removes every flow (end of input).
    pub fn drain_all(&mut self) -> Vec<Flow<A>> {
        self.flows.drain().map(|(_, f)| f).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn tcp(initiator: SocketAddr, responder: SocketAddr, state: TcpState) -> NewFlow<()> {
        NewFlow {
            initiator,
            responder,
            outbound: true,
            state: FlowState::Tcp(Tcp {
                state,
                isn: 0,
                app: (),
            }),
            attribution: None,
            counted: true,
        }
    }

    #[test]
    fn key_is_direction_independent() {
        let a = sa("10.0.0.1:40000");
        let b = sa("10.0.0.2:80");
        assert_eq!(
            FlowKey::new(Protocol::Tcp, a, b),
            FlowKey::new(Protocol::Tcp, b, a)
        );
        assert_ne!(
            FlowKey::new(Protocol::Tcp, a, b),
            FlowKey::new(Protocol::Udp, a, b)
        );
    }

    #[test]
    fn direction_and_bytes_follow_the_initiator() {
        let client = sa("10.0.0.1:40000");
        let server = sa("10.0.0.2:80");
        let mut t = FlowTable::new(4);
        let (f, _) = t.insert(tcp(client, server, TcpState::SynSent), Timestamp(0));
        assert_eq!(f.key(), FlowKey::new(Protocol::Tcp, server, client));
        assert_eq!(f.protocol(), Protocol::Tcp);
        assert_eq!(f.direction(client), Direction::Initiator);
        assert_eq!(f.direction(server), Direction::Responder);
        f.count(Direction::Initiator, 10);
        f.count(Direction::Responder, 1000);
        f.count(Direction::Responder, 1);
        assert_eq!((f.bytes_up, f.bytes_down), (10, 1001));
        assert_eq!(f.tcp_state(), Some(TcpState::SynSent));
    }

    #[test]
    fn table_stays_within_capacity_and_counts_evictions() {
        let mut t = FlowTable::new(100);
        let server = sa("10.0.0.2:80");
        for i in 0..1000u32 {
            let client = SocketAddr::from(([10, 1, (i >> 8) as u8, i as u8], 1024 + i as u16));
            t.insert(tcp(client, server, TcpState::SynSent), Timestamp(i as u64));
        }
        assert_eq!(t.len(), 100);
        assert_eq!(t.evictions, 900);
    }

    #[test]
    fn eviction_takes_the_least_recently_seen_flows() {
        let mut t = FlowTable::new(128);
        let server = sa("10.0.0.2:80");
        let key = |i: u32| {
            let c = SocketAddr::from(([10, 1, (i >> 8) as u8, i as u8], 1024 + i as u16));
            (FlowKey::new(Protocol::Tcp, c, server), c)
        };
        for i in 0..128u32 {
            let (_, c) = key(i);
            t.insert(
                tcp(c, server, TcpState::Established),
                Timestamp(u64::from(i)),
            );
        }
        // Flow 0 is seen again: the oldest is now flow 1, then 2, ...
        if let Some(f) = t.get_mut(&key(0).0) {
            f.last_seen = Timestamp(1_000);
        }
        for i in 128..132u32 {
            let (_, c) = key(i);
            let (_, evicted) = t.insert(tcp(c, server, TcpState::Established), Timestamp(2_000));
            let evicted = evicted.map(|f| f.initiator);
            assert_eq!(evicted, Some(key(i - 127).1));
        }
        assert!(t.get_mut(&key(0).0).is_some());
        assert_eq!(t.len(), 128);
        assert_eq!(t.evictions, 4);
    }

    #[test]
    fn drain_expired_takes_only_matching_flows() {
        let mut t = FlowTable::<()>::new(10);
        let server = sa("10.0.0.2:80");
        for i in 0..4u16 {
            let c = SocketAddr::from(([10, 1, 0, 1], 2000 + i));
            t.insert(
                NewFlow {
                    initiator: c,
                    responder: server,
                    outbound: true,
                    state: FlowState::Udp(UdpState::Open),
                    attribution: None,
                    counted: true,
                },
                Timestamp(i as u64),
            );
        }
        let gone = t.drain_expired(|f| f.last_seen < Timestamp(2));
        assert_eq!(gone.len(), 2);
        assert!(gone.iter().all(|f| f.protocol() == Protocol::Udp));
        assert_eq!(t.len(), 2);
    }
}
