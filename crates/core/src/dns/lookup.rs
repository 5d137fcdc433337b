//! Search-list collapse: the queries a stub resolver sends for one
//! `getaddrinfo()` become one logical lookup of the name the application wrote.
//!
//! glibc (`res_nsearch`), with search list `s0 s1 s2` and `ndots:N`, for a
//! name X:
//! - X ends with a dot: only X.
//! - X has ≥ N dots: X first, then X.s0, X.s1, X.s2.
//! - otherwise: X.s0, X.s1, X.s2, then X.
//!
//! It moves to the next candidate when the current one ends in NXDOMAIN,
//! NOERROR without data, or SERVFAIL, and stops at the first candidate with
//! an answer or any other error — except that a name not yet tried as
//! written is still tried (seen with getent: after the first suffix timed
//! out, glibc sent the bare name). A candidate's query is sent again with the
//! same id on a timeout or a REFUSED/SERVFAIL answer (next attempt or
//! server), and over TCP after a truncated one. A and AAAA for one candidate
//! are sent together (or AAAA right after the A's answer) and belong to the
//! same lookup; musl and Go's resolver walk the list the same way.
//!
//! The tracker does not predict when the resolver will stop: it observes.
//! A query continues an open lookup of the same client when its name is that
//! lookup's current candidate (another type, a retry after a timeout, the
//! TCP retry after a truncated answer) or, while no candidate has answered,
//! a later candidate. Any other query starts a lookup, read backwards:
//! - `<stem>.s_i` with `dots(stem) < N`: the application wrote `stem`; when
//!   `i > 0` the capture joined mid-expansion (`partial`).
//! - otherwise the name is taken as written; with fewer than N dots and a
//!   known search list it can only have been written with a trailing dot.
//!
//! A lookup completes once none of its queries is outstanding and no query
//! continued it for `linger` seconds; or, whatever is outstanding, after
//! `max_wait` seconds without activity. `wasted` counts the queries sent for
//! candidates other than the final one.
//!
//! Known limits: the wire cannot tell `demo-app` from
//! `demo-app.<ns>.svc.<domain>.` written with a trailing dot (both send the
//! same single query), and reports `demo-app`; two concurrent
//! `getaddrinfo()` calls for the same name by the same client merge into one
//! lookup; a capture that missed every search-suffixed query of a short name
//! sees it as written with a trailing dot; with CoreDNS `autopath` the server
//! answers the first suffix with a CNAME, and the lookup ends there.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::IpAddr;
use std::sync::Arc;

use super::intern::Interner;
use super::names::service_of;
use super::transaction::{Outcome, Transaction};
use super::wire::{QType, Rcode};
use crate::hash::HashMap;
use crate::Timestamp;

/// Addresses kept per lookup.
const MAX_ADDRESSES: usize = 32;
/// Query types tracked per candidate.
const MAX_QTYPES: usize = 8;
/// Queries one lookup takes; glibc's ordinary worst case (6 search domains
/// and the name as written, A+AAAA, up to 5 attempts: 70) stays below.
const MAX_QUERIES: u32 = 128;
/// Candidate names shared between lookups (`intern`).
const MAX_INTERNED: usize = 4096;
/// Emptied lists of each kind kept for reuse.
const SPARE: usize = 256;

/// The resolver configuration lookups are read against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Search {
    /// Search domains, lowercase, without dots at either end; may be empty (unknown).
    pub domains: Vec<Arc<str>>,
    pub ndots: u8,
    /// Cluster domain used to classify forms (e.g. `cluster.local`).
    pub cluster_domain: Arc<str>,
}

/// How the application wrote the name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Form {
    /// One label, e.g. `demo-app`.
    Short,
    /// `<svc>.<ns>` resolved through `svc.<domain>`.
    Namespaced,
    /// `<svc>.<ns>.svc.<domain>` written in full (with or without a trailing dot).
    ServiceFqdn,
    /// Any other name inside the cluster domain (pods, headless pod hostnames, `<svc>.<ns>.svc`).
    ClusterOther,
    /// A name outside the cluster domain, written without a trailing dot.
    External,
    /// A name outside the cluster domain, written with a trailing dot.
    ExternalAbsolute,
}

impl Form {
    pub fn as_str(self) -> &'static str {
        match self {
            Form::Short => "short",
            Form::Namespaced => "namespaced",
            Form::ServiceFqdn => "service_fqdn",
            Form::ClusterOther => "cluster_other",
            Form::External => "external",
            Form::ExternalAbsolute => "external_absolute",
        }
    }
}

