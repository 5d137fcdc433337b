//! Query ↔ response matching, per transmission.
//!
//! A question is keyed by client address and port, server address and port,
//! message id, and the question (name and type). A resolver that gets no
//! answer sends the same message again (glibc and musl keep the id and the
//! socket): every copy is a transmission, counted as a query on the wire (as
//! CoreDNS's `coredns_dns_requests_total` and tshark count them), and every
//! copy after the first while an earlier one is unanswered is a
//! retransmission.
//!
//! Each transmission ends once: answered (its rcode and latency), `TIMEOUT`
//! (no answer within the timeout of its own sending) or `UNREACHABLE` (ICMP
//! port unreachable). The wire cannot tell which copy a response answers;
//! it is paired with the oldest unanswered copy (servers answer in order),
//! except that a response within [`FAST_SECS`] of the newest copy still
//! waiting answers that copy when older ones have timed out: the first copy
//! was lost (the conntrack race that drops one of A/AAAA) and the copy sent
//! 5 s later was answered at once, one `TIMEOUT` and one fast answer rather
//! than a 5 s answer. A response paired with a timed-out copy is a late
//! answer, reported apart (the copy was already counted as `TIMEOUT`).
//!
//! Timed-out transmissions are remembered for [`LATE_WINDOW_SECS`] to pair
//! late answers; a response matching nothing is counted as unmatched.
//!
//! The table holds at most `max_pending` questions (a question remembered
//! only for late answers gives way first); past that new questions are not
//! tracked (counted as `overflow`) and their responses are counted as
//! unmatched. A question keeps at most [`MAX_SENDS`] transmissions waiting;
//! more copies are counted as queries and retransmissions, not paired.

use std::borrow::Borrow;
use std::collections::hash_map::Entry as MapEntry;
use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use super::wire::{DnsMessage, QType, Rcode};
use crate::hash::HashMap;
use crate::Timestamp;

/// How long after its timeout a transmission can still be paired with a late answer.
pub const LATE_WINDOW_SECS: f64 = 60.0;
/// A response this soon after the newest copy still waiting answers that
/// copy rather than an older one that timed out.
pub const FAST_SECS: f64 = 0.5;
/// Transmissions of one question waiting for an answer at a time.
pub const MAX_SENDS: usize = 16;
/// Emptied entries kept for reuse, so that a steady stream of questions
/// allocates no queues.
const SPARE_ENTRIES: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }
}

/// How a transmission ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    Rcode(Rcode),
    Timeout,
    /// ICMP port unreachable answered the query.
    Unreachable,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Rcode(r) => r.as_str(),
            Outcome::Timeout => "TIMEOUT",
            Outcome::Unreachable => "UNREACHABLE",
        }
    }
}

/// A completed transmission of a query.
#[derive(Clone, Debug, PartialEq)]
pub struct Transaction {
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub id: u16,
    pub qname: Arc<str>,
    pub qtype: QType,
    pub transport: Transport,
    pub sent: Timestamp,
    pub outcome: Outcome,
    /// Query → response; `None` for timeouts.
    pub latency_secs: Option<f64>,
    /// NOERROR with at least one answer record.
    pub answered: bool,
    /// The response had the TC bit (the client will retry over TCP).
    pub truncated: bool,
    /// Other transmissions of the same question are still waiting.
    pub others_waiting: bool,
}

/// A response to a transmission that had already timed out.
#[derive(Clone, Debug, PartialEq)]
pub struct LateAnswer {
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub id: u16,
    pub qname: Arc<str>,
    pub qtype: QType,
    pub transport: Transport,
    pub rcode: Rcode,
    /// From the transmission it answers.
    pub latency_secs: f64,
}

