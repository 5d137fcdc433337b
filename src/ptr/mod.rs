//! Names for literal destinations from the pod's own resolver: PTR queries
//! (`in-addr.arpa`, `ip6.arpa`) for the pod IPs and ClusterIPs the app
//! dialed by address. CoreDNS's default Corefile (`kubernetes cluster.local
//! in-addr.arpa ip6.arpa`) answers them for every Service ClusterIP and for
//! the endpoint addresses of Services.
//!
//! This module is the resolver's state only: no socket and no clock read.
//! `podpath run` (src/cli/ptr.rs) owns the UDP socket and passes the time in;
//! the engine never sends anything. `analyze` makes no network requests.
//!
//! The rules, all bounded:
//! - one query per address, then cached for the answer's TTL (negative
//!   answers for the SOA's negative TTL, RFC 2308), clamped to
//!   [`PtrConfig::min_ttl`, `PtrConfig::max_ttl`]; timeouts and server
//!   failures are cached for `min_ttl` too, so a failing resolver is asked
//!   again at most that often per address;
//! - a token bucket paces every transmission (retries included): a burst of
//!   new addresses waits in a bounded queue instead of becoming a burst of
//!   queries; past the queue, addresses are dropped and counted;
//! - a transmission unanswered after `timeout` is retried with the same ID
//!   and question (as a stub resolver retransmits), at most `attempts` in all.

use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

use crate::hash::HashMap;

/// Limits and pacing of the PTR resolver.
#[derive(Clone, Debug)]
pub struct PtrConfig {
    /// Tokens (transmissions) added per second.
    pub rate_per_sec: f64,
    /// Bucket size: transmissions allowed back to back after a quiet spell.
    pub burst: f64,
    /// Addresses remembered (cached, queued or in flight).
    pub max_entries: usize,
    /// Addresses waiting for a token.
    pub max_queued: usize,
    /// Seconds before an unanswered transmission is retried or given up.
    pub timeout: Duration,
    /// Transmissions per address and round, the first included.
    pub attempts: u8,
    /// Shortest time an answer (or a failure) is kept. CoreDNS answers with
    /// TTL 5 s: without a floor every connection to a literal address 5 s
    /// apart would cost a query.
    pub min_ttl: Duration,
    /// Longest time an answer is kept: a pod IP is reused by another pod
    /// after a restart.
    pub max_ttl: Duration,
}

impl Default for PtrConfig {
    fn default() -> Self {
        PtrConfig {
            rate_per_sec: 5.0,
            burst: 10.0,
            max_entries: 1_024,
            max_queued: 256,
            timeout: Duration::from_secs(2),
            attempts: 2,
            min_ttl: Duration::from_secs(30),
            max_ttl: Duration::from_secs(3_600),
        }
    }
}

/// The query name for `addr`: reversed octets under `in-addr.arpa.`, or 32
/// reversed nibbles under `ip6.arpa.` (RFC 1035 3.5, RFC 3596 2.5).
pub fn query_name(addr: IpAddr) -> Name {
    Name::from(addr)
}

/// A recursive PTR query for `addr` with the given ID, as sent on the wire.
pub fn build_query(id: u16, addr: IpAddr) -> Result<Vec<u8>, PtrError> {
    let mut msg = Message::new(id, MessageType::Query, OpCode::Query);
    msg.metadata.recursion_desired = true;
    msg.add_query(Query::query(query_name(addr), RecordType::PTR));
    msg.to_vec().map_err(|_| PtrError::Encode)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PtrError {
    #[error("the PTR query could not be encoded")]
    Encode,
    #[error("the answer is not a DNS message")]
    Malformed,
    #[error("the answer is a query, or answers another question")]
    NotAnAnswer,
}

/// How one transmission ended: the `result` label of `podpath_ptr_queries_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PtrResult {
    /// At least one PTR name.
    Name,
    Nxdomain,
    /// NOERROR without a PTR record.
    Nodata,
    Servfail,
    Refused,
    /// Any other response code.
    Error,
    /// The answer did not fit in a UDP message (podpath does not retry over TCP).
    Truncated,
    /// No answer within the timeout.
    Timeout,
    /// The datagram could not be sent.
    SendError,
}