/// One logical lookup.
#[derive(Clone, Debug, PartialEq)]
pub struct Lookup {
    pub client: IpAddr,
    /// As the application wrote it: search suffix and trailing dot removed.
    pub name: Arc<str>,
    pub form: Form,
    /// Combined outcome of the final candidate: NOERROR when any of its
    /// queries was answered, else NOERROR (no data), else NXDOMAIN, else the
    /// first other outcome; TIMEOUT when nothing completed.
    pub result: Outcome,
    /// Queries sent, retransmissions (same id) included: the lookup's share
    /// of `podpath_dns_queries_total`.
    pub queries: u32,
    /// Of `queries`, copies sent again with the same id (no answer came in time).
    pub retransmissions: u32,
    /// Queries for candidates other than the final one.
    pub wasted: u32,
    /// The final candidate, e.g. `demo-app.default.svc.cluster.local`.
    pub fqdn: Arc<str>,
    pub addresses: Vec<IpAddr>,
    /// The name was written with a trailing dot.
    pub absolute: bool,
    /// The capture joined mid-expansion: earlier candidates were not seen.
    pub partial: bool,
    pub started: Timestamp,
    /// First query → last completion.
    pub duration_secs: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum QState {
    Outstanding,
    /// `retry`: a new query of the same type continues the candidate
    /// (after a timeout, an unreachable, a truncated answer, SERVFAIL,
    /// REFUSED, …).
    Done {
        retry: bool,
    },
}

/// An open lookup's candidates and query types, kept for reuse.
type OpenLists = (Vec<Arc<str>>, Vec<(QType, QState)>);

#[derive(Debug)]
struct Open {
    client: IpAddr,
    name: Arc<str>,
    absolute: bool,
    partial: bool,
    candidates: Vec<Arc<str>>,
    cur: usize,
    qtypes: Vec<(QType, QState)>,
    result: Option<Outcome>,
    answered: bool,
    addresses: Vec<IpAddr>,
    queries: u32,
    retransmissions: u32,
    cur_queries: u32,
    started: Timestamp,
    last_activity: Timestamp,
    last_completion: Option<Timestamp>,
}

impl Open {
    fn current(&self) -> &str {
        self.candidates.get(self.cur).map_or("", |c| c)
    }

    fn outstanding(&self) -> bool {
        self.qtypes.iter().any(|(_, s)| *s == QState::Outstanding)
    }

    fn note_query(&mut self, ts: Timestamp, qtype: QType) {
        self.queries = self.queries.saturating_add(1);
        self.cur_queries = self.cur_queries.saturating_add(1);
        self.last_activity = ts;
        if let Some(entry) = self.qtypes.iter_mut().find(|(t, _)| *t == qtype) {
            entry.1 = QState::Outstanding;
        } else if self.qtypes.len() < MAX_QTYPES {
            self.qtypes.push((qtype, QState::Outstanding));
        }
    }

    /// Whether a query for `qname`/`qtype` continues this lookup; moves to a
    /// later candidate when it names one.
    fn continues(&mut self, qname: &str, qtype: QType) -> bool {
        // A client retrying without end is reported in pieces.
        if self.queries >= MAX_QUERIES {
            return false;
        }
        if self.current() == qname {
            return match self.qtypes.iter().find(|(t, _)| *t == qtype) {
                None | Some((_, QState::Outstanding)) => true,
                Some((_, QState::Done { retry })) => *retry,
            };
        }
        if self.answered {
            return false;
        }
        let later = self
            .candidates
            .iter()
            .enumerate()
            .skip(self.cur + 1)
            .find(|(_, c)| &***c == qname)
            .map(|(i, _)| i);
        match later {
            Some(i) => {
                self.cur = i;
                self.cur_queries = 0;
                self.qtypes.clear();
                self.result = None;
                self.addresses.clear();
                true
            }
            None => false,
        }
    }

