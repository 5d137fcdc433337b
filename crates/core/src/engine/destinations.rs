//! What each destination address is, from every name the pod's traffic (or
//! podpath's own PTR lookups) gave it, and which addresses the app dialed
//! literally (paths `pod_ip`, `cluster_ip`).
//!
//! A counter cannot wait for a name that arrives later, so the exporters get
//! two things: the literal connection (counted at once, by address) and a
//! [`Naming`] per literal address whenever its name becomes known or changes
//! (`Event::DestinationNamed`), before or after the connection. The exposition
//! joins them on the address.
//!
//! One name per address: a name the cluster's DNS forms (Service, endpoint,
//! pod) wins over an opaque one; among equals the newest wins. Names do not
//! expire with the record's TTL: a ClusterIP keeps its Service while the
//! Service lives, and the table is bounded (`capacity`, oldest-touched
//! evicted first in batches, evictions counted).

use std::net::IpAddr;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::Arc;

use crate::attribution::Path;
use crate::dns::k8s::{DestinationName, NameSource};
use crate::hash::HashMap;
use crate::Timestamp;

/// Names waiting in a [`NameFeed`] before the engine takes them.
pub const FEED_CAPACITY: usize = 1024;

/// A name for a destination address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Naming {
    /// The name as answered (lower case, no trailing dot).
    pub fqdn: Arc<str>,
    pub what: DestinationName,
    pub source: NameSource,
    /// Packet time it was learned.
    pub at: Timestamp,
}

impl Naming {
    pub fn service(&self) -> Option<&str> {
        self.what.service().map(|s| &**s)
    }

    pub fn namespace(&self) -> Option<&str> {
        self.what.namespace().map(|s| &**s)
    }

    pub fn pod(&self) -> Option<&str> {
        self.what.pod().map(|s| &**s)
    }
}

#[derive(Debug)]
struct Entry {
    naming: Option<Naming>,
    /// The literal path the app dialed it by, once it did.
    literal: Option<Path>,
    touched: Timestamp,
}

/// What [`Destinations::name`] changed.
#[derive(Debug, PartialEq, Eq)]
pub enum Learned {
    /// Nothing new (same name, or a weaker one than held).
    Kept,
    /// A new or better name for an address not dialed literally.
    Named,
    /// A new or better name for an address the app dialed literally: export it.
    NamedLiteral,
}

#[derive(Debug)]
pub struct Destinations {
    map: HashMap<IpAddr, Entry>,
    capacity: usize,
    evicted: u64,
}