/// What a response was paired with.
#[derive(Clone, Debug, PartialEq)]
pub enum Matched {
    Answer(Transaction),
    /// `waiting`: another copy of the question still waits, so the resolver
    /// takes this answer (same id, same socket).
    Late {
        late: LateAnswer,
        waiting: bool,
    },
    Unmatched,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxStats {
    /// Every query with a question, retransmissions included.
    pub queries: u64,
    pub retransmitted_queries: u64,
    pub responses: u64,
    pub unmatched_responses: u64,
    pub late_answers: u64,
    pub timeouts: u64,
    /// Queries not tracked because the table (or a question's send list) was full.
    pub overflow: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct TxKey {
    client: SocketAddr,
    server: SocketAddr,
    id: u16,
    qtype: QType,
    qname: Arc<str>,
}

/// A key's parts, borrowed: a response is looked up by the name it carries
/// without building an `Arc<str>` for it (`dyn KeyView` is the map's borrowed
/// key form; `TxKey` and `Probe` hash and compare through it alike).
trait KeyView {
    fn parts(&self) -> (SocketAddr, SocketAddr, u16, QType, &str);
}

impl KeyView for TxKey {
    fn parts(&self) -> (SocketAddr, SocketAddr, u16, QType, &str) {
        (self.client, self.server, self.id, self.qtype, &self.qname)
    }
}

struct Probe<'a> {
    client: SocketAddr,
    server: SocketAddr,
    id: u16,
    qtype: QType,
    qname: &'a str,
}

impl KeyView for Probe<'_> {
    fn parts(&self) -> (SocketAddr, SocketAddr, u16, QType, &str) {
        (self.client, self.server, self.id, self.qtype, self.qname)
    }
}

impl<'a> Borrow<dyn KeyView + 'a> for TxKey {
    fn borrow(&self) -> &(dyn KeyView + 'a) {
        self
    }
}

/// One pass over a key: the numbers packed into two words, then the name.
/// Equal keys hash equal (the `SocketAddrV6` flow info and scope, compared
/// by `Eq`, are left out, which only widens a bucket).
fn hash_parts<H: Hasher>(parts: (SocketAddr, SocketAddr, u16, QType, &str), state: &mut H) {
    let (client, server, id, qtype, qname) = parts;
    let bits = |a: SocketAddr| match a.ip() {
        IpAddr::V4(v4) => u128::from(v4.to_bits()),
        IpAddr::V6(v6) => v6.to_bits() ^ (1 << 127),
    };
    let small = u64::from(client.port())
        | u64::from(server.port()) << 16
        | u64::from(id) << 32
        | u64::from(qtype.0) << 48;
    state.write_u64(small);
    state.write_u128(bits(client) ^ bits(server).rotate_left(64));
    qname.hash(state);
}

impl Hash for TxKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_parts(self.parts(), state);
    }
}

impl Hash for dyn KeyView + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_parts(self.parts(), state);
    }
}

impl PartialEq for dyn KeyView + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for dyn KeyView + '_ {}

#[derive(Debug)]
struct Entry {
    transport: Transport,
    /// Transmissions within their timeout, oldest first: (sent, generation).
    waiting: VecDeque<(Timestamp, u64)>,
    /// Transmissions past their timeout without an answer, oldest first.
    timed_out: VecDeque<(Timestamp, u64)>,
}

/// What `Transactions::query` did with a query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryStatus {
    New,
    Retransmission,
    /// Not tracked: the table is full.
    Overflow,
}

#[derive(Debug)]
pub struct Transactions {
    entries: HashMap<TxKey, Entry>,
    /// (deadline, generation, key) per transmission, in sending order;
    /// entries whose transmission is gone are stale and skipped.
    deadlines: VecDeque<(Timestamp, u64, TxKey)>,
    /// (forget at, generation, key) per timed-out transmission, in order.
    forget: VecDeque<(Timestamp, u64, TxKey)>,
    timeout_secs: f64,
    max_pending: usize,
    generation: u64,
    stats: TxStats,
    /// Emptied entries whose queues the next new questions reuse.
    spare: Vec<Entry>,
}

impl Transactions {
    pub fn new(timeout_secs: f64, max_pending: usize) -> Self {
        Transactions {
            entries: HashMap::default(),
            deadlines: VecDeque::new(),
            forget: VecDeque::new(),
            timeout_secs: if timeout_secs.is_finite() && timeout_secs > 0.0 {
                timeout_secs
            } else {
                5.0
            },
            max_pending: max_pending.max(1),
            generation: 0,
            stats: TxStats::default(),
            spare: Vec::new(),
        }
    }

