//! Query ↔ response matching.
//!
//! A transaction is keyed by client address and port, server address and
//! port, message id, and the question (name and type). A response completes
//! the pending query with the same key (a response without a question
//! matches on addresses and id alone). A query still pending after the
//! timeout completes as `TIMEOUT`; an ICMP port unreachable answering it
//! completes it as `UNREACHABLE`. A query sent again with the same key while
//! pending is a retransmission: counted, not a new transaction, latency
//! measured from the first copy.
//!
//! The pending table holds at most `max_pending` queries; past that new
//! queries are not tracked (counted as `overflow`) and their responses are
//! counted as unmatched.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;

use super::wire::{DnsMessage, QType, Rcode};
use crate::hash::HashMap;
use crate::Timestamp;

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

/// How a transaction ended.
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

/// A completed query.
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
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxStats {
    pub queries: u64,
    pub retransmitted_queries: u64,
    pub responses: u64,
    pub unmatched_responses: u64,
    pub timeouts: u64,
    /// Queries not tracked because the pending table was full.
    pub overflow: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct TxKey {
    client: SocketAddr,
    server: SocketAddr,
    id: u16,
    qtype: QType,
    qname: Arc<str>,
}

#[derive(Debug)]
struct Pending {
    sent: Timestamp,
    transport: Transport,
    generation: u64,
}

/// What `Transactions::query` did with a query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryStatus {
    New,
    Retransmission,
    /// Not tracked: the pending table is full.
    Overflow,
}

#[derive(Debug)]
pub struct Transactions {
    pending: HashMap<TxKey, Pending>,
    /// (deadline, generation, key) in arrival order; entries whose generation
    /// no longer matches the pending entry are stale and skipped.
    deadlines: VecDeque<(Timestamp, u64, TxKey)>,
    timeout_secs: f64,
    max_pending: usize,
    generation: u64,
    stats: TxStats,
}

impl Transactions {
    pub fn new(timeout_secs: f64, max_pending: usize) -> Self {
        Transactions {
            pending: HashMap::default(),
            deadlines: VecDeque::new(),
            timeout_secs: if timeout_secs.is_finite() && timeout_secs > 0.0 {
                timeout_secs
            } else {
                5.0
            },
            max_pending: max_pending.max(1),
            generation: 0,
            stats: TxStats::default(),
        }
    }

    pub fn stats(&self) -> TxStats {
        self.stats
    }

    pub fn pending(&self) -> usize {
        self.pending.len()
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
        if self.pending.contains_key(&key) {
            self.stats.retransmitted_queries += 1;
            return QueryStatus::Retransmission;
        }
        self.stats.queries += 1;
        if self.pending.len() >= self.max_pending {
            self.stats.overflow += 1;
            return QueryStatus::Overflow;
        }
        self.generation += 1;
        self.deadlines
            .push_back((ts.add_secs(self.timeout_secs), self.generation, key.clone()));
        self.pending.insert(
            key,
            Pending {
                sent: ts,
                transport,
                generation: self.generation,
            },
        );
        if self.deadlines.len() > 4 * self.max_pending {
            let pending = &self.pending;
            self.deadlines
                .retain(|(_, g, k)| pending.get(k).is_some_and(|p| p.generation == *g));
        }
        QueryStatus::New
    }

    /// Matches a response (sent by `server` to `client`) to its query.
    pub fn response(
        &mut self,
        ts: Timestamp,
        client: SocketAddr,
        server: SocketAddr,
        msg: &DnsMessage,
    ) -> Option<Transaction> {
        self.stats.responses += 1;
        let key = match &msg.question {
            Some(q) => {
                let probe = TxKey {
                    client,
                    server,
                    id: msg.id,
                    qtype: q.qtype,
                    qname: Arc::from(q.name.as_str()),
                };
                self.pending.contains_key(&probe).then_some(probe)
            }
            None => self
                .pending
                .keys()
                .find(|k| k.client == client && k.server == server && k.id == msg.id)
                .cloned(),
        };
        let Some(key) = key else {
            self.stats.unmatched_responses += 1;
            return None;
        };
        let pending = self.pending.remove(&key)?;
        Some(Transaction {
            latency_secs: Some(ts.secs_since(pending.sent)),
            outcome: Outcome::Rcode(msg.rcode),
            answered: msg.rcode == Rcode::NOERROR && msg.answer_count > 0,
            truncated: msg.truncated,
            ..complete(key, pending, Outcome::Timeout)
        })
    }