    /// The report of this lookup; leaves its lists for reuse (`Lookups::retire`).
    fn finish(&mut self, search: &Search) -> Lookup {
        let fqdn = self
            .candidates
            .get(self.cur)
            .cloned()
            .unwrap_or_else(|| self.name.clone());
        let end = self.last_completion.unwrap_or(self.last_activity);
        Lookup {
            client: self.client,
            form: form(&self.name, &fqdn, self.absolute, &search.cluster_domain),
            result: self.result.unwrap_or(Outcome::Timeout),
            queries: self.queries,
            retransmissions: self.retransmissions,
            wasted: self.queries - self.cur_queries.min(self.queries),
            fqdn,
            addresses: std::mem::take(&mut self.addresses),
            absolute: self.absolute,
            partial: self.partial,
            started: self.started,
            duration_secs: end.secs_since(self.started),
            name: self.name.clone(),
        }
    }
}

/// Preference among a candidate's outcomes (higher wins; ties keep the first).
fn rank(o: Outcome) -> u8 {
    match o {
        Outcome::Rcode(Rcode::NOERROR) => 3,
        Outcome::Rcode(Rcode::NXDOMAIN) => 2,
        _ => 1,
    }
}

fn dots(name: &str) -> usize {
    name.bytes().filter(|&b| b == b'.').count()
}

/// `name` minus `.suffix`, when it ends with that whole-label suffix.
fn strip_domain<'a>(name: &'a str, suffix: &str) -> Option<&'a str> {
    name.strip_suffix(suffix)?
        .strip_suffix('.')
        .filter(|stem| !stem.is_empty())
}

fn in_domain(name: &str, domain: &str) -> bool {
    !domain.is_empty() && (name == domain || strip_domain(name, domain).is_some())
}

/// The candidates glibc tries for `name`, in order.
pub fn candidates(name: &str, absolute: bool, search: &Search) -> Vec<Arc<str>> {
    let as_written: Arc<str> = Arc::from(name);
    if absolute || search.domains.is_empty() {
        return vec![as_written];
    }
    let suffixed = search.domains.iter().map(|d| {
        let mut fqdn = String::with_capacity(name.len() + 1 + d.len());
        fqdn.push_str(name);
        fqdn.push('.');
        fqdn.push_str(d);
        Arc::from(fqdn)
    });
    if dots(name) >= search.ndots as usize {
        std::iter::once(as_written).chain(suffixed).collect()
    } else {
        suffixed.chain(std::iter::once(as_written)).collect()
    }
}

/// `candidates`, each name the shared copy from `interned`, built in `buf`.
fn interned_candidates(
    name: &str,
    absolute: bool,
    search: &Search,
    interned: &mut Interner,
    buf: &mut String,
    out: &mut Vec<Arc<str>>,
) {
    out.clear();
    let as_written = interned.get(name);
    if absolute || search.domains.is_empty() {
        out.push(as_written);
        return;
    }
    let first = dots(name) >= search.ndots as usize;
    if first {
        out.push(as_written.clone());
    }
    for d in &search.domains {
        buf.clear();
        buf.push_str(name);
        buf.push('.');
        buf.push_str(d);
        out.push(interned.get(buf));
    }
    if !first {
        out.push(as_written);
    }
}

/// How the application most likely wrote the name behind a first query for
/// `qname`: (name, absolute, index of `qname` among its candidates).
pub fn interpret<'a>(qname: &'a str, search: &Search) -> (&'a str, bool, usize) {
    for (i, domain) in search.domains.iter().enumerate() {
        if let Some(stem) = strip_domain(qname, domain) {
            if dots(stem) < search.ndots as usize {
                return (stem, false, i);
            }
        }
    }
    let absolute = !search.domains.is_empty() && dots(qname) < search.ndots as usize;
    (qname, absolute, 0)
}

fn form(name: &str, fqdn: &str, absolute: bool, domain: &str) -> Form {
    if service_of(fqdn, domain).is_some() {
        return match dots(name) {
            0 => Form::Short,
            1 => Form::Namespaced,
            _ if name == fqdn => Form::ServiceFqdn,
            _ => Form::ClusterOther,
        };
    }
    if dots(name) == 0 {
        Form::Short
    } else if in_domain(fqdn, domain) {
        Form::ClusterOther
    } else if absolute {
        Form::ExternalAbsolute
    } else {
        Form::External
    }
}