    pub fn stats(&self) -> TxStats {
        self.stats
    }

    /// Transmissions waiting for an answer.
    pub fn pending(&self) -> usize {
        self.entries.values().map(|e| e.waiting.len()).sum()
    }

    #[allow(clippy::too_many_arguments)]
    pub fn query(
        &mut self,
        ts: Timestamp,
        client: SocketAddr,
        server: SocketAddr,
        id: u16,
        qname: Arc<str>,
        qtype: QType,
        transport: Transport,
    ) -> QueryStatus {
        let key = TxKey {
            client,
            server,
            id,
            qtype,
            qname,
        };
        self.stats.queries += 1;
        self.generation += 1;
        let generation = self.generation;
        // Room is made before the entry is taken (one hash per query in the
        // common case); a full table is the only case that probes twice.
        let full = self.entries.len() >= self.max_pending && !self.entries.contains_key(&key);
        if full && !self.forget_one() {
            self.stats.overflow += 1;
            return QueryStatus::Overflow;
        }
        let retransmission = match self.entries.entry(key.clone()) {
            MapEntry::Occupied(mut o) => {
                self.stats.retransmitted_queries += 1;
                let e = o.get_mut();
                if e.waiting.len() >= MAX_SENDS {
                    self.stats.overflow += 1;
                    return QueryStatus::Retransmission;
                }
                e.waiting.push_back((ts, generation));
                e.waiting.len() > 1 || !e.timed_out.is_empty()
            }
            MapEntry::Vacant(v) => {
                let mut e = self.spare.pop().unwrap_or_else(|| Entry {
                    transport,
                    waiting: VecDeque::new(),
                    timed_out: VecDeque::new(),
                });
                e.transport = transport;
                e.waiting.push_back((ts, generation));
                v.insert(e);
                false
            }
        };
        self.deadlines
            .push_back((ts.add_secs(self.timeout_secs), generation, key));
        if self.deadlines.len() > 4 * self.max_pending * MAX_SENDS.min(4) {
            let entries = &self.entries;
            self.deadlines.retain(|(_, g, k)| {
                entries
                    .get(k)
                    .is_some_and(|e| e.waiting.iter().any(|(_, w)| w == g))
            });
        }
        if retransmission {
            QueryStatus::Retransmission
        } else {
            QueryStatus::New
        }
    }

    /// Keeps an emptied entry's queues for the next question (bounded).
    fn recycle(&mut self, e: Entry) {
        if self.spare.len() < SPARE_ENTRIES && e.waiting.is_empty() && e.timed_out.is_empty() {
            self.spare.push(e);
        }
    }

    /// Drops the oldest timed-out transmission whose question has nothing
    /// else remembered; true when a question left the table.
    fn forget_one(&mut self) -> bool {
        while let Some((_, generation, key)) = self.forget.pop_front() {
            if let Some(e) = self.entries.get_mut(&key) {
                e.timed_out.retain(|(_, g)| *g != generation);
                if e.waiting.is_empty() && e.timed_out.is_empty() {
                    if let Some(e) = self.entries.remove(&key) {
                        self.recycle(e);
                    }
                    return true;
                }
            }
        }
        false
    }