    /// An ICMP port unreachable for a datagram `client` sent to `server`
    /// completes every query pending between them.
    pub fn unreachable(
        &mut self,
        client: SocketAddr,
        server: SocketAddr,
        out: &mut Vec<Transaction>,
    ) {
        let keys: Vec<TxKey> = self
            .pending
            .keys()
            .filter(|k| k.client == client && k.server == server)
            .cloned()
            .collect();
        for key in keys {
            if let Some(p) = self.pending.remove(&key) {
                if p.transport == Transport::Udp {
                    out.push(complete(key, p, Outcome::Unreachable));
                } else {
                    self.pending.insert(key, p);
                }
            }
        }
    }

    /// Completes queries whose timeout has passed at `now` as `TIMEOUT`.
    pub fn expire(&mut self, now: Timestamp, out: &mut Vec<Transaction>) {
        while let Some((deadline, _, _)) = self.deadlines.front() {
            if *deadline > now {
                break;
            }
            let Some((_, generation, key)) = self.deadlines.pop_front() else {
                break;
            };
            let live = self
                .pending
                .get(&key)
                .is_some_and(|p| p.generation == generation);
            if live {
                if let Some(p) = self.pending.remove(&key) {
                    self.stats.timeouts += 1;
                    out.push(complete(key, p, Outcome::Timeout));
                }
            }
        }
    }

    /// End of input: every pending query completes as `TIMEOUT`, however
    /// recently it was sent (the capture holds no answer for it).
    pub fn flush(&mut self, out: &mut Vec<Transaction>) {
        let mut rest: Vec<(TxKey, Pending)> = self.pending.drain().collect();
        rest.sort_by_key(|(_, p)| p.generation);
        for (key, p) in rest {
            self.stats.timeouts += 1;
            out.push(complete(key, p, Outcome::Timeout));
        }
        self.deadlines.clear();
    }
}

fn complete(key: TxKey, p: Pending, outcome: Outcome) -> Transaction {
    Transaction {
        client: key.client,
        server: key.server,
        id: key.id,
        qname: key.qname,
        qtype: key.qtype,
        transport: p.transport,
        sent: p.sent,
        outcome,
        latency_secs: None,
        answered: false,
        truncated: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::wire::{self, tests::response_bytes};
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
        assert!(t
            .response(secs(1.1), addr(CLIENT), addr(SERVER), &wrong_name)
            .is_none());
        let wrong_id = wire::parse(&response_bytes(
            8,
            "a.example.",
            RecordType::A,
            ResponseCode::NoError,
            &[],
        ))
        .unwrap();
        assert!(t
            .response(secs(1.1), addr(CLIENT), addr(SERVER), &wrong_id)
            .is_none());
        let right = wire::parse(&response_bytes(
            7,
            "a.example.",
            RecordType::A,
            ResponseCode::NXDomain,
            &[],
        ))
        .unwrap();
        assert!(t
            .response(secs(1.1), addr("10.0.0.5:41001"), addr(SERVER), &right)
            .is_none());
        let tx = t
            .response(secs(1.25), addr(CLIENT), addr(SERVER), &right)
            .unwrap();
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
        // A late response no longer matches.
        let late = wire::parse(&response_bytes(
            1,
            "slow.example.",
            RecordType::A,
            ResponseCode::NoError,
            &[],
        ))
        .unwrap();
        assert!(t
            .response(secs(16.0), addr(CLIENT), addr(SERVER), &late)
            .is_none());
    }

    #[test]
    fn retransmission_is_one_transaction_and_answered_one_does_not_time_out() {
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
            &[("x.example.", 30, wire::tests::a("192.0.2.1"))],
        ))
        .unwrap();
        let tx = t
            .response(secs(1.5), addr(CLIENT), addr(SERVER), &r)
            .unwrap();
        assert!(tx.answered);
        assert!((tx.latency_secs.unwrap() - 1.5).abs() < 1e-9);
        let mut out = Vec::new();
        t.expire(secs(100.0), &mut out);
        assert!(out.is_empty());
        assert_eq!(t.stats().queries, 1);
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