impl PtrResult {
    pub const ALL: [PtrResult; 9] = [
        PtrResult::Name,
        PtrResult::Nxdomain,
        PtrResult::Nodata,
        PtrResult::Servfail,
        PtrResult::Refused,
        PtrResult::Error,
        PtrResult::Truncated,
        PtrResult::Timeout,
        PtrResult::SendError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PtrResult::Name => "name",
            PtrResult::Nxdomain => "nxdomain",
            PtrResult::Nodata => "nodata",
            PtrResult::Servfail => "servfail",
            PtrResult::Refused => "refused",
            PtrResult::Error => "error",
            PtrResult::Truncated => "truncated",
            PtrResult::Timeout => "timeout",
            PtrResult::SendError => "send_error",
        }
    }
}

/// What an answer says, before it is matched to a transmission.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub id: u16,
    /// The question, lowercase without the trailing dot.
    pub question: String,
    pub result: PtrResult,
    /// PTR targets, lowercase without the trailing dot, sorted.
    pub names: Vec<String>,
    /// Seconds the answer may be cached: the smallest PTR TTL, or for a
    /// negative answer min(SOA TTL, SOA minimum); `None` without either.
    pub ttl: Option<u32>,
}

fn text(name: &Name) -> String {
    let mut s = name.to_ascii();
    if s.ends_with('.') {
        s.pop();
    }
    s.make_ascii_lowercase();
    s
}

/// Parses a response to a PTR query. Only PTR records whose owner is the
/// question count (a CNAME chain to another owner is not followed).
pub fn parse_answer(bytes: &[u8]) -> Result<Answer, PtrError> {
    // A DNS header is 12 bytes; hickory allocates per claimed record before
    // failing, so a header whose counts cannot fit the datagram is refused
    // first (each record needs at least 11 bytes, a question 5).
    if bytes.len() < 12 {
        return Err(PtrError::Malformed);
    }
    let count = |i: usize| usize::from(u16::from_be_bytes([bytes[i], bytes[i + 1]]));
    let claimed = count(4) * 5 + (count(6) + count(8) + count(10)) * 11;
    if claimed > bytes.len() - 12 {
        return Err(PtrError::Malformed);
    }
    let msg = Message::from_vec(bytes).map_err(|_| PtrError::Malformed)?;
    if msg.metadata.message_type != MessageType::Response || msg.queries.len() != 1 {
        return Err(PtrError::NotAnAnswer);
    }
    let q = &msg.queries[0];
    if q.query_type != RecordType::PTR {
        return Err(PtrError::NotAnAnswer);
    }
    let owner = &q.name;
    let mut names: Vec<String> = Vec::new();
    let mut ttl: Option<u32> = None;
    for r in &msg.answers {
        if let RData::PTR(ptr) = &r.data {
            // hickory compares names case-insensitively.
            if r.name == *owner {
                names.push(text(&ptr.0));
                ttl = Some(ttl.map_or(r.ttl, |t| t.min(r.ttl)));
            }
        }
    }
    names.sort();
    names.dedup();
    let rcode = msg.metadata.response_code;
    let result = if msg.metadata.truncation && names.is_empty() {
        PtrResult::Truncated
    } else {
        match rcode {
            ResponseCode::NoError if !names.is_empty() => PtrResult::Name,
            ResponseCode::NoError => PtrResult::Nodata,
            ResponseCode::NXDomain => PtrResult::Nxdomain,
            ResponseCode::ServFail => PtrResult::Servfail,
            ResponseCode::Refused => PtrResult::Refused,
            _ => PtrResult::Error,
        }
    };
    if matches!(result, PtrResult::Nxdomain | PtrResult::Nodata) {
        // RFC 2308 section 5: the negative TTL is the SOA record's own TTL
        // capped by its MINIMUM field.
        ttl = msg.authorities.iter().find_map(|r| match &r.data {
            RData::SOA(soa) => Some(r.ttl.min(soa.minimum)),
            _ => None,
        });
    }
    Ok(Answer {
        id: msg.metadata.id,
        question: text(owner),
        result,
        names,
        ttl,
    })
}