    /// Pairs a response (sent by `server` to `client`) with a transmission.
    pub fn response(
        &mut self,
        ts: Timestamp,
        client: SocketAddr,
        server: SocketAddr,
        msg: &DnsMessage,
    ) -> Matched {
        self.stats.responses += 1;
        let key = match &msg.question {
            Some(q) => {
                let probe = Probe {
                    client,
                    server,
                    id: msg.id,
                    qtype: q.qtype,
                    qname: &q.name,
                };
                self.entries.remove_entry(&probe as &dyn KeyView)
            }
            // Without a question: the addresses and id alone, a waiting
            // transmission first.
            None => {
                let mut found = None;
                for (k, e) in &self.entries {
                    if k.client == client && k.server == server && k.id == msg.id {
                        let waiting = !e.waiting.is_empty();
                        if waiting || found.is_none() {
                            found = Some(k.clone());
                        }
                        if waiting {
                            break;
                        }
                    }
                }
                found.and_then(|k| self.entries.remove_entry(&k))
            }
        };
        // Taken out of the table for the pairing (one hash); put back below
        // when transmissions of the question remain.
        let Some((key, mut entry)) = key else {
            self.stats.unmatched_responses += 1;
            return Matched::Unmatched;
        };
        let oldest = self.deadlines.front().map(|(_, g, _)| *g);
        let oldest_waiting = oldest.is_some_and(|g| entry.waiting.iter().any(|(_, w)| *w == g));
        let matched = self.pair(ts, client, server, msg, &key, &mut entry);
        let oldest_answered =
            oldest_waiting && !oldest.is_some_and(|g| entry.waiting.iter().any(|(_, w)| *w == g));
        if entry.waiting.is_empty() && entry.timed_out.is_empty() {
            self.recycle(entry);
        } else {
            self.entries.insert(key, entry);
        }
        if oldest_answered {
            self.drop_answered_front();
        }
        matched
    }

    /// Drops the deadlines at the front of the queue whose transmission is
    /// no longer waiting (answered): `expire` would skip them anyway, and
    /// without this the queue holds a whole timeout's worth of queries
    /// (40 000 keys at 8 000 queries/s), touching fresh memory all the way.
    /// Each deadline is checked here at most once.
    fn drop_answered_front(&mut self) {
        while let Some((_, g, key)) = self.deadlines.front() {
            let waiting = self
                .entries
                .get(key)
                .is_some_and(|e| e.waiting.iter().any(|(_, w)| w == g));
            if waiting {
                break;
            }
            self.deadlines.pop_front();
        }
    }

    fn pair(
        &mut self,
        ts: Timestamp,
        client: SocketAddr,
        server: SocketAddr,
        msg: &DnsMessage,
        key: &TxKey,
        entry: &mut Entry,
    ) -> Matched {
        let fast = entry
            .waiting
            .back()
            .is_some_and(|(sent, _)| ts.secs_since(*sent) <= FAST_SECS);
        let copy = if entry.timed_out.is_empty() {
            entry.waiting.pop_front()
        } else if fast {
            entry.waiting.pop_back()
        } else {
            None
        };
        if let Some((sent, _)) = copy {
            let tx = Transaction {
                client,
                server,
                id: key.id,
                qname: key.qname.clone(),
                qtype: key.qtype,
                transport: entry.transport,
                sent,
                outcome: Outcome::Rcode(msg.rcode),
                latency_secs: Some(ts.secs_since(sent)),
                answered: msg.rcode == Rcode::NOERROR && msg.answer_count > 0,
                truncated: msg.truncated,
                others_waiting: !entry.waiting.is_empty(),
            };
            return Matched::Answer(tx);
        }
        let Some((sent, _)) = entry.timed_out.pop_front() else {
            self.stats.unmatched_responses += 1;
            return Matched::Unmatched;
        };
        let waiting = !entry.waiting.is_empty();
        let transport = entry.transport;
        self.stats.late_answers += 1;
        Matched::Late {
            late: LateAnswer {
                client,
                server,
                id: key.id,
                qname: key.qname.clone(),
                qtype: key.qtype,
                transport,
                rcode: msg.rcode,
                latency_secs: ts.secs_since(sent),
            },
            waiting,
        }
    }