impl Destinations {
    pub fn new(capacity: usize) -> Self {
        Destinations {
            map: HashMap::default(),
            capacity: capacity.max(1),
            evicted: 0,
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

    pub fn naming(&self, addr: IpAddr) -> Option<&Naming> {
        self.map.get(&addr).and_then(|e| e.naming.as_ref())
    }

    /// Every named address the app dialed literally, in address order.
    pub fn literal_named(&self) -> Vec<(IpAddr, Path, &Naming)> {
        let mut out: Vec<_> = self
            .map
            .iter()
            .filter_map(|(a, e)| Some((*a, e.literal?, e.naming.as_ref()?)))
            .collect();
        out.sort_by_key(|(a, _, _)| *a);
        out
    }

    /// Records a name for `addr`; returns the number of entries evicted to
    /// make room, and what changed.
    pub fn name(&mut self, addr: IpAddr, naming: Naming) -> (usize, Learned) {
        let evicted = self.make_room(addr);
        let at = naming.at;
        let entry = self.map.entry(addr).or_insert(Entry {
            naming: None,
            literal: None,
            touched: at,
        });
        entry.touched = entry.touched.max(at);
        let better = match &entry.naming {
            None => true,
            Some(old) => {
                (old.fqdn != naming.fqdn || old.source != naming.source)
                    && (naming.what.is_cluster() || !old.what.is_cluster())
            }
        };
        if !better {
            return (evicted, Learned::Kept);
        }
        entry.naming = Some(naming);
        let learned = if entry.literal.is_some() {
            Learned::NamedLiteral
        } else {
            Learned::Named
        };
        (evicted, learned)
    }

    /// Records that the app dialed `addr` by its literal address. Returns
    /// the evictions, whether this is the first literal use, and the name
    /// when it is known already (to export with the first use).
    pub fn dialed(
        &mut self,
        ts: Timestamp,
        addr: IpAddr,
        path: Path,
    ) -> (usize, bool, Option<&Naming>) {
        let evicted = self.make_room(addr);
        let entry = self.map.entry(addr).or_insert(Entry {
            naming: None,
            literal: None,
            touched: ts,
        });
        entry.touched = entry.touched.max(ts);
        let first = entry.literal.is_none();
        entry.literal = Some(path);
        (evicted, first, entry.naming.as_ref())
    }

    fn make_room(&mut self, addr: IpAddr) -> usize {
        if self.map.len() < self.capacity || self.map.contains_key(&addr) {
            return 0;
        }
        // Drop the oldest-touched 1/16 at once, so a flood of new addresses
        // pays the O(n) scan once per capacity/16 inserts.
        let batch = (self.capacity / 16).max(1);
        let mut ages: Vec<Timestamp> = self.map.values().map(|e| e.touched).collect();
        let index = batch.min(ages.len()) - 1;
        let (_, &mut cutoff, _) = ages.select_nth_unstable(index);
        let mut removed = 0;
        self.map.retain(|_, e| {
            let drop = removed < batch && e.touched <= cutoff;
            removed += drop as usize;
            !drop
        });
        self.evicted += removed as u64;
        removed
    }
}

/// A name learned outside the engine thread (podpath's own PTR lookups).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FedName {
    pub addr: IpAddr,
    /// The PTR target as answered (any case, trailing dot or not).
    pub fqdn: String,
    pub source: NameSource,
}

/// Hands names to the engine from another thread. Cloneable and `Send`;
/// bounded: [`NameFeed::send`] never blocks and returns `false` (the name is
/// dropped, and counted by the engine as `podpath_table_evictions_total{table="name_feed"}`)
/// when [`FEED_CAPACITY`] names are already waiting. The engine takes them
/// once per second of packet time (live capture advances it when idle too).
#[derive(Clone, Debug)]
pub struct NameFeed {
    tx: SyncSender<FedName>,
    dropped: Arc<std::sync::atomic::AtomicU64>,
}

impl NameFeed {
    pub fn send(&self, name: FedName) -> bool {
        match self.tx.try_send(name) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.dropped
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                false
            }
            // The engine is gone: nothing to count against.
            Err(TrySendError::Disconnected(_)) => false,
        }
    }
}

/// The engine's end of the feed.
#[derive(Debug)]
pub(crate) struct FeedInbox {
    rx: Receiver<FedName>,
    feed: NameFeed,
    dropped_seen: u64,
}

impl FeedInbox {
    pub(crate) fn new() -> Self {
        let (tx, rx) = std::sync::mpsc::sync_channel(FEED_CAPACITY);
        FeedInbox {
            rx,
            feed: NameFeed {
                tx,
                dropped: Arc::default(),
            },
            dropped_seen: 0,
        }
    }

    pub(crate) fn feed(&self) -> NameFeed {
        self.feed.clone()
    }

