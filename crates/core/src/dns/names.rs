//! Address → name table, filled from A/AAAA answers.
//!
//! An entry lives for the record's TTL plus a grace period (applications
//! cache answers past the TTL: JVM, Go with cgo, nscd). It holds the name as
//! the application wrote it, the FQDN that was answered, and the Service and
//! namespace when the FQDN is `<svc>.<ns>.svc.<domain>`. At most `capacity`
//! entries: when full, expired entries go first, then the entry closest to
//! expiry; evictions are counted.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;

use super::wire::{Answer, AnswerData};
use crate::hash::{HashMap, HashSet};
use crate::Timestamp;

/// CNAME hops followed from the question name.
const MAX_CHAIN: usize = 16;
/// Expired entries are swept at most this often (seconds of packet time).
const SWEEP_INTERVAL_SECS: f64 = 10.0;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameInfo {
    /// The name as the application wrote it (search suffix and trailing dot
    /// removed); the FQDN when no lookup was seen for the answer.
    pub name: Arc<str>,
    /// The question name that was answered.
    pub fqdn: Arc<str>,
    pub service: Option<Arc<str>>,
    pub namespace: Option<Arc<str>>,
    pub answered_at: Timestamp,
    pub expires: Timestamp,
    /// The record's TTL (seconds); `expires` adds the grace period to it.
    pub ttl: u32,
}

/// One response's addresses for a name and address family: what the
/// staleness check compares a connection against, and what the rewrite
/// detector looks back on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnswerSet {
    pub at: Timestamp,
    /// The pod address that asked.
    pub client: IpAddr,
    pub name: Arc<str>,
    pub fqdn: Arc<str>,
    pub service: Option<Arc<str>>,
    pub namespace: Option<Arc<str>>,
    /// At most [`MAX_ANSWER_ADDRS`], all of one family.
    pub addrs: Vec<IpAddr>,
}

/// Addresses kept per answer set.
pub const MAX_ANSWER_ADDRS: usize = 64;
/// A connection counts as past the TTL only this long after it expired:
/// answers with TTL 0 (or 1) are used at once by design, not stale.
const PAST_TTL_SLACK_SECS: f64 = 1.0;
/// Answer sets kept for looking back (newest first).
const MAX_RECENT: usize = 64;

/// Why a connection that DNS attributes is stale.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stale {
    /// The latest answer for the name no longer holds the address; an
    /// older answer (still within TTL + grace) did.
    NotInLatestAnswer,
    /// The answer is more than a second past its TTL (but within the
    /// grace period).
    PastTtl,
}

impl Stale {
    pub fn as_str(self) -> &'static str {
        match self {
            Stale::NotInLatestAnswer => "not_in_latest_answer",
            Stale::PastTtl => "past_ttl",
        }
    }
}

/// Service and namespace of `<svc>.<ns>.svc.<domain>`.
pub fn service_of<'a>(fqdn: &'a str, domain: &str) -> Option<(&'a str, &'a str)> {
    let head = fqdn.strip_suffix(domain)?.strip_suffix(".svc.")?;
    let (svc, ns) = head.split_once('.')?;
    (!svc.is_empty() && !ns.is_empty() && !ns.contains('.')).then_some((svc, ns))
}

/// Addresses answering `qname`, following CNAMEs, each with the smallest TTL
/// along its chain; and the last name of the chain.
pub fn chase(qname: &str, answers: &[Answer]) -> (Vec<(IpAddr, u32)>, Option<String>) {
    let mut current = qname;
    let mut chain_ttl = u32::MAX;
    let mut out = Vec::new();
    for _ in 0..MAX_CHAIN {
        for a in answers.iter().filter(|a| a.name == current) {
            match a.data {
                AnswerData::A(ip) => out.push((IpAddr::V4(ip), a.ttl.min(chain_ttl))),
                AnswerData::Aaaa(ip) => out.push((IpAddr::V6(ip), a.ttl.min(chain_ttl))),
                AnswerData::Cname(_) | AnswerData::Ptr(_) => {}
            }
        }
        let next = answers.iter().find_map(|a| match &a.data {
            AnswerData::Cname(target) if a.name == current => Some((target.as_str(), a.ttl)),
            _ => None,
        });
        match next {
            Some((target, ttl)) if target != current => {
                chain_ttl = chain_ttl.min(ttl);
                current = target;
            }
            _ => break,
        }
    }
    let canonical = (current != qname).then(|| current.to_string());
    (out, canonical)
}