/// Open lookups, indexed by every candidate name they may still see (the
/// current one and later), with
/// a deadline heap so that neither a query nor `expire` scans them all.
#[derive(Debug)]
pub struct Lookups {
    slots: HashMap<u64, Open>,
    /// Candidate name → ids of open lookups with that candidate, oldest first.
    by_name: HashMap<Arc<str>, Vec<u64>>,
    /// (due, id): the lookup may be complete at `due`. Entries are not
    /// removed when a lookup's due time moves; a popped entry is checked
    /// against the lookup's current due time.
    due: BinaryHeap<Reverse<(Timestamp, u64)>>,
    next_id: u64,
    max_open: usize,
    linger_secs: f64,
    max_wait_secs: f64,
    evicted: u64,
    /// Shared copies of the names lookups hold, and a buffer to build them in.
    interned: Interner,
    buf: String,
    /// Emptied lists kept for reuse, so that a steady stream of lookups
    /// allocates none: an open lookup's candidates and query types, and the
    /// id lists of `by_name`; and the ids a query reports early.
    spare_open: Vec<OpenLists>,
    /// Lookups `expire` completed, sorted before they are handed out.
    done: Vec<(Timestamp, u64, Lookup)>,
    spare_ids: Vec<Vec<u64>>,
    quiet: Vec<u64>,
}

impl Lookups {
    pub fn new(max_open: usize, linger_secs: f64, max_wait_secs: f64) -> Self {
        let sane = |v: f64, d: f64| if v.is_finite() && v >= 0.0 { v } else { d };
        Lookups {
            slots: HashMap::default(),
            by_name: HashMap::default(),
            due: BinaryHeap::new(),
            next_id: 0,
            max_open: max_open.max(1),
            linger_secs: sane(linger_secs, 1.0),
            max_wait_secs: sane(max_wait_secs, 30.0),
            evicted: 0,
            interned: Interner::new(MAX_INTERNED),
            buf: String::new(),
            spare_open: Vec::new(),
            done: Vec::new(),
            spare_ids: Vec::new(),
            quiet: Vec::new(),
        }
    }

    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    pub fn open(&self) -> usize {
        self.slots.len()
    }

    fn due_of(&self, o: &Open) -> Timestamp {
        let wait = if o.outstanding() {
            self.max_wait_secs
        } else {
            self.linger_secs
        };
        o.last_activity.add_secs(wait)
    }

    fn schedule(&mut self, id: u64) {
        if let Some(o) = self.slots.get(&id) {
            let at = self.due_of(o);
            self.due.push(Reverse((at, id)));
        }
        // Stale entries pile up while lookups stay busy; rebuild now and then.
        // In place: the heap keeps its buffer.
        if self.due.len() > 8 * self.max_open + 1024 {
            let mut fresh = std::mem::take(&mut self.due).into_vec();
            fresh.clear();
            fresh.extend(
                self.slots
                    .iter()
                    .map(|(id, o)| Reverse((self.due_of(o), *id))),
            );
            self.due = fresh.into();
        }
    }

    /// Reports a lookup taken out of the table, keeping its lists (bounded).
    fn retire(&mut self, mut o: Open, search: &Search) -> Lookup {
        let done = o.finish(search);
        if self.spare_open.len() < SPARE {
            let (mut candidates, mut qtypes) = (o.candidates, o.qtypes);
            candidates.clear();
            qtypes.clear();
            self.spare_open.push((candidates, qtypes));
        }
        done
    }

    fn remove(&mut self, id: u64) -> Option<Open> {
        let open = self.slots.remove(&id)?;
        for name in open.candidates.get(open.cur..).unwrap_or_default() {
            self.unindex(name, id);
        }
        Some(open)
    }

    /// The open lookup of `client` that a query for `qname`/`qtype`
    /// continues (moved to that candidate), if any.
    fn continued_by(&mut self, client: IpAddr, qname: &str, qtype: QType) -> Option<u64> {
        let ids = self.by_name.get(qname)?;
        let mut hit = None;
        for id in ids {
            if let Some(o) = self.slots.get_mut(id) {
                let before = o.cur;
                if o.client == client && o.continues(qname, qtype) {
                    hit = Some((*id, before, o.cur));
                    break;
                }
            }
        }
        let (id, before, after) = hit?;
        // A lookup never goes back to a candidate it moved past: drop it
        // from those names' lists, which keeps them short.
        if after > before {
            for i in before..after {
                let name = self
                    .slots
                    .get(&id)
                    .and_then(|o| o.candidates.get(i).cloned());
                if let Some(name) = name {
                    self.unindex(&name, id);
                }
            }
        }
        Some(id)
    }