    /// Names waiting now (at most [`FEED_CAPACITY`]) and the number dropped
    /// since the last call.
    pub(crate) fn take(&mut self) -> (Vec<FedName>, u64) {
        let names: Vec<FedName> = self.rx.try_iter().take(FEED_CAPACITY).collect();
        let dropped = self.feed.dropped.load(std::sync::atomic::Ordering::Relaxed);
        let new = dropped - self.dropped_seen;
        self.dropped_seen = dropped;
        (names, new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: f64) -> Timestamp {
        Timestamp::ZERO.add_secs(s)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn naming(fqdn: &str, source: NameSource, t: f64) -> Naming {
        Naming {
            fqdn: fqdn.into(),
            what: DestinationName::parse(fqdn, "cluster.local"),
            source,
            at: at(t),
        }
    }

    #[test]
    fn a_name_before_or_after_the_literal_use_is_exported_once_dialed() {
        let mut d = Destinations::new(8);
        let a = ip("10.96.0.20");
        let svc = naming(
            "demo-app.default.svc.cluster.local",
            NameSource::DnsAnswer,
            1.0,
        );
        assert_eq!(d.name(a, svc.clone()), (0, Learned::Named));
        let (_, first, known) = d.dialed(at(2.0), a, Path::ClusterIp);
        assert!(first);
        assert_eq!(known, Some(&svc));
        let (_, first, _) = d.dialed(at(3.0), a, Path::ClusterIp);
        assert!(!first);

        // Named after the call.
        let b = ip("10.244.0.5");
        let (_, first, known) = d.dialed(at(4.0), b, Path::PodIp);
        assert!(first && known.is_none());
        let ep = naming(
            "10-244-0-5.demo-app.default.svc.cluster.local",
            NameSource::Ptr,
            5.0,
        );
        assert_eq!(d.name(b, ep.clone()), (0, Learned::NamedLiteral));
        assert_eq!(d.name(b, ep), (0, Learned::Kept));
        assert_eq!(d.literal_named().len(), 2);
    }

    #[test]
    fn cluster_names_win_over_opaque_ones() {
        let mut d = Destinations::new(8);
        let a = ip("10.96.0.20");
        d.name(
            a,
            naming(
                "demo-app.default.svc.cluster.local",
                NameSource::DnsAnswer,
                1.0,
            ),
        );
        let (_, l) = d.name(a, naming("host.example.com", NameSource::AppPtr, 2.0));
        assert_eq!(l, Learned::Kept);
        assert_eq!(d.naming(a).unwrap().service(), Some("demo-app"));
        // A newer cluster name replaces an older one.
        let (_, l) = d.name(
            a,
            naming("web.shop.svc.cluster.local", NameSource::Ptr, 3.0),
        );
        assert_eq!(l, Learned::Named);
        assert_eq!(d.naming(a).unwrap().namespace(), Some("shop"));
        // An opaque name fills an empty slot and is replaced by a cluster one.
        let b = ip("192.0.2.1");
        d.name(b, naming("api.example.com", NameSource::DnsAnswer, 1.0));
        assert_eq!(d.naming(b).unwrap().service(), None);
        d.name(b, naming("cdn.example.net", NameSource::DnsAnswer, 2.0));
        assert_eq!(&*d.naming(b).unwrap().fqdn, "cdn.example.net");
    }

    #[test]
    fn the_table_is_bounded_and_counts_evictions() {
        let mut d = Destinations::new(32);
        for i in 0..1000u32 {
            let a = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            d.name(
                a,
                naming("x.example.com", NameSource::DnsAnswer, f64::from(i)),
            );
            assert!(d.len() <= 32);
        }
        assert_eq!(d.evicted(), 1000 - d.len() as u64);
        // The newest survive.
        assert!(d
            .naming(IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + 999)))
            .is_some());
        assert!(d
            .naming(IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000)))
            .is_none());
    }

    #[test]
    fn the_feed_is_bounded_and_counts_what_it_drops() {
        let mut inbox = FeedInbox::new();
        let feed = inbox.feed();
        let sender = std::thread::spawn(move || {
            (0..FEED_CAPACITY + 10)
                .filter(|i| {
                    feed.send(FedName {
                        addr: IpAddr::V4(std::net::Ipv4Addr::from(*i as u32)),
                        fqdn: "x.".into(),
                        source: NameSource::Ptr,
                    })
                })
                .count()
        });
        let accepted = sender.join().unwrap();
        assert_eq!(accepted, FEED_CAPACITY);
        let (names, dropped) = inbox.take();
        assert_eq!((names.len(), dropped), (FEED_CAPACITY, 10));
        assert_eq!(inbox.take(), (Vec::new(), 0));
    }
}