#[derive(Debug)]
pub struct NameTable {
    map: HashMap<IpAddr, NameInfo>,
    capacity: usize,
    grace_secs: f64,
    evicted: u64,
    last_sweep: Timestamp,
    /// The latest answer per (FQDN, is IPv6); at most `capacity` entries.
    latest: HashMap<(Arc<str>, bool), Arc<AnswerSet>>,
    recent: VecDeque<Arc<AnswerSet>>,
    /// Every address any answer held (cleared when it reaches 4 × capacity).
    answered: HashSet<IpAddr>,
}

impl NameTable {
    pub fn new(capacity: usize, grace_secs: f64) -> Self {
        NameTable {
            map: HashMap::default(),
            capacity: capacity.max(1),
            grace_secs: if grace_secs.is_finite() {
                grace_secs.max(0.0)
            } else {
                0.0
            },
            evicted: 0,
            last_sweep: Timestamp::ZERO,
            latest: HashMap::default(),
            recent: VecDeque::new(),
            answered: HashSet::default(),
        }
    }

    /// Records one response's addresses for `set.fqdn` (one family).
    pub fn record_answer(&mut self, mut set: AnswerSet) {
        let Some(v6) = set.addrs.first().map(|a| a.is_ipv6()) else {
            return;
        };
        set.addrs.truncate(MAX_ANSWER_ADDRS);
        let key = (set.fqdn.clone(), v6);
        if self.answered.len() + set.addrs.len() > self.capacity.saturating_mul(4) {
            self.answered.clear();
        }
        self.answered.extend(set.addrs.iter().copied());
        let set = Arc::new(set);
        if !self.latest.contains_key(&key) && self.latest.len() >= self.capacity {
            // Drop the oldest 1/16 at once: a flood of new names pays this
            // O(n) scan once per capacity/16 answers, not on every one.
            let batch = (self.capacity / 16).max(1);
            let mut ages: Vec<Timestamp> = self.latest.values().map(|s| s.at).collect();
            let index = batch.min(ages.len()).saturating_sub(1);
            if let Some((_, &mut cutoff, _)) =
                (!ages.is_empty()).then(|| ages.select_nth_unstable(index))
            {
                let mut removed = 0;
                self.latest.retain(|_, s| {
                    let drop = removed < batch && s.at <= cutoff;
                    removed += drop as usize;
                    !drop
                });
            }
        }
        self.latest.insert(key, set.clone());
        if self.recent.len() >= MAX_RECENT {
            self.recent.pop_back();
        }
        self.recent.push_front(set);
    }

    /// Answer sets, newest first (bounded look-back).
    pub fn recent(&self) -> impl Iterator<Item = &AnswerSet> {
        self.recent.iter().map(|s| &**s)
    }

    /// Whether any answer (as far as the bounded memory reaches) held `addr`.
    pub fn ever_answered(&self, addr: IpAddr) -> bool {
        self.answered.contains(&addr)
    }