    fn unindex(&mut self, name: &Arc<str>, id: u64) {
        if let Some(ids) = self.by_name.get_mut(name) {
            ids.retain(|i| *i != id);
            if ids.is_empty() {
                if let Some(ids) = self.by_name.remove(name) {
                    if self.spare_ids.len() < SPARE {
                        self.spare_ids.push(ids);
                    }
                }
            }
        }
    }

    /// A new query on the wire. Returns true when an open lookup had to be
    /// completed early to make room (it is pushed to `out`).
    pub fn on_query(
        &mut self,
        ts: Timestamp,
        client: IpAddr,
        qname: &str,
        qtype: QType,
        search: &Search,
        out: &mut Vec<Lookup>,
    ) -> bool {
        if let Some(id) = self.continued_by(client, qname, qtype) {
            if let Some(o) = self.slots.get_mut(&id) {
                o.note_query(ts, qtype);
            }
            self.schedule(id);
            return false;
        }
        let (name, absolute, cur) = interpret(qname, search);
        let (mut candidates, qtypes) = self.spare_open.pop().unwrap_or_default();
        interned_candidates(
            name,
            absolute,
            search,
            &mut self.interned,
            &mut self.buf,
            &mut candidates,
        );
        // The same client starting the same name again means an earlier
        // lookup of it that is only lingering is over: report it now rather
        // than keep one lingering lookup per repetition. That is a lookup
        // resting at this query's name, or one of the same written name
        // resting at any candidate (all of them are listed under the last
        // candidate, which no lookup moves past).
        if let Some(first) = candidates.get(cur) {
            let last = candidates.last().unwrap_or(first);
            let mut quiet = std::mem::take(&mut self.quiet);
            quiet.clear();
            quiet.extend(
                self.by_name
                    .get(first)
                    .into_iter()
                    .flatten()
                    .copied()
                    .filter(|id| {
                        self.slots.get(id).is_some_and(|o| {
                            o.client == client && !o.outstanding() && o.current() == &**first
                        })
                    }),
            );
            quiet.extend(
                self.by_name
                    .get(last)
                    .into_iter()
                    .flatten()
                    .copied()
                    .filter(|id| {
                        self.slots.get(id).is_some_and(|o| {
                            o.client == client
                                && !o.outstanding()
                                && o.absolute == absolute
                                && &*o.name == name
                        })
                    }),
            );
            quiet.sort_unstable();
            quiet.dedup();
            for &id in &quiet {
                if let Some(o) = self.remove(id) {
                    out.push(self.retire(o, search));
                }
            }
            self.quiet = quiet;
        }
        let mut evicted = false;
        if self.slots.len() >= self.max_open {
            while let Some(Reverse((_, id))) = self.due.pop() {
                if let Some(o) = self.remove(id) {
                    out.push(self.retire(o, search));
                    self.evicted += 1;
                    evicted = true;
                    break;
                }
            }
        }
        let mut open = Open {
            client,
            name: self.interned.get(name),
            absolute,
            partial: cur > 0,
            candidates,
            cur,
            qtypes,
            result: None,
            answered: false,
            addresses: Vec::new(),
            queries: 0,
            retransmissions: 0,
            cur_queries: 0,
            started: ts,
            last_activity: ts,
            last_completion: None,
        };
        open.note_query(ts, qtype);
        self.next_id += 1;
        let id = self.next_id;
        // Indexed under the candidates it may still see: this one and later.
        for name in open.candidates.get(open.cur..).unwrap_or_default() {
            self.by_name
                .entry(name.clone())
                .or_insert_with(|| self.spare_ids.pop().unwrap_or_default())
                .push(id);
        }
        self.slots.insert(id, open);
        self.schedule(id);
        evicted
    }

    /// The open lookup of `client` whose current candidate is `qname` and
    /// that asked `qtype` (outstanding ones first).
    fn asking(&self, client: IpAddr, qname: &str, qtype: QType) -> Option<(u64, bool)> {
        let ids = self.by_name.get(qname)?;
        let mut settled = None;
        for &id in ids {
            let Some(o) = self.slots.get(&id) else {
                continue;
            };
            if o.client != client || o.current() != qname {
                continue;
            }
            match o.qtypes.iter().find(|(t, _)| *t == qtype) {
                Some((_, QState::Outstanding)) => return Some((id, true)),
                Some(_) if settled.is_none() => settled = Some((id, false)),
                _ => {}
            }
        }
        settled
    }

