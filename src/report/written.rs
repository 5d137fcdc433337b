//! The name as the app wrote it, where the DNS wire is ambiguous.
//!
//! With ndots:5, `demo-app` answered at the first search suffix puts the
//! same queries on the wire (`demo-app.default.svc.cluster.local`, A and
//! AAAA) as an app that wrote `demo-app.default.svc.cluster.local.`. The
//! lookup reads it as the short name, the likelier reading. The connection
//! that follows often says what the app wrote: the HTTP/1 `Host` header or
//! the HTTP/2 `:authority` or the TLS SNI. Each connection attributed to a name, and each lookup,
//! gets a `name_form_evidence`:
//!
//! - `host_header` / `authority` / `sni`: the connection names the host; when it names
//!   the answered FQDN instead of the short reading, the records say so
//!   (`dns_name` = the FQDN, `written` = it with its trailing dot, form
//!   `service_fqdn`);
//! - `wire`: the queries alone settle it (the resolver walked the search
//!   list, so the name was not written fully qualified);
//! - `guess`: ambiguous, and the connection carried no name (or the lookup
//!   was not kept); the reading is the likelier one.
//!
//! An HTTP/2 `:authority` may carry a trailing dot as a Host header does.

use serde::Serialize;

use super::{ConnectionRecord, LookupRecord, Report};
use crate::hash::HashMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NameEvidence {
    HostHeader,
    /// An HTTP/2 request's `:authority`.
    Authority,
    Sni,
    Wire,
    Guess,
}

/// The host a connection named, as the evidence for its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostSeen {
    pub host: String,
    pub from: NameEvidence,
}

/// The wire is ambiguous when no query was wasted and a search suffix was
/// appended: the answered name, written with a trailing dot, sends the
/// very same queries.
fn ambiguous(l: &LookupRecord) -> bool {
    l.wasted == 0
        && l.answered_name
            .as_deref()
            .is_some_and(|f| !f.trim_end_matches('.').eq_ignore_ascii_case(&l.name))
}

/// What the evidence says the app wrote, given the wire reading `name` and
/// the answered `fqdn`: `Some(written)` when it names the FQDN.
fn fqdn_written(seen: &HostSeen, name: &str, fqdn: &str) -> Option<String> {
    let host = seen.host.trim_end_matches('.');
    if host.eq_ignore_ascii_case(name) || !host.eq_ignore_ascii_case(fqdn.trim_end_matches('.')) {
        return None;
    }
    // A Host header keeps the trailing dot the app wrote. SNI never carries
    // one (RFC 6066), but without it the resolver would have walked the
    // search list first (the FQDN has fewer dots than ndots): it was there.
    Some(format!("{host}."))
}

impl Report {
    /// Keeps the first host a connection named (Host header or SNI).
    pub(super) fn host_seen(&mut self, id: u64, host: &str, from: NameEvidence) {
        if let Some(c) = self.record_mut(id) {
            if c.dns_name.is_some() && c.host_seen.is_none() {
                c.host_seen = Some(HostSeen {
                    host: host.to_string(),
                    from,
                });
            }
        }
    }

    /// Settles the name as written for every connection and lookup (call
    /// once, after the last event).
    pub fn settle_names(&mut self) {
        // Lookups by (client, name), in capture order.
        let mut by_name: HashMap<(std::net::IpAddr, &str), Vec<usize>> = HashMap::default();
        for (i, l) in self.lookups.iter().enumerate() {
            by_name.entry((l.client, &l.name)).or_default().push(i);
        }
        // lookup index → (evidence, written FQDN)
        let mut lookup_ev: HashMap<usize, (NameEvidence, Option<String>)> = HashMap::default();
        let mut decisions: Vec<(usize, NameEvidence, Option<String>)> = Vec::new();
        for (ci, c) in self.connections.iter().enumerate() {
            let Some(name) = c.dns_name.as_deref() else {
                continue;
            };
            let lookup = by_name.get(&(c.src.ip(), name)).and_then(|ls| {
                let before = ls.partition_point(|&i| self.lookups[i].ts <= c.ts);
                before.checked_sub(1).map(|k| ls[k])
            });
            let (ev, written) = decide(c, lookup.map(|i| &self.lookups[i]));
            if let Some(i) = lookup {
                let e = lookup_ev.entry(i).or_insert((ev, written.clone()));
                // Evidence from a connection beats a guess from the wire.
                if e.0 == NameEvidence::Guess && ev != NameEvidence::Guess {
                    *e = (ev, written.clone());
                }
            }
            decisions.push((ci, ev, written));
        }
        for (ci, ev, written) in decisions {
            let c = &mut self.connections[ci];
            c.name_form_evidence = Some(ev);
            if let Some(w) = written {
                c.dns_name = Some(w.trim_end_matches('.').into());
                c.written = Some(w);
            }
        }
        for (i, l) in self.lookups.iter_mut().enumerate() {
            let (ev, written) = match lookup_ev.remove(&i) {
                Some(x) => x,
                None if ambiguous(l) => (NameEvidence::Guess, None),
                None => (NameEvidence::Wire, None),
            };
            l.name_form_evidence = Some(ev);
            if let Some(w) = written {
                l.name = w.trim_end_matches('.').into();
                l.form = if w.contains(".svc.") {
                    "service_fqdn"
                } else {
                    "external_absolute"
                };
                l.written = Some(w);
            }
        }
    }
}

fn decide(c: &ConnectionRecord, lookup: Option<&LookupRecord>) -> (NameEvidence, Option<String>) {
    let name = c.dns_name.as_deref().unwrap_or("");
    let Some(l) = lookup else {
        return match &c.host_seen {
            Some(h) if h.host.trim_end_matches('.').eq_ignore_ascii_case(name) => (h.from, None),
            _ => (NameEvidence::Guess, None),
        };
    };
    let fqdn = l.answered_name.as_deref().unwrap_or(name);
    match &c.host_seen {
        Some(h) if h.host.trim_end_matches('.').eq_ignore_ascii_case(name) => (h.from, None),
        Some(h) if ambiguous(l) => match fqdn_written(h, name, fqdn) {
            Some(w) => (h.from, Some(w)),
            None => (NameEvidence::Guess, None),
        },
        _ if ambiguous(l) => (NameEvidence::Guess, None),
        _ => (NameEvidence::Wire, None),
    }
}