/// A token bucket: `rate` tokens a second up to `burst`.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    /// Starts full.
    pub fn new(rate: f64, burst: f64, now: Instant) -> TokenBucket {
        let rate = if rate.is_finite() && rate > 0.0 {
            rate
        } else {
            1.0
        };
        let burst = if burst.is_finite() {
            burst.max(1.0)
        } else {
            1.0
        };
        TokenBucket {
            rate,
            burst,
            tokens: burst,
            at: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        if now > self.at {
            let secs = now.duration_since(self.at).as_secs_f64();
            self.tokens = (self.tokens + secs * self.rate).min(self.burst);
            self.at = now;
        }
    }

    /// Takes one token if there is one.
    pub fn take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// When the next token will be there.
    pub fn ready_at(&mut self, now: Instant) -> Instant {
        self.refill(now);
        if self.tokens >= 1.0 {
            now
        } else {
            now + Duration::from_secs_f64((1.0 - self.tokens) / self.rate)
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Entry {
    Queued,
    InFlight,
    /// Answered (or given up): not asked again before `until`.
    Known {
        until: Instant,
    },
}

#[derive(Clone, Debug)]
struct Transmission {
    addr: IpAddr,
    question: String,
    sent: Instant,
    attempt: u8,
}

/// What [`PtrResolver::want`] did with an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    /// Queued; `delayed` when it cannot be sent at once (rate limit or queue).
    Queued { delayed: bool },
    /// Cached, queued or in flight already.
    Known,
    /// The queue or the table is full of work: not asked.
    Dropped,
}

/// The outcome of one transmission.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub addr: IpAddr,
    pub result: PtrResult,
    /// PTR targets (sorted) when `result` is [`PtrResult::Name`].
    pub names: Vec<String>,
}

/// Counters the resolver keeps about itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PtrStats {
    /// Cached answers pushed out of the full table.
    pub evicted: u64,
    /// Answers matching no transmission (late, or not ours).
    pub unmatched: u64,
    /// Answers that are not DNS responses to a PTR question.
    pub malformed: u64,
}

/// The resolver's state: which addresses are cached, queued and in flight.
pub struct PtrResolver {
    cfg: PtrConfig,
    bucket: TokenBucket,
    entries: HashMap<IpAddr, Entry>,
    queue: VecDeque<IpAddr>,
    retries: VecDeque<u16>,
    in_flight: HashMap<u16, Transmission>,
    ids: foldhash::fast::RandomState,
    id_counter: u64,
    stats: PtrStats,
}

impl PtrResolver {
    pub fn new(cfg: PtrConfig, now: Instant) -> PtrResolver {
        PtrResolver {
            bucket: TokenBucket::new(cfg.rate_per_sec, cfg.burst, now),
            cfg,
            entries: HashMap::default(),
            queue: VecDeque::new(),
            retries: VecDeque::new(),
            in_flight: HashMap::default(),
            ids: foldhash::fast::RandomState::default(),
            id_counter: 0,
            stats: PtrStats::default(),
        }
    }

    pub fn stats(&self) -> &PtrStats {
        &self.stats
    }

    /// Addresses remembered (cached, queued or in flight).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The name of `addr` is wanted: queue a query unless one is cached or
    /// under way.
    pub fn want(&mut self, addr: IpAddr, now: Instant) -> Want {
        match self.entries.get(&addr) {
            Some(Entry::Known { until }) if *until > now => return Want::Known,
            Some(Entry::Queued | Entry::InFlight) => return Want::Known,
            _ => {}
        }
        if self.queue.len() >= self.cfg.max_queued {
            return Want::Dropped;
        }
        if !self.entries.contains_key(&addr)
            && self.entries.len() >= self.cfg.max_entries
            && !self.evict_one(now)
        {
            return Want::Dropped;
        }
        let delayed = !self.queue.is_empty() || self.bucket.ready_at(now) > now;
        self.entries.insert(addr, Entry::Queued);
        self.queue.push_back(addr);
        Want::Queued { delayed }
    }

    /// Frees one slot: an expired entry, else the one expiring soonest.
    /// Queued and in-flight entries are never evicted.
    fn evict_one(&mut self, now: Instant) -> bool {
        let victim = self
            .entries
            .iter()
            .filter_map(|(a, e)| match e {
                Entry::Known { until } => Some((*until, *a)),
                _ => None,
            })
            .min();
        match victim {
            Some((until, addr)) => {
                self.entries.remove(&addr);
                if until > now {
                    self.stats.evicted += 1;
                }
                true
            }
            None => false,
        }
    }

    fn fresh_id(&mut self) -> u16 {
        // Unpredictable IDs (a seeded hash of a counter), never one in flight.
        loop {
            self.id_counter += 1;
            let id = self.ids.hash_one(self.id_counter) as u16;
            if !self.in_flight.contains_key(&id) {
                return id;
            }
        }
    }