    /// A query sent again with the same id: it costs a query and keeps the
    /// question open (also after a timeout: it was the resolver's retry).
    pub fn on_retransmission(&mut self, ts: Timestamp, client: IpAddr, qname: &str, qtype: QType) {
        let Some((id, _)) = self.asking(client, qname, qtype) else {
            return;
        };
        if let Some(o) = self.slots.get_mut(&id) {
            o.note_query(ts, qtype);
            o.retransmissions = o.retransmissions.saturating_add(1);
        }
        self.schedule(id);
    }

    /// A transmission completed; returns the name the application wrote when
    /// it belongs to an open lookup. An answer to another copy of a question
    /// already settled still counts (its rank and addresses), without
    /// reopening it.
    pub fn on_completed(
        &mut self,
        ts: Timestamp,
        tx: &Transaction,
        addresses: &[IpAddr],
    ) -> Option<Arc<str>> {
        let (id, outstanding) = self.asking(tx.client.ip(), &tx.qname, tx.qtype)?;
        let open = self.slots.get_mut(&id)?;
        // Another copy of a settled question that got no answer of its own
        // tells nothing new.
        if !outstanding && !matches!(tx.outcome, Outcome::Rcode(_)) {
            return Some(open.name.clone());
        }
        // glibc sends a candidate's query again (next server or attempt)
        // after anything but a NOERROR or NXDOMAIN answer, and over TCP after
        // a truncated one.
        let retry = tx.truncated
            || !matches!(
                tx.outcome,
                Outcome::Rcode(Rcode::NOERROR) | Outcome::Rcode(Rcode::NXDOMAIN)
            );
        if outstanding {
            if let Some(entry) = open.qtypes.iter_mut().find(|(t, _)| *t == tx.qtype) {
                entry.1 = QState::Done { retry };
            }
        }
        // A truncated answer is replaced by the TCP retry's.
        if !tx.truncated || open.result.is_none() {
            let better = open.result.is_none_or(|r| rank(tx.outcome) > rank(r));
            if better {
                open.result = Some(tx.outcome);
            }
        }
        if tx.answered {
            open.answered = true;
            open.result = Some(Outcome::Rcode(Rcode::NOERROR));
            for a in addresses {
                if open.addresses.len() < MAX_ADDRESSES && !open.addresses.contains(a) {
                    open.addresses.push(*a);
                }
            }
        }
        open.last_activity = open.last_activity.max(ts);
        open.last_completion = Some(ts);
        let name = open.name.clone();
        self.schedule(id);
        Some(name)
    }

    /// Completes lookups that are done at `now`, in the order they started.
    pub fn expire(&mut self, now: Timestamp, search: &Search, out: &mut Vec<Lookup>) {
        while let Some(Reverse((at, id))) = self.due.peek().copied() {
            if at > now {
                break;
            }
            self.due.pop();
            let current = self.slots.get(&id).map(|o| self.due_of(o));
            if current.is_some_and(|c| c <= now) {
                if let Some(o) = self.remove(id) {
                    let started = o.started;
                    let done = self.retire(o, search);
                    self.done.push((started, id, done));
                }
            }
        }
        // Ties on the start time (frames out of order are clamped to one
        // instant) are broken by the lookup's id, its arrival order, so the
        // output does not depend on the order of the due heap. `done` is
        // kept between calls: no allocation once it has grown.
        self.done.sort_by_key(|(started, id, _)| (*started, *id));
        out.extend(self.done.drain(..).map(|(_, _, l)| l));
    }