    /// An ICMP port unreachable for a datagram `client` sent to `server`
    /// completes every UDP transmission waiting between them.
    pub fn unreachable(
        &mut self,
        client: SocketAddr,
        server: SocketAddr,
        out: &mut Vec<Transaction>,
    ) {
        let keys: Vec<TxKey> = self
            .entries
            .iter()
            .filter(|(k, e)| {
                k.client == client
                    && k.server == server
                    && e.transport == Transport::Udp
                    && !e.waiting.is_empty()
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            let Some(e) = self.entries.get_mut(&key) else {
                continue;
            };
            let waiting: Vec<(Timestamp, u64)> = e.waiting.drain(..).collect();
            let transport = e.transport;
            if e.timed_out.is_empty() {
                self.entries.remove(&key);
            }
            for (sent, _) in waiting {
                out.push(complete(&key, transport, sent, Outcome::Unreachable, false));
            }
        }
    }

    /// Completes transmissions whose timeout has passed at `now` as
    /// `TIMEOUT`, and forgets timed-out ones past the late window.
    pub fn expire(&mut self, now: Timestamp, out: &mut Vec<Transaction>) {
        let mut popped = false;
        while let Some((deadline, _, _)) = self.deadlines.front() {
            if *deadline > now {
                break;
            }
            popped = true;
            let Some((deadline, generation, key)) = self.deadlines.pop_front() else {
                break;
            };
            let Some(e) = self.entries.get_mut(&key) else {
                continue;
            };
            let Some(i) = e.waiting.iter().position(|(_, g)| *g == generation) else {
                continue;
            };
            let Some((sent, _)) = e.waiting.remove(i) else {
                continue;
            };
            e.timed_out.push_back((sent, generation));
            let others = !e.waiting.is_empty();
            let transport = e.transport;
            self.stats.timeouts += 1;
            self.forget
                .push_back((deadline.add_secs(LATE_WINDOW_SECS), generation, key.clone()));
            out.push(complete(&key, transport, sent, Outcome::Timeout, others));
        }
        // The new oldest deadline may be of a transmission answered since.
        if popped {
            self.drop_answered_front();
        }
        while let Some((at, _, _)) = self.forget.front() {
            if *at > now {
                break;
            }
            let Some((_, generation, key)) = self.forget.pop_front() else {
                break;
            };
            if let Some(e) = self.entries.get_mut(&key) {
                e.timed_out.retain(|(_, g)| *g != generation);
                if e.waiting.is_empty() && e.timed_out.is_empty() {
                    if let Some(e) = self.entries.remove(&key) {
                        self.recycle(e);
                    }
                }
            }
        }
    }

    /// End of input: every waiting transmission completes as `TIMEOUT`,
    /// however recently it was sent (the capture holds no answer for it).
    pub fn flush(&mut self, out: &mut Vec<Transaction>) {
        let mut rest: Vec<(u64, Timestamp, TxKey, Transport)> = Vec::new();
        for (key, e) in self.entries.drain() {
            for (sent, g) in e.waiting {
                rest.push((g, sent, key.clone(), e.transport));
            }
        }
        rest.sort_by_key(|(g, ..)| *g);
        for (_, sent, key, transport) in rest {
            self.stats.timeouts += 1;
            out.push(complete(&key, transport, sent, Outcome::Timeout, false));
        }
        self.deadlines.clear();
        self.forget.clear();
    }
}

fn complete(
    key: &TxKey,
    transport: Transport,
    sent: Timestamp,
    outcome: Outcome,
    others_waiting: bool,
) -> Transaction {
    Transaction {
        client: key.client,
        server: key.server,
        id: key.id,
        qname: key.qname.clone(),
        qtype: key.qtype,
        transport,
        sent,
        outcome,
        latency_secs: None,
        answered: false,
        truncated: false,
        others_waiting,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::wire::{self, testkit::response_bytes};
    use hickory_proto::op::ResponseCode;
    use hickory_proto::rr::RecordType;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn secs(s: f64) -> Timestamp {
        Timestamp::from_secs_f64(s)
    }

    const CLIENT: &str = "10.0.0.5:41000";
    const SERVER: &str = "10.96.0.10:53";

    fn answer(m: Matched) -> Option<Transaction> {
        match m {
            Matched::Answer(tx) => Some(tx),
            _ => None,
        }
    }

    fn send(t: &mut Transactions, at: f64, id: u16, name: &str) -> QueryStatus {
        t.query(
            secs(at),
            addr(CLIENT),
            addr(SERVER),
            id,
            Arc::from(name),
            QType::A,
            Transport::Udp,
        )
    }

    #[test]
    fn answered_deadlines_leave_the_queue_early() {
        let mut t = Transactions::new(5.0, 4096);
        let reply = |id: u16, name: &str| {
            wire::parse(&response_bytes(
                id,
                &format!("{name}."),
                RecordType::A,
                ResponseCode::NXDomain,
                &[],
            ))
            .unwrap()
        };
        // One query lost at the front, then a steady stream answered at once.
        assert_eq!(send(&mut t, 0.0, 1, "lost.example"), QueryStatus::New);
        for i in 0..1000u16 {
            let at = 0.001 * f64::from(i + 1);
            send(&mut t, at, 2 + i, "n.example");
            let m = t.response(
                secs(at),
                addr(CLIENT),
                addr(SERVER),
                &reply(2 + i, "n.example"),
            );
            assert!(answer(m).is_some());
        }
        // Behind the waiting one, the answered deadlines wait their turn.
        assert_eq!(t.deadlines.len(), 1001);
        let mut done = Vec::new();
        t.expire(secs(5.5), &mut done);
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].outcome, Outcome::Timeout);
        assert_eq!(&*done[0].qname, "lost.example");
        // The lost one timed out: every deadline behind it was answered.
        assert!(t.deadlines.is_empty(), "{}", t.deadlines.len());
        for i in 0..1000u16 {
            let at = 6.0 + 0.001 * f64::from(i);
            send(&mut t, at, 3000 + i, "n.example");
            t.response(
                secs(at),
                addr(CLIENT),
                addr(SERVER),
                &reply(3000 + i, "n.example"),
            );
            assert!(t.deadlines.is_empty(), "{}", t.deadlines.len());
        }
        assert_eq!(t.stats().timeouts, 1);
        assert_eq!(t.pending(), 0);
    }

