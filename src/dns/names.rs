//! Address → name table, filled from A/AAAA answers.
//!
//! An entry lives for the record's TTL plus a grace period (applications
//! cache answers past the TTL: JVM, Go with cgo, nscd). It holds the name as
//! the application wrote it, the FQDN that was answered, and the Service and
//! namespace when the FQDN is `<svc>.<ns>.svc.<domain>`. At most `capacity`
//! entries: when full, expired entries go first, then the entry closest to
//! expiry; evictions are counted.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use super::wire::{Answer, AnswerData};
use crate::Timestamp;

/// CNAME hops followed from the question name.
const MAX_CHAIN: usize = 16;
/// Entries examined to pick an eviction victim.
const EVICTION_SAMPLE: usize = 32;
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
                AnswerData::Cname(_) => {}
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
}

impl NameTable {
    pub fn new(capacity: usize, grace_secs: f64) -> Self {
        NameTable {
            map: HashMap::new(),
            capacity: capacity.max(1),
            grace_secs: if grace_secs.is_finite() {
                grace_secs.max(0.0)
            } else {
                0.0
            },
            evicted: 0,
            last_sweep: Timestamp::ZERO,
        }
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

    /// Records that `addr` answered `fqdn` at `ts` with `ttl`; returns true
    /// when a live entry was evicted to make room.
    pub fn insert(&mut self, ts: Timestamp, addr: IpAddr, ttl: u32, mut info: NameInfo) -> bool {
        info.answered_at = ts;
        info.expires = ts.add_secs(ttl as f64 + self.grace_secs);
        let mut evicted = false;
        if !self.map.contains_key(&addr) && self.map.len() >= self.capacity {
            // Both steps are bounded per insert: a flood of unique answers
            // must not cost a scan of the whole table each (the sweep runs
            // at most once per interval; the victim is the entry expiring
            // first among a sample, as the flow table does).
            self.expire(ts);
            if self.map.len() >= self.capacity {
                let victim = self
                    .map
                    .iter()
                    .take(EVICTION_SAMPLE)
                    .min_by_key(|(_, i)| i.expires)
                    .map(|(a, i)| (*a, i.expires >= ts));
                if let Some((v, live)) = victim {
                    self.map.remove(&v);
                    // An expired victim only makes room: not an eviction.
                    if live {
                        self.evicted += 1;
                        evicted = true;
                    }
                }
            }
        }
        self.map.insert(addr, info);
        evicted
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
        assert!(!t.insert(secs(5.0), ips[2], 50, info("c")));
        assert_eq!(t.evicted(), 0);
        // Full of live entries: the one expiring first (c) goes.
        assert!(t.insert(secs(6.0), ips[3], 200, info("d")));
        assert_eq!(t.evicted(), 1);
        assert!(t.resolve(ips[2], secs(6.0)).is_none());
        assert!(t.resolve(ips[1], secs(6.0)).is_some());
        assert_eq!(t.len(), 2);
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