    /// End of input: completes every open lookup, in the order they started
    /// (ties in arrival order: the table's own order is random per process).
    pub fn flush(&mut self, search: &Search, out: &mut Vec<Lookup>) {
        let mut open: Vec<(u64, Open)> = self.slots.drain().collect();
        self.by_name.clear();
        self.due.clear();
        open.sort_by_key(|(id, o)| (o.started, *id));
        out.extend(open.into_iter().map(|(_, mut o)| o.finish(search)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k8s() -> Search {
        Search {
            domains: [
                "default.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local",
            ]
            .into_iter()
            .map(Arc::from)
            .collect(),
            ndots: 5,
            cluster_domain: Arc::from("cluster.local"),
        }
    }

    /// Lookups that start at one instant (frames out of order are clamped
    /// to it) come out in arrival order, whatever the order of the hash table
    /// (seeded at random per table): `analyze` prints the same report twice.
    #[test]
    fn lookups_started_together_end_in_arrival_order() {
        let search = k8s();
        let t = Timestamp::from_secs_f64(100.0);
        let names: Vec<String> = (0..40).map(|i| format!("svc{i}.example.com.")).collect();
        for _ in 0..8 {
            let mut lookups = Lookups::new(100, 1.0, 5.0);
            let mut out = Vec::new();
            for n in &names {
                let client = IpAddr::from([10, 0, 0, 1]);
                lookups.on_query(t, client, n, QType(1), &search, &mut out);
            }
            lookups.flush(&search, &mut out);
            let got: Vec<&str> = out.iter().map(|l| &*l.name).collect();
            let want: Vec<&str> = names.iter().map(String::as_str).collect();
            assert_eq!(got, want);

            let mut lookups = Lookups::new(100, 1.0, 5.0);
            let mut out = Vec::new();
            for n in &names {
                let client = IpAddr::from([10, 0, 0, 1]);
                lookups.on_query(t, client, n, QType(1), &search, &mut out);
            }
            lookups.expire(t.add_secs(60.0), &search, &mut out);
            let got: Vec<&str> = out.iter().map(|l| &*l.name).collect();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn interned_candidates_equal_candidates() {
        let mut none = k8s();
        none.domains.clear();
        let mut interned = Interner::new(4);
        let mut buf = String::from("left over");
        let mut out = vec![Arc::from("left over")];
        for s in [k8s(), none] {
            for name in ["demo-app", "api.example.com", "a.b.c.d.e.f", "x.y.z.w.v"] {
                for abs in [false, true] {
                    interned_candidates(name, abs, &s, &mut interned, &mut buf, &mut out);
                    assert_eq!(out, candidates(name, abs, &s), "{name} {abs}");
                }
            }
        }
    }

    #[test]
    fn candidate_order_follows_glibc() {
        let s = k8s();
        let c = |n: &str, abs: bool| -> Vec<String> {
            candidates(n, abs, &s)
                .iter()
                .map(|c| c.to_string())
                .collect()
        };
        assert_eq!(
            c("api.example.com", false),
            [
                "api.example.com.default.svc.cluster.local",
                "api.example.com.svc.cluster.local",
                "api.example.com.cluster.local",
                "api.example.com"
            ]
        );
        assert_eq!(c("api.example.com", true), ["api.example.com"]);
        assert_eq!(c("a.b.c.d.e.f", false)[0], "a.b.c.d.e.f");
        assert_eq!(
            c("a.b.c.d.e.f", false)[1],
            "a.b.c.d.e.f.default.svc.cluster.local"
        );
    }

    #[test]
    fn interpretation_of_a_first_query() {
        let s = k8s();
        assert_eq!(
            interpret("demo-app.default.svc.cluster.local", &s),
            ("demo-app", false, 0)
        );
        assert_eq!(
            interpret("demo-app.default.default.svc.cluster.local", &s),
            ("demo-app.default", false, 0)
        );
        assert_eq!(
            interpret("api.example.com.cluster.local", &s),
            ("api.example.com", false, 2)
        );
        assert_eq!(
            interpret("api.example.com", &s),
            ("api.example.com", true, 0)
        );
        assert_eq!(interpret("a.b.c.d.e.f", &s), ("a.b.c.d.e.f", false, 0));
    }

    #[test]
    fn forms() {
        let d = "cluster.local";
        assert_eq!(
            form("demo-app", "demo-app.default.svc.cluster.local", false, d),
            Form::Short
        );
        assert_eq!(
            form(
                "demo-app.default",
                "demo-app.default.svc.cluster.local",
                false,
                d
            ),
            Form::Namespaced
        );
        assert_eq!(
            form(
                "demo-app.default.svc.cluster.local",
                "demo-app.default.svc.cluster.local",
                true,
                d
            ),
            Form::ServiceFqdn
        );
        assert_eq!(
            form(
                "demo-app.default.svc",
                "demo-app.default.svc.cluster.local",
                false,
                d
            ),
            Form::ClusterOther
        );
        assert_eq!(
            form(
                "10-0-0-5.default.pod",
                "10-0-0-5.default.pod.cluster.local",
                false,
                d
            ),
            Form::ClusterOther
        );
        assert_eq!(
            form("api.example.com", "api.example.com", false, d),
            Form::External
        );
        assert_eq!(
            form("api.example.com", "api.example.com", true, d),
            Form::ExternalAbsolute
        );
    }
}