    #[test]
    fn response_matches_on_addresses_id_and_question() {
        let mut t = Transactions::new(5.0, 16);
        assert_eq!(send(&mut t, 1.0, 7, "a.example"), QueryStatus::New);
        let wrong_name = wire::parse(&response_bytes(
            7,
            "b.example.",
            RecordType::A,
            ResponseCode::NoError,
            &[],
        ))
        .unwrap();
        assert_eq!(
            t.response(secs(1.1), addr(CLIENT), addr(SERVER), &wrong_name),
            Matched::Unmatched
        );
        let wrong_id = wire::parse(&response_bytes(
            8,
            "a.example.",
            RecordType::A,
            ResponseCode::NoError,
            &[],
        ))
        .unwrap();
        assert_eq!(
            t.response(secs(1.1), addr(CLIENT), addr(SERVER), &wrong_id),
            Matched::Unmatched
        );
        let right = wire::parse(&response_bytes(
            7,
            "a.example.",
            RecordType::A,
            ResponseCode::NXDomain,
            &[],
        ))
        .unwrap();
        assert_eq!(
            t.response(secs(1.1), addr("10.0.0.5:41001"), addr(SERVER), &right),
            Matched::Unmatched
        );
        let tx = answer(t.response(secs(1.25), addr(CLIENT), addr(SERVER), &right)).unwrap();
        assert_eq!(tx.outcome.as_str(), "NXDOMAIN");
        assert!((tx.latency_secs.unwrap() - 0.25).abs() < 1e-9);
        assert!(!tx.answered);
        assert_eq!(t.stats().unmatched_responses, 3);
        assert_eq!(t.pending(), 0);
    }