    /// Whether a connection to `addr` at `now` follows a stale answer.
    /// `NotInLatestAnswer` wins over `PastTtl`.
    pub fn staleness(&self, addr: IpAddr, now: Timestamp) -> Option<Stale> {
        let info = self.resolve(addr, now)?;
        let latest = self.latest.get(&(info.fqdn.clone(), addr.is_ipv6()));
        if latest.is_some_and(|l| !l.addrs.contains(&addr) && l.at > info.answered_at) {
            return Some(Stale::NotInLatestAnswer);
        }
        let deadline = info
            .answered_at
            .add_secs(f64::from(info.ttl) + PAST_TTL_SLACK_SECS);
        (now > deadline).then_some(Stale::PastTtl)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Records that `addr` answered `fqdn` at `ts` with `ttl`; returns how
    /// many live entries were evicted to make room.
    pub fn insert(&mut self, ts: Timestamp, addr: IpAddr, ttl: u32, mut info: NameInfo) -> usize {
        info.answered_at = ts;
        info.ttl = ttl;
        info.expires = ts.add_secs(ttl as f64 + self.grace_secs);
        let mut evicted = 0;
        if !self.map.contains_key(&addr) && self.map.len() >= self.capacity {
            // Both scans are amortised: after them the table has room for
            // at least capacity/16 more inserts, so a flood of unique
            // answers pays O(1) per insert on average.
            self.sweep(ts);
            if self.map.len() >= self.capacity {
                evicted = self.evict_batch();
            }
        }
        self.map.insert(addr, info);
        evicted
    }

    /// Evicts the 1/16 of the table closest to expiry, so that a full table
    /// pays the O(n) scan once per batch of inserts, not on every one.
    fn evict_batch(&mut self) -> usize {
        let batch = (self.capacity / 16).max(1);
        let mut expiries: Vec<Timestamp> = self.map.values().map(|i| i.expires).collect();
        if expiries.is_empty() {
            return 0;
        }
        // In bounds: 0 ≤ index < len.
        let index = batch.min(expiries.len()) - 1;
        let (_, &mut cutoff, _) = expiries.select_nth_unstable(index);
        let mut removed = 0;
        self.map.retain(|_, i| {
            let drop = removed < batch && i.expires <= cutoff;
            removed += drop as usize;
            !drop
        });
        self.evicted += removed as u64;
        removed
    }

    /// The live entry for `addr` at `now`.
    pub fn resolve(&self, addr: IpAddr, now: Timestamp) -> Option<&NameInfo> {
        self.map.get(&addr).filter(|i| i.expires >= now)
    }

    /// Drops expired entries (at most once per sweep interval).
    pub fn expire(&mut self, now: Timestamp) {
        if now.secs_since(self.last_sweep) >= SWEEP_INTERVAL_SECS {
            self.sweep(now);
        }
    }

    fn sweep(&mut self, now: Timestamp) {
        self.last_sweep = now;
        self.map.retain(|_, i| i.expires >= now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Timestamp {
        Timestamp::from_secs_f64(s)
    }

    fn info(name: &str) -> NameInfo {
        NameInfo {
            name: Arc::from(name),
            fqdn: Arc::from(name),
            service: None,
            namespace: None,
            answered_at: Timestamp::ZERO,
            expires: Timestamp::ZERO,
            ttl: 0,
        }
    }

    fn answer(name: &str, ttl: u32, data: AnswerData) -> Answer {
        Answer {
            name: name.into(),
            ttl,
            data,
        }
    }

    #[test]
    fn ttl_plus_grace() {
        let mut t = NameTable::new(8, 30.0);
        let ip: IpAddr = "10.96.0.20".parse().unwrap();
        t.insert(secs(100.0), ip, 5, info("demo-app"));
        assert_eq!(&*t.resolve(ip, secs(134.9)).unwrap().name, "demo-app");
        assert!(t.resolve(ip, secs(135.1)).is_none());
        t.expire(secs(200.0));
        assert!(t.is_empty());
    }

    #[test]
    fn eviction_prefers_expired_then_nearest_expiry() {
        let mut t = NameTable::new(2, 0.0);
        let ips: Vec<IpAddr> = (1..=4).map(|i| IpAddr::from([10, 0, 0, i])).collect();
        t.insert(secs(0.0), ips[0], 1, info("a"));
        t.insert(secs(0.0), ips[1], 100, info("b"));
        // ips[0] has expired by t=5: it makes room without an eviction.
        assert_eq!(t.insert(secs(5.0), ips[2], 50, info("c")), 0);
        assert_eq!(t.evicted(), 0);
        // Full of live entries: the one expiring first (c) goes.
        assert_eq!(t.insert(secs(6.0), ips[3], 200, info("d")), 1);
        assert_eq!(t.evicted(), 1);
        assert!(t.resolve(ips[2], secs(6.0)).is_none());
        assert!(t.resolve(ips[1], secs(6.0)).is_some());
        assert_eq!(t.len(), 2);
    }

    fn set(at: f64, fqdn: &str, addrs: &[IpAddr]) -> AnswerSet {
        AnswerSet {
            at: secs(at),
            client: IpAddr::from([10, 244, 1, 20]),
            name: Arc::from(fqdn),
            fqdn: Arc::from(fqdn),
            service: None,
            namespace: None,
            addrs: addrs.to_vec(),
        }
    }

    #[test]
    fn staleness_by_latest_answer_then_by_ttl() {
        let mut t = NameTable::new(8, 30.0);
        let old: IpAddr = "10.244.2.5".parse().unwrap();
        let new: IpAddr = "10.244.2.6".parse().unwrap();
        let v6: IpAddr = "fd00::5".parse().unwrap();
        t.insert(secs(0.0), old, 5, info("db"));
        t.record_answer(set(0.0, "db", &[old]));
        assert_eq!(t.staleness(old, secs(1.0)), None);
        assert_eq!(t.staleness(old, secs(5.9)), None);
        assert_eq!(t.staleness(old, secs(6.1)), Some(Stale::PastTtl));
        // A newer answer without `old`: connecting to `old` is stale.
        t.insert(secs(10.0), new, 5, info("db"));
        t.record_answer(set(10.0, "db", &[new]));
        assert_eq!(t.staleness(old, secs(11.0)), Some(Stale::NotInLatestAnswer));
        assert_eq!(t.staleness(new, secs(11.0)), None);
        // Past TTL + grace there is no attribution, hence nothing stale.
        assert_eq!(t.staleness(old, secs(36.0)), None);
        // The AAAA answer set is separate from the A one.
        t.insert(secs(12.0), v6, 5, info("db"));
        t.record_answer(set(12.0, "db", &[v6]));
        assert_eq!(t.staleness(new, secs(13.0)), None);
        assert!(t.ever_answered(old));
        assert_eq!(t.recent().next().map(|s| s.addrs.clone()), Some(vec![v6]));
    }

    #[test]
    fn answer_memory_is_bounded() {
        let mut t = NameTable::new(4, 0.0);
        for i in 0..200u32 {
            let a = IpAddr::from(i.to_be_bytes());
            t.record_answer(set(f64::from(i), &format!("n{i}"), &[a]));
        }
        assert!(t.latest.len() <= 4);
        assert!(t.recent.len() <= MAX_RECENT);
        assert!(t.answered.len() <= 16);
    }

    #[test]
    fn a_full_table_evicts_in_batches() {
        let mut t = NameTable::new(64, 0.0);
        for i in 0..64u8 {
            t.insert(
                secs(0.0),
                IpAddr::from([10, 1, 0, i]),
                100 + i as u32,
                info("x"),
            );
        }
        // One insert into the full table drops the 4 (= 64/16) nearest expiries.
        assert_eq!(
            t.insert(secs(1.0), IpAddr::from([10, 2, 0, 0]), 500, info("y")),
            4
        );
        assert_eq!(t.len(), 61);
        assert!(t.resolve(IpAddr::from([10, 1, 0, 3]), secs(1.0)).is_none());
        assert!(t.resolve(IpAddr::from([10, 1, 0, 4]), secs(1.0)).is_some());
        // The next three inserts need no eviction.
        for i in 1..=3u8 {
            assert_eq!(
                t.insert(secs(1.0), IpAddr::from([10, 2, 0, i]), 500, info("y")),
                0
            );
        }
        assert_eq!(t.evicted(), 4);
    }

    #[test]
    fn service_and_namespace_from_fqdn() {
        assert_eq!(
            service_of("demo-app.default.svc.cluster.local", "cluster.local"),
            Some(("demo-app", "default"))
        );
        assert_eq!(service_of("a.b.c.svc.cluster.local", "cluster.local"), None);
        assert_eq!(
            service_of("demo-app.default.svc.example.org", "cluster.local"),
            None
        );
        assert_eq!(service_of("svc.cluster.local", "cluster.local"), None);
    }

    #[test]
    fn cname_chain_is_followed_with_minimum_ttl() {
        let answers = vec![
            answer(
                "ext.default.svc.cluster.local",
                30,
                AnswerData::Cname("api.example.com".into()),
            ),
            answer(
                "api.example.com",
                300,
                AnswerData::Cname("edge.cdn.net".into()),
            ),
            answer(
                "edge.cdn.net",
                60,
                AnswerData::A("192.0.2.1".parse().unwrap()),
            ),
            answer(
                "edge.cdn.net",
                60,
                AnswerData::Aaaa("2001:db8::1".parse().unwrap()),
            ),
            answer(
                "unrelated.net",
                60,
                AnswerData::A("192.0.2.99".parse().unwrap()),
            ),
        ];
        let (addrs, canonical) = chase("ext.default.svc.cluster.local", &answers);
        assert_eq!(
            addrs,
            vec![
                ("192.0.2.1".parse().unwrap(), 30),
                ("2001:db8::1".parse().unwrap(), 30)
            ]
        );
        assert_eq!(canonical.as_deref(), Some("edge.cdn.net"));
        // A CNAME loop ends.
        let looped = vec![
            answer("a", 1, AnswerData::Cname("b".into())),
            answer("b", 1, AnswerData::Cname("a".into())),
        ];
        assert_eq!(chase("a", &looped).0, vec![]);
    }
}