    /// The next datagram to send, if a token allows one now: a retry first,
    /// then the oldest queued address. The caller sends it and, when sending
    /// fails, reports it with [`PtrResolver::send_failed`].
    pub fn next_transmission(&mut self, now: Instant) -> Option<(u16, IpAddr)> {
        if self.retries.is_empty() && self.queue.is_empty() {
            return None;
        }
        if !self.bucket.take(now) {
            return None;
        }
        if let Some(id) = self.retries.pop_front() {
            if let Some(t) = self.in_flight.get_mut(&id) {
                t.sent = now;
                t.attempt += 1;
                return Some((id, t.addr));
            }
        }
        let addr = self.queue.pop_front()?;
        let id = self.fresh_id();
        self.entries.insert(addr, Entry::InFlight);
        self.in_flight.insert(
            id,
            Transmission {
                addr,
                question: text(&query_name(addr)),
                sent: now,
                attempt: 1,
            },
        );
        Some((id, addr))
    }

    /// The datagram for `id` could not be sent: the round ends, and the
    /// address is not asked again before `min_ttl`.
    pub fn send_failed(&mut self, id: u16, now: Instant) -> Option<Outcome> {
        let t = self.in_flight.remove(&id)?;
        self.retries.retain(|r| *r != id);
        self.settle(t.addr, now, self.cfg.min_ttl);
        Some(Outcome {
            addr: t.addr,
            result: PtrResult::SendError,
            names: Vec::new(),
        })
    }

    fn settle(&mut self, addr: IpAddr, now: Instant, ttl: Duration) {
        self.entries.insert(addr, Entry::Known { until: now + ttl });
    }

    fn clamp_ttl(&self, ttl: Option<u32>) -> Duration {
        let secs = Duration::from_secs(u64::from(ttl.unwrap_or(0)));
        secs.clamp(self.cfg.min_ttl, self.cfg.max_ttl.max(self.cfg.min_ttl))
    }

    /// A datagram from the resolver. `None` when it answers nothing in
    /// flight (counted).
    pub fn on_datagram(&mut self, bytes: &[u8], now: Instant) -> Option<Outcome> {
        let answer = match parse_answer(bytes) {
            Ok(a) => a,
            Err(_) => {
                self.stats.malformed += 1;
                return None;
            }
        };
        match self.in_flight.get(&answer.id) {
            Some(t) if t.question == answer.question => {}
            _ => {
                self.stats.unmatched += 1;
                return None;
            }
        }
        let t = self.in_flight.remove(&answer.id)?;
        self.retries.retain(|r| *r != answer.id);
        let ttl = match answer.result {
            PtrResult::Name | PtrResult::Nxdomain | PtrResult::Nodata => self.clamp_ttl(answer.ttl),
            _ => self.cfg.min_ttl,
        };
        self.settle(t.addr, now, ttl);
        Some(Outcome {
            addr: t.addr,
            result: answer.result,
            names: answer.names,
        })
    }

    /// Transmissions unanswered for `timeout`: each is a `timeout` outcome;
    /// the address is retried (same ID and question) while attempts remain.
    pub fn expire(&mut self, now: Instant) -> Vec<Outcome> {
        let timeout = self.cfg.timeout;
        let mut due: Vec<u16> = self
            .in_flight
            .iter()
            .filter(|(id, t)| now >= t.sent + timeout && !self.retries.contains(id))
            .map(|(id, _)| *id)
            .collect();
        due.sort_unstable();
        let mut out = Vec::with_capacity(due.len());
        for id in due {
            let Some(t) = self.in_flight.get(&id) else {
                continue;
            };
            let addr = t.addr;
            if t.attempt < self.cfg.attempts {
                self.retries.push_back(id);
            } else {
                self.in_flight.remove(&id);
                self.settle(addr, now, self.cfg.min_ttl);
            }
            out.push(Outcome {
                addr,
                result: PtrResult::Timeout,
                names: Vec::new(),
            });
        }
        out
    }

    /// When the caller should come back: the next timeout, or the next token
    /// while work waits. `None` when idle.
    pub fn next_wakeup(&mut self, now: Instant) -> Option<Instant> {
        let timeout = self.cfg.timeout;
        let mut at = self
            .in_flight
            .iter()
            .filter(|(id, _)| !self.retries.contains(id))
            .map(|(_, t)| t.sent + timeout)
            .min();
        if !self.queue.is_empty() || !self.retries.is_empty() {
            let ready = self.bucket.ready_at(now);
            at = Some(at.map_or(ready, |a| a.min(ready)));
        }
        at
    }
}

#[cfg(test)]
mod tests;