    #[test]
    fn timeout_fires_only_after_the_deadline() {
        let mut t = Transactions::new(5.0, 16);
        send(&mut t, 10.0, 1, "slow.example");
        let mut out = Vec::new();
        t.expire(secs(14.9), &mut out);
        assert!(out.is_empty());
        t.expire(secs(15.0), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].outcome.as_str(), "TIMEOUT");
        assert_eq!(out[0].latency_secs, None);
        // A late response is paired with the timed-out transmission, as late.
        let late = wire::parse(&response_bytes(
            1,
            "slow.example.",
            RecordType::A,
            ResponseCode::ServFail,
            &[],
        ))
        .unwrap();
        let Matched::Late { late: l, waiting } =
            t.response(secs(17.0), addr(CLIENT), addr(SERVER), &late)
        else {
            panic!("not a late answer");
        };
        assert_eq!(l.rcode.as_str(), "SERVFAIL");
        assert!(!waiting);
        assert!((l.latency_secs - 7.0).abs() < 1e-9);
        // A second copy of it matches nothing.
        assert_eq!(
            t.response(secs(17.5), addr(CLIENT), addr(SERVER), &late),
            Matched::Unmatched
        );
        assert_eq!(t.stats().late_answers, 1);
        assert_eq!(t.stats().unmatched_responses, 1);
    }

    #[test]
    fn timed_out_transmissions_are_forgotten_after_the_late_window() {
        let mut t = Transactions::new(5.0, 16);
        send(&mut t, 0.0, 1, "slow.example");
        let mut out = Vec::new();
        t.expire(secs(5.0 + LATE_WINDOW_SECS + 0.1), &mut out);
        assert_eq!(out.len(), 1);
        let late = wire::parse(&response_bytes(
            1,
            "slow.example.",
            RecordType::A,
            ResponseCode::ServFail,
            &[],
        ))
        .unwrap();
        assert_eq!(
            t.response(secs(70.0), addr(CLIENT), addr(SERVER), &late),
            Matched::Unmatched
        );
        // Sent again after that: a new question, not a retransmission.
        assert_eq!(send(&mut t, 71.0, 1, "slow.example"), QueryStatus::New);
    }

    #[test]
    fn every_transmission_is_paired_oldest_waiting_first() {
        // A slow server answering each of three copies 2.5 s after it.
        let mut t = Transactions::new(5.0, 16);
        assert_eq!(send(&mut t, 0.0, 1, "x.example"), QueryStatus::New);
        assert_eq!(
            send(&mut t, 1.0, 1, "x.example"),
            QueryStatus::Retransmission
        );
        assert_eq!(
            send(&mut t, 2.0, 1, "x.example"),
            QueryStatus::Retransmission
        );
        let r = wire::parse(&response_bytes(
            1,
            "x.example.",
            RecordType::A,
            ResponseCode::NoError,
            &[("x.example.", 30, wire::testkit::a("192.0.2.1"))],
        ))
        .unwrap();
        let mut sent = Vec::new();
        for at in [2.5, 3.5, 4.5] {
            let tx = answer(t.response(secs(at), addr(CLIENT), addr(SERVER), &r)).unwrap();
            assert!((tx.latency_secs.unwrap() - 2.5).abs() < 1e-9);
            sent.push((tx.sent.as_secs_f64(), tx.others_waiting));
        }
        assert_eq!(sent, [(0.0, true), (1.0, true), (2.0, false)]);
        let mut out = Vec::new();
        t.expire(secs(100.0), &mut out);
        assert!(out.is_empty());
        assert_eq!(t.stats().queries, 3);
        assert_eq!(t.stats().retransmitted_queries, 2);
    }

    #[test]
    fn copies_answered_in_order_after_their_timeout_are_all_late() {
        // Copies 1 s apart, each answered 6.5 s after it: the first answer
        // comes while the third copy still waits, but long after it was sent.
        let mut t = Transactions::new(5.0, 16);
        for at in [0.0, 1.0, 2.0] {
            send(&mut t, at, 1, "x.example");
        }
        let r = wire::parse(&response_bytes(
            1,
            "x.example.",
            RecordType::A,
            ResponseCode::ServFail,
            &[],
        ))
        .unwrap();
        let mut out = Vec::new();
        let mut got = Vec::new();
        for at in [6.5, 7.5, 8.5] {
            t.expire(secs(at), &mut out);
            match t.response(secs(at), addr(CLIENT), addr(SERVER), &r) {
                Matched::Late { late, waiting } => got.push((late.latency_secs, waiting)),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(got, [(6.5, true), (6.5, false), (6.5, false)]);
        assert_eq!(out.len(), 3);
        assert!(out.iter().all(|tx| tx.outcome == Outcome::Timeout));
    }

    #[test]
    fn copies_of_one_question_are_bounded() {
        let mut t = Transactions::new(5.0, 16);
        for i in 0..100 {
            send(&mut t, f64::from(i) * 0.01, 1, "x.example");
        }
        assert_eq!(t.pending(), MAX_SENDS);
        let st = t.stats();
        assert_eq!((st.queries, st.retransmitted_queries), (100, 99));
        assert_eq!(st.overflow, 100 - MAX_SENDS as u64);
        // Questions remembered only for late answers give way to new ones.
        let mut t = Transactions::new(5.0, 2);
        send(&mut t, 0.0, 1, "a");
        send(&mut t, 0.0, 2, "b");
        let mut out = Vec::new();
        t.expire(secs(6.0), &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(send(&mut t, 6.0, 3, "c"), QueryStatus::New);
        assert_eq!(send(&mut t, 6.0, 4, "d"), QueryStatus::New);
        assert_eq!(send(&mut t, 6.0, 5, "e"), QueryStatus::Overflow);
    }

    #[test]
    fn a_lost_first_copy_times_out_and_the_answer_goes_to_the_copy_waiting() {
        // glibc resends after 5 s; the first copy was dropped on the way.
        let mut t = Transactions::new(5.0, 16);
        send(&mut t, 0.0, 1, "x.example");
        let mut out = Vec::new();
        t.expire(secs(5.0), &mut out);
        assert_eq!(out.len(), 1);
        assert!(!out[0].others_waiting);
        assert_eq!(
            send(&mut t, 5.001, 1, "x.example"),
            QueryStatus::Retransmission
        );
        let r = wire::parse(&response_bytes(
            1,
            "x.example.",
            RecordType::A,
            ResponseCode::NoError,
            &[],
        ))
        .unwrap();
        let tx = answer(t.response(secs(5.003), addr(CLIENT), addr(SERVER), &r)).unwrap();
        assert!((tx.latency_secs.unwrap() - 0.002).abs() < 1e-9);
        assert_eq!(t.stats().late_answers, 0);
    }

    #[test]
    fn each_copy_of_a_query_is_a_transmission() {
        let mut t = Transactions::new(5.0, 16);
        send(&mut t, 0.0, 1, "x.example");
        assert_eq!(
            send(&mut t, 1.0, 1, "x.example"),
            QueryStatus::Retransmission
        );
        let r = wire::parse(&response_bytes(
            1,
            "x.example.",
            RecordType::A,
            ResponseCode::NoError,
            &[("x.example.", 30, wire::testkit::a("192.0.2.1"))],
        ))
        .unwrap();
        let tx = answer(t.response(secs(1.5), addr(CLIENT), addr(SERVER), &r)).unwrap();
        assert!(tx.answered);
        assert!((tx.latency_secs.unwrap() - 1.5).abs() < 1e-9);
        assert!(tx.others_waiting);
        // The second copy got no answer of its own.
        let mut out = Vec::new();
        t.expire(secs(100.0), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].outcome, Outcome::Timeout);
        assert_eq!(out[0].sent, secs(1.0));
        assert_eq!(t.stats().queries, 2);
        assert_eq!(t.stats().retransmitted_queries, 1);
    }

    #[test]
    fn overflow_is_counted_and_unreachable_completes() {
        let mut t = Transactions::new(5.0, 2);
        send(&mut t, 0.0, 1, "a");
        send(&mut t, 0.0, 2, "b");
        assert_eq!(send(&mut t, 0.0, 3, "c"), QueryStatus::Overflow);
        assert_eq!(t.stats().overflow, 1);
        let mut out = Vec::new();
        t.unreachable(addr(CLIENT), addr(SERVER), &mut out);
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|tx| tx.outcome.as_str() == "UNREACHABLE"));
        t.flush(&mut out);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn flush_times_out_everything_pending() {
        let mut t = Transactions::new(5.0, 16);
        send(&mut t, 0.0, 1, "a");
        send(&mut t, 0.5, 2, "b");
        let mut out = Vec::new();
        t.flush(&mut out);
        let names: Vec<&str> = out.iter().map(|tx| &*tx.qname).collect();
        assert_eq!(names, ["a", "b"]);
        assert!(out.iter().all(|tx| tx.outcome == Outcome::Timeout));
    }
}
