//! The engine: decoded packets in, events out, driven by packet time.
//!
//! Port-53 traffic goes to the DNS tracker; other TCP/UDP to the flow table
//! and, for TCP payload, the HTTP/1 tracker. Outbound connections are
//! attributed at their first SYN (or first datagram), with the DNS knowledge
//! of that moment.

pub mod destinations;
pub mod event;
mod proto;
pub mod rewrite;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use serde::Serialize;

use crate::attribution::{AddrClass, Attribution, Attributor, Inference, Path, Resolved};
use crate::config::PodConfig;
use crate::decode::{self, PacketType, TcpSegment, Transport, UdpDatagram};
use crate::defrag::{self, Decoded, Defrag};
use crate::dns::k8s::{DestinationName, NameSource};
use crate::dns::{DnsConfig, DnsEvent, DnsTracker};
use crate::flow::{
    Direction, FlowKey, FlowState, FlowTable, NewFlow, Protocol, Tcp, TcpState, UdpState,
};
use crate::http;
use crate::packet::RawPacket;
use crate::Timestamp;

use destinations::{Destinations, FeedInbox, Learned, NameFeed, Naming};
pub use event::{
    AppProtocol, ConnectionView, Event, FailReason, H2Unread, HttpView, NullSink, Sink, SkipReason,
    SniCheck, Table, Tee, TlsView,
};
pub use proto::AppState;
use rewrite::{Decision, Held, HeldEvent, Keep, RewriteDetector};

/// A flow of the engine's table: its TCP connections carry an [`AppState`].
pub type Flow = crate::flow::Flow<AppState>;

/// How often (packet time) timeouts are checked and byte counts exported.
const SWEEP_INTERVAL_SECS: f64 = 1.0;
/// A closed or failed flow lingers this long to absorb its last segments.
const CLOSED_LINGER_SECS: f64 = 2.0;
/// Local addresses remembered (configured + learned).
const MAX_LOCAL_ADDRS: usize = 32;

/// Counters the engine keeps about itself.
#[derive(Clone, Debug, Default, Serialize)]
pub struct EngineStats {
    pub packets: u64,
    pub skipped: u64,
    /// Packets whose timestamp was earlier than one already seen.
    pub time_went_backwards: u64,
    /// Outbound attempts still waiting for a SYN-ACK when the input ended
    /// (neither connected nor timed out).
    pub pending_at_end: u64,
    pub flow_evictions: u64,
    /// Datagrams and ICMP errors of podpath's own DNS client (not counted
    /// anywhere else).
    pub own_dns_packets: u64,
}

/// An address podpath takes for the pod's own, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LocalAddress {
    pub addr: IpAddr,
    pub from: AddressOrigin,
}

/// How podpath decided an address is the pod's own. `as_str` is what the
/// report and the log say (serialized as that text).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AddressOrigin {
    /// `--pod-ip` or the downward API.
    Configured,
    /// The kernel marked a packet from it as outgoing.
    SentByHost,
    /// The kernel marked a packet to it as addressed to this host.
    AddressedToHost,
    /// It sends DNS queries.
    SendsDns,
    /// It opened the first connection seen (a guess).
    FirstInitiator,
}

impl AddressOrigin {
    pub fn as_str(self) -> &'static str {
        match self {
            AddressOrigin::Configured => "configured",
            AddressOrigin::SentByHost => "sent by this host (kernel packet type)",
            AddressOrigin::AddressedToHost => "addressed to this host (kernel packet type)",
            AddressOrigin::SendsDns => "sends DNS queries",
            AddressOrigin::FirstInitiator => "first connection initiator (guess: pass --pod-ip)",
        }
    }
}

impl Serialize for AddressOrigin {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

pub struct Engine {
    cfg: PodConfig,
    attributor: Attributor,
    dns: DnsTracker,
    flows: FlowTable<AppState>,
    defrag: Defrag,
    local: Vec<LocalAddress>,
    now: Timestamp,
    started: bool,
    next_sweep: Timestamp,
    dns_events: Vec<DnsEvent>,
    stats: EngineStats,
    rewrite: RewriteDetector,
    destinations: Destinations,
    inbox: FeedInbox,
    /// Shared bound on the TLS first-flight buffers of all flows.
    flights: crate::tls::FlightPool,
}

impl Engine {
    pub fn new(cfg: PodConfig) -> Engine {
        let limits = &cfg.limits;
        let dns = DnsTracker::new(DnsConfig::for_pod(&cfg));
        let mut attributor = Attributor::new(
            cfg.service_cidrs.clone(),
            cfg.pod_cidrs.clone(),
            limits.max_dns_names,
        );
        // What is known before the first packet: the pod's own addresses
        // (the pod range is guessed around them), then its DNS server (a
        // ClusterIP; the service range is guessed around it).
        for &addr in &cfg.pod_ips {
            attributor.learn_local(addr);
        }
        for &addr in cfg.dns_servers.iter().filter(|a| !a.is_loopback()) {
            attributor.learn_dns_server(addr);
        }
        let max_destinations = limits.max_dns_names;
        let flights = crate::tls::FlightPool::new(
            limits
                .max_flows
                .saturating_mul(crate::tls::FLIGHT_BYTES_PER_FLOW),
        );
        let local = cfg
            .pod_ips
            .iter()
            .map(|&addr| LocalAddress {
                addr,
                from: AddressOrigin::Configured,
            })
            .collect();
        Engine {
            flows: FlowTable::new(limits.max_flows),
            defrag: Defrag::new(limits.max_fragment_datagrams, cfg.timeouts.ip_fragments),
            cfg,
            attributor,
            dns,
            local,
            now: Timestamp::ZERO,
            started: false,
            next_sweep: Timestamp::ZERO,
            dns_events: Vec::new(),
            stats: EngineStats::default(),
            rewrite: RewriteDetector::default(),
            destinations: Destinations::new(max_destinations),
            inbox: FeedInbox::new(),
            flights,
        }
    }

    /// ClientHello flights being reassembled now (bounded by the flight pool).
    pub fn held_flights(&self) -> usize {
        self.flights.held()
    }

    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    pub fn config(&self) -> &PodConfig {
        &self.cfg
    }

    pub fn now(&self) -> Timestamp {
        self.now
    }

    pub fn local_addresses(&self) -> &[LocalAddress] {
        &self.local
    }

    pub fn attributor(&self) -> &Attributor {
        &self.attributor
    }

    pub fn dns(&self) -> &DnsTracker {
        &self.dns
    }

    /// Whether destination rewriting (socket LB, mesh sidecar) was detected.
    pub fn rewrite_detected(&self) -> bool {
        self.rewrite.any_detected()
    }

    pub fn flow_count(&self) -> usize {
        self.flows.len()
    }

    /// The TCP connection between `a` and `b` (either way round) as the
    /// engine holds it: its handshake state and what it speaks.
    pub fn tcp_connection(&self, a: SocketAddr, b: SocketAddr) -> Option<&Tcp<AppState>> {
        self.flows.get(&FlowKey::new(Protocol::Tcp, a, b))?.tcp()
    }

    /// The IP reassembly table (datagrams in flight, counters).
    pub fn defrag(&self) -> &Defrag {
        &self.defrag
    }

    /// Everything learned rather than configured, for the report and the log.
    pub fn inferences(&self) -> Vec<Inference> {
        let mut out: Vec<Inference> = self
            .local
            .iter()
            .filter(|l| l.from != AddressOrigin::Configured)
            .map(|l| Inference {
                what: "pod_ip".into(),
                value: l.addr.to_string(),
                from: l.from.as_str().into(),
            })
            .collect();
        out.extend(self.attributor.inferences().iter().cloned());
        let dns = self.dns.inferred();
        if dns.search_inferred {
            out.push(Inference {
                what: "search".into(),
                value: dns.search.join(" "),
                from: "the suffixes the resolver appended to the first cluster query".into(),
            });
        }
        if dns.namespace_inferred {
            if let Some(ns) = &dns.namespace {
                out.push(Inference {
                    what: "namespace".into(),
                    value: ns.clone(),
                    from: "the search suffix <ns>.svc.<domain> in DNS queries".into(),
                });
            }
        }
        if dns.cluster_domain_inferred {
            if let Some(d) = &dns.cluster_domain {
                out.push(Inference {
                    what: "cluster_domain".into(),
                    value: d.clone(),
                    from: "the search suffix svc.<domain> in DNS queries".into(),
                });
            }
        }
        out
    }

    /// Tells the engine that `addr` is a Service's ClusterIP (e.g. the API
    /// server's, from `KUBERNETES_SERVICE_HOST`).
    pub fn learn_service_address(
        &mut self,
        addr: IpAddr,
        service: Option<&str>,
        namespace: Option<&str>,
    ) {
        self.attributor.learn_service_address(
            addr,
            service.map(Into::into),
            namespace.map(Into::into),
        );
    }

    /// What every destination address is named, and which the app dialed
    /// literally.
    pub fn destinations(&self) -> &Destinations {
        &self.destinations
    }

    /// A handle for another thread (podpath's own PTR lookups) to hand the
    /// engine names for addresses; the engine takes them once per second of
    /// packet time, as if [`Engine::learn_name`] had been called then.
    pub fn name_feed(&self) -> NameFeed {
        self.inbox.feed()
    }

    /// `addr` is named `fqdn` (a PTR target or an A/AAAA question), learned
    /// from `source`. Names under the cluster domain are read as CoreDNS
    /// forms them (`dns::k8s`) and teach the attributor what the address is
    /// (a Service's ClusterIP, a pod); the name is exported for literal
    /// destinations (`Event::DestinationNamed`), now or at their first use.
    pub fn learn_name(
        &mut self,
        addr: IpAddr,
        fqdn: &str,
        source: NameSource,
        sink: &mut dyn Sink,
    ) {
        if fqdn.trim_end_matches('.').is_empty() {
            return;
        }
        let domain = self.dns.search().cluster_domain.clone();
        let what = DestinationName::parse(fqdn, &domain);
        let fqdn: Arc<str> = match &what {
            DestinationName::Other(n) => n.clone(),
            _ => Arc::from(fqdn.trim_end_matches('.').to_ascii_lowercase()),
        };
        let cluster_address = what.is_cluster() || in_domain(&fqdn, &domain);
        self.learn_naming(addr, fqdn, what, source, false, cluster_address, sink);
    }

    /// `headless`: one answer held several addresses of a family for a
    /// Service name, so they are its endpoints (pods), not a ClusterIP.
    /// `cluster_address`: the address is the cluster's (not an external
    /// address an ExternalName Service aliases), so the name says its class.
    #[allow(clippy::too_many_arguments)]
    fn learn_naming(
        &mut self,
        addr: IpAddr,
        fqdn: Arc<str>,
        what: DestinationName,
        source: NameSource,
        headless: bool,
        cluster_address: bool,
        sink: &mut dyn Sink,
    ) {
        match &what {
            _ if !cluster_address => {}
            // podpath's own PTR answers name the address in
            // `podpath_destination_info` only: were they to teach the
            // attributor, a live pod's later connections would carry a
            // Service a capture of the same traffic cannot show, and one
            // destination's series would split when the answer arrives.
            _ if source == NameSource::Ptr => {}
            DestinationName::Service { service, namespace } => {
                self.attributor.learn_named_address(
                    addr,
                    !headless,
                    Some(service.clone()),
                    Some(namespace.clone()),
                );
            }
            DestinationName::Endpoint {
                service, namespace, ..
            } => self.attributor.learn_named_address(
                addr,
                false,
                Some(service.clone()),
                Some(namespace.clone()),
            ),
            DestinationName::Pod { namespace } => {
                self.attributor
                    .learn_named_address(addr, false, None, Some(namespace.clone()))
            }
            // Any other name under the cluster domain is still the
            // cluster's (what the lookup form `cluster_other` meant).
            DestinationName::Other(_) => self
                .attributor
                .learn_named_address(addr, !headless, None, None),
        }
        let naming = Naming {
            fqdn,
            what,
            source,
            at: self.now,
        };
        let (evicted, learned) = self.destinations.name(addr, naming);
        evict(Table::Destinations, evicted as u64, sink);
        if learned == Learned::NamedLiteral {
            if let Some(naming) = self.destinations.naming(addr) {
                sink.on_event(&Event::DestinationNamed { addr, naming });
            }
        }
    }

    /// Takes the names other threads fed in.
    fn take_fed_names(&mut self, sink: &mut dyn Sink) {
        let (names, dropped) = self.inbox.take();
        evict(Table::NameFeed, dropped, sink);
        for n in names {
            self.learn_name(n.addr, &n.fqdn, n.source, sink);
        }
    }

    /// Processes one frame.
    pub fn process(&mut self, raw: &RawPacket<'_>, sink: &mut dyn Sink) {
        self.stats.packets += 1;
        self.tick(raw.ts, sink);
        let mut reassembled = Vec::new();
        let mut evicted = defrag::Expired::default();
        let decoded =
            self.defrag
                .decode(self.now, raw.link, raw.data, &mut reassembled, &mut evicted);
        if evicted.datagrams > 0 {
            evict(Table::Fragments, 1, sink);
            self.skip(SkipReason::Fragment, evicted.fragments, sink);
        }
        let mut packet = match decoded {
            Decoded::Packet(p) | Decoded::Reassembled(p) => p,
            Decoded::Held => return,
            Decoded::Invalid(e) => {
                self.skip(e.into(), 1, sink);
                return;
            }
            Decoded::Skipped { reason, count } => {
                self.skip(reason.into(), count, sink);
                return;
            }
        };
        if raw.packet_type.is_some() {
            packet.packet_type = raw.packet_type;
        }
        match packet.packet_type {
            Some(PacketType::Outgoing) => self.learn_local(packet.src, AddressOrigin::SentByHost),
            Some(PacketType::Host) => self.learn_local(packet.dst, AddressOrigin::AddressedToHost),
            _ => {}
        }
        let now = self.now;
        match packet.transport {
            Transport::Tcp(seg) => {
                let src = SocketAddr::new(packet.src, seg.src_port);
                let dst = SocketAddr::new(packet.dst, seg.dst_port);
                if seg.src_port == 53 || seg.dst_port == 53 {
                    if seg.dst_port == 53 && seg.flags.syn() && !seg.flags.ack() {
                        self.learn_dns_client(src.ip(), dst.ip(), packet.packet_type);
                    }
                    self.dns.on_tcp(now, src, dst, &seg, &mut self.dns_events);
                    self.drain_dns(sink);
                } else if !self.excluded(src, dst) {
                    self.on_tcp(src, dst, &seg, packet.packet_type, sink);
                }
            }
            Transport::Udp(dgram) => {
                let src = SocketAddr::new(packet.src, dgram.src_port);
                let dst = SocketAddr::new(packet.dst, dgram.dst_port);
                if dgram.src_port == 53 || dgram.dst_port == 53 {
                    if self.cfg.own_dns.is_some_and(|c| c.matches(src, dst)) {
                        self.stats.own_dns_packets += 1;
                        return;
                    }
                    if dgram.dst_port == 53 {
                        self.learn_dns_client(src.ip(), dst.ip(), packet.packet_type);
                    }
                    self.dns
                        .on_udp(now, src, dst, dgram.payload, &mut self.dns_events);
                    self.drain_dns(sink);
                } else if !self.excluded(src, dst) {
                    self.on_udp(src, dst, &dgram, packet.packet_type, sink);
                }
            }
            Transport::IcmpError(err) => {
                if err.kind == decode::IcmpErrorKind::PortUnreachable && err.original_protocol == 17
                {
                    let client = SocketAddr::new(err.original_src, err.original_src_port);
                    let server = SocketAddr::new(err.original_dst, err.original_dst_port);
                    if err.original_dst_port == 53 {
                        if self.cfg.own_dns.is_some_and(|c| c.matches(client, server)) {
                            self.stats.own_dns_packets += 1;
                            return;
                        }
                        self.dns
                            .on_port_unreachable(now, client, server, &mut self.dns_events);
                        self.drain_dns(sink);
                    } else {
                        self.on_udp_unreachable(client, server, sink);
                    }
                }
            }
            Transport::Other { .. } => {}
        }
    }

    /// Counts `count` frames skipped for `reason`.
    fn skip(&mut self, reason: SkipReason, count: u64, sink: &mut dyn Sink) {
        if count == 0 {
            return;
        }
        self.stats.skipped += count;
        sink.on_event(&Event::Skipped { reason, count });
    }

    /// Advances packet time without a packet (live capture when traffic
    /// stops), firing every timeout that is due.
    pub fn advance(&mut self, now: Timestamp, sink: &mut dyn Sink) {
        self.tick(now, sink);
    }

    /// End of input: completes what can be completed and exports the rest.
    pub fn finish(&mut self, sink: &mut dyn Sink) {
        let now = self.now;
        self.sweep(now, sink);
        // Held attributions are decided before the flows are drained, as
        // when their hold runs out.
        let mut due = Vec::new();
        self.rewrite.due(None, &mut due);
        for h in due {
            self.decide(h, true, sink);
        }
        let incomplete = self.defrag.flush();
        self.skip(SkipReason::Fragment, incomplete.fragments, sink);
        self.dns.flush(&mut self.dns_events);
        self.drain_dns(sink);
        let connect_timeout = self.cfg.timeouts.tcp_connect;
        for mut flow in self.flows.drain_all() {
            if flow.tcp_state() == Some(TcpState::SynSent) && flow.outbound && flow.counted {
                if now.secs_since(flow.first_seen) >= connect_timeout {
                    emit_failed(&flow, FailReason::Timeout, sink);
                } else {
                    self.stats.pending_at_end += 1;
                }
            }
            emit_bytes(&mut flow, sink);
        }
    }

    fn tick(&mut self, ts: Timestamp, sink: &mut dyn Sink) {
        if !self.started {
            self.started = true;
            self.now = ts;
            self.next_sweep = ts.add_secs(SWEEP_INTERVAL_SECS);
            return;
        }
        if ts < self.now {
            self.stats.time_went_backwards += 1;
            return;
        }
        self.now = ts;
        if ts >= self.next_sweep {
            self.sweep(ts, sink);
            self.next_sweep = ts.add_secs(SWEEP_INTERVAL_SECS);
        }
    }

    fn sweep(&mut self, now: Timestamp, sink: &mut dyn Sink) {
        self.take_fed_names(sink);
        let mut due = Vec::new();
        self.rewrite.due(Some(now), &mut due);
        for h in due {
            self.decide(h, true, sink);
        }
        let expired = self.defrag.expire(now);
        self.skip(SkipReason::Fragment, expired.fragments, sink);
        self.dns.advance(now, &mut self.dns_events);
        self.drain_dns(sink);
        let t = self.cfg.timeouts.clone();
        let expired = self.flows.drain_expired(|f| {
            let idle = now.secs_since(f.last_seen);
            match f.tcp_state() {
                None => idle >= t.udp_idle,
                Some(TcpState::SynSent) => now.secs_since(f.first_seen) >= t.tcp_connect,
                Some(TcpState::Closed | TcpState::Failed) => idle >= CLOSED_LINGER_SECS,
                Some(TcpState::Established | TcpState::Midstream) => idle >= t.tcp_idle,
            }
        });
        for mut flow in expired {
            let mut sink = flow_sink(&mut self.rewrite, &flow, sink);
            if flow.tcp_state() == Some(TcpState::SynSent) && flow.outbound && flow.counted {
                emit_failed(&flow, FailReason::Timeout, &mut sink);
            }
            emit_bytes(&mut flow, &mut sink);
        }
        // A held flow's bytes wait in the flow for its decision.
        self.flows.for_each_mut(|f| {
            if !f.held {
                emit_bytes(f, sink)
            }
        });
    }

    fn drain_dns(&mut self, sink: &mut dyn Sink) {
        let mut events = std::mem::take(&mut self.dns_events);
        for ev in &events {
            // Evictions and malformed messages become the engine's own
            // events here, once, so that no sink maps them itself.
            match ev {
                DnsEvent::Answered(answer) => self.learn_answer(answer, sink),
                DnsEvent::Evicted { table } => {
                    evict((*table).into(), 1, sink);
                    continue;
                }
                DnsEvent::Malformed { reason, .. } => {
                    sink.on_event(&Event::DnsMalformed { reason: *reason });
                    continue;
                }
                _ => {}
            }
            sink.on_event(&Event::Dns(ev));
        }
        events.clear();
        self.dns_events = events;
    }

    /// What an answer names, applied as it arrives: a connection right after
    /// `cart.shop.svc.<domain> → 10.43.12.7` already knows a ClusterIP.
    fn learn_answer(&mut self, answer: &crate::dns::Answered, sink: &mut dyn Sink) {
        let domain = self.dns.search().cluster_domain.clone();
        let mut what = DestinationName::parse(&answer.name, &domain);
        let mut fqdn = answer.name.clone();
        // An alias to a Service (`api` CNAME `api.shop.svc.<domain>`) names
        // the Service; a Service name aliased outside the cluster (an
        // ExternalName Service) answers an external address, not a ClusterIP.
        let canonical = answer
            .canonical
            .as_ref()
            .map(|c| (c, DestinationName::parse(c, &domain)));
        let mut cluster_address = what.is_cluster() || in_domain(&answer.name, &domain);
        if let Some((c, cwhat)) = canonical {
            if !what.is_cluster() && cwhat.is_cluster() {
                what = cwhat;
                fqdn = c.clone();
                cluster_address = true;
            } else if !cwhat.is_cluster() && !in_domain(c, &domain) {
                cluster_address = false;
            }
        }
        // A ClusterIP Service answers one address per family; more are a
        // headless Service's endpoints (pods).
        let v4 = answer.addrs.iter().filter(|a| a.is_ipv4()).count();
        let v6 = answer.addrs.len() - v4;
        for &addr in &answer.addrs {
            let headless = if addr.is_ipv4() { v4 > 1 } else { v6 > 1 };
            self.learn_naming(
                addr,
                fqdn.clone(),
                what.clone(),
                answer.source,
                headless,
                cluster_address,
                sink,
            );
        }
    }

    fn is_local(&self, addr: IpAddr) -> bool {
        addr.is_loopback() || self.local.iter().any(|l| l.addr == addr)
    }

    fn learn_local(&mut self, addr: IpAddr, from: AddressOrigin) {
        if addr.is_loopback() || addr.is_unspecified() || addr.is_multicast() {
            return;
        }
        if self.local.iter().any(|l| l.addr == addr) || self.local.len() >= MAX_LOCAL_ADDRS {
            return;
        }
        self.local.push(LocalAddress { addr, from });
        self.attributor.learn_local(addr);
    }

    /// A query to port 53: its sender is the pod (unless the kernel said the
    /// packet was addressed to us: then we are the server), its target the
    /// cluster DNS Service.
    fn learn_dns_client(&mut self, client: IpAddr, server: IpAddr, pt: Option<PacketType>) {
        if pt == Some(PacketType::Host) {
            return;
        }
        self.learn_local(client, AddressOrigin::SendsDns);
        if !server.is_loopback() {
            self.attributor.learn_dns_server(server);
        }
    }

    /// Traffic on podpath's own ports (its metrics endpoint) is not the app's.
    fn excluded(&self, src: SocketAddr, dst: SocketAddr) -> bool {
        let ports = &self.cfg.exclude_ports;
        !ports.is_empty()
            && ((ports.contains(&dst.port()) && self.is_local(dst.ip()))
                || (ports.contains(&src.port()) && self.is_local(src.ip())))
    }

    /// Whether a new flow from `src` to `dst` was initiated by the pod.
    fn initiated_locally(
        &mut self,
        src: SocketAddr,
        dst: SocketAddr,
        pt: Option<PacketType>,
    ) -> bool {
        if src.ip().is_loopback() || dst.ip().is_loopback() {
            return true;
        }
        match pt {
            Some(PacketType::Outgoing) => return true,
            Some(PacketType::Host) => return false,
            _ => {}
        }
        if self.is_local(src.ip()) {
            true
        } else if self.is_local(dst.ip()) {
            false
        } else {
            // Nothing known yet: in a pod, the first SYN seen is most often the app's.
            self.learn_local(src.ip(), AddressOrigin::FirstInitiator);
            true
        }
    }

    fn attribute(&self, dst: IpAddr) -> Attribution {
        let resolved = self.dns.resolve(dst, self.now);
        self.attributor.attribute(
            dst,
            resolved.map(|n| Resolved {
                name: &n.name,
                service: n.service.as_ref(),
                namespace: n.namespace.as_ref(),
            }),
        )
    }

    fn open_flow(
        &mut self,
        src: SocketAddr,
        dst: SocketAddr,
        state: FlowState<AppState>,
        pt: Option<PacketType>,
        sink: &mut dyn Sink,
    ) -> FlowKey {
        let protocol = state.protocol();
        let outbound = self.initiated_locally(src, dst, pt);
        let mut attribution = outbound.then(|| self.attribute(dst.ip()));
        let key = FlowKey::new(protocol, src, dst);
        let now = self.now;
        let mut rewritten = None;
        let mut hold = None;
        let mut refuted = Vec::new();
        let mut confirmed = Vec::new();
        if let Some(a) = attribution.as_mut() {
            // The pod dialing what a lookup answered refutes candidates of that lookup.
            let by_cluster_ip = a.path == Path::Dns && a.target == Some(AddrClass::ClusterIp);
            let name = a.dns_name.as_ref().filter(|_| by_cluster_ip);
            self.rewrite.dialed(src.ip(), dst.ip(), name, &mut refuted);
            if protocol == Protocol::Tcp {
                match self
                    .rewrite
                    .on_connection(now, src, dst, a, &self.dns, &self.attributor)
                {
                    Decision::Keep => {}
                    Decision::Rewritten {
                        attribution,
                        detected,
                    } => {
                        *a = attribution;
                        rewritten = Some(detected);
                        if detected.is_some() {
                            self.rewrite.confirmed(a, dst.port(), &mut confirmed);
                        }
                    }
                    Decision::Hold(candidate) => hold = Some(candidate),
                }
            }
        }
        // Held connections decided by this one come out before it.
        for h in refuted {
            self.decide(h, false, sink);
        }
        for h in confirmed {
            self.decide(h, true, sink);
        }
        let stale = match &attribution {
            Some(a) if a.path == Path::Dns && rewritten.is_none() => {
                self.dns.staleness(dst.ip(), now)
            }
            _ => None,
        };
        let new = NewFlow {
            initiator: src,
            responder: dst,
            outbound,
            state,
            attribution,
            counted: true,
        };
        let (flow, evicted) = self.flows.insert(new, now);
        if let Some((candidate, literal)) = hold.zip(flow.attribution.clone()) {
            // Its events go to the hold until the decision; meanwhile the
            // flow carries the candidate attribution (for the TLS name check).
            flow.attribution = Some(candidate.rewritten.clone());
            flow.held = true;
            let held = Held {
                flow_id: flow.id,
                key,
                ts: now,
                src,
                dst,
                literal,
                candidate: *candidate,
                events: Vec::new(),
                bytes_sent: 0,
                bytes_received: 0,
            };
            if let Some(old) = evicted {
                self.flow_evicted(old, sink);
            }
            if let Some(first) = self.rewrite.hold(held) {
                evict(Table::RewriteHeld, 1, sink);
                self.decide(first, true, sink);
            }
            return key;
        }
        if outbound {
            if let Some(a) = &flow.attribution {
                let conn = ConnectionView {
                    id: flow.id,
                    ts: now,
                    protocol,
                    src,
                    dst,
                    attribution: a,
                };
                sink.on_event(&Event::Connection(conn));
                if matches!(a.path, Path::PodIp | Path::ClusterIp) {
                    let (evicted, first, naming) = self.destinations.dialed(now, dst.ip(), a.path);
                    if first {
                        sink.on_event(&Event::LiteralDestination {
                            addr: dst.ip(),
                            path: a.path,
                            named: naming.is_some(),
                        });
                        if let Some(naming) = naming {
                            sink.on_event(&Event::DestinationNamed {
                                addr: dst.ip(),
                                naming,
                            });
                        }
                    }
                    evict(Table::Destinations, evicted as u64, sink);
                }
                if let Some(reason) = stale {
                    sink.on_event(&Event::StaleDns { conn, reason });
                }
                if let Some(detected) = rewritten {
                    sink.on_event(&Event::Rewritten { conn });
                    if let (Some(evidence), Some(name)) = (detected, a.dns_name.as_deref()) {
                        tracing::warn!(
                            dns_name = %self.cfg.names.apply(name, &self.cfg.name_salt),
                            port = dst.port(),
                            evidence,
                            "destination rewriting detected: lookups answering a ClusterIP are followed by connections to pod IPs (socket load balancing or a mesh sidecar); such connections are attributed to the looked-up name"
                        );
                        sink.on_event(&Event::RewriteDetected {
                            dns_name: name,
                            port: dst.port(),
                            evidence,
                        });
                    }
                }
            }
        } else {
            sink.on_event(&Event::Inbound {
                ts: now,
                protocol,
                peer: src,
                local: dst,
            });
        }
        if let Some(old) = evicted {
            self.flow_evicted(old, sink);
        }
        key
    }

    /// A flow pushed out of the full table: counted, and its bytes exported.
    fn flow_evicted(&mut self, mut old: Flow, sink: &mut dyn Sink) {
        self.stats.flow_evictions += 1;
        evict(Table::Flows, 1, sink);
        let mut to = flow_sink(&mut self.rewrite, &old, sink);
        emit_bytes(&mut old, &mut to);
    }

    /// Emits a held connection with its decided attribution: its
    /// `Connection`, then the events kept meanwhile.
    fn decide(&mut self, h: Held, rewritten: bool, sink: &mut dyn Sink) {
        let attribution = if rewritten {
            h.candidate.rewritten
        } else {
            h.literal
        };
        if let Some(flow) = self.flows.get_mut(&h.key).filter(|f| f.id == h.flow_id) {
            flow.attribution = Some(attribution.clone());
            flow.held = false;
        }
        let conn = ConnectionView {
            id: h.flow_id,
            ts: h.ts,
            protocol: Protocol::Tcp,
            src: h.src,
            dst: h.dst,
            attribution: &attribution,
        };
        sink.on_event(&Event::Connection(conn));
        if rewritten {
            sink.on_event(&Event::Rewritten { conn });
        }
        for ev in &h.events {
            match ev {
                HeldEvent::Connected { latency_secs } => sink.on_event(&Event::Connected {
                    conn,
                    latency_secs: *latency_secs,
                }),
                HeldEvent::Failed(reason) => sink.on_event(&Event::ConnectFailed {
                    conn,
                    reason: *reason,
                }),
                HeldEvent::Http {
                    ts,
                    method,
                    status,
                    latency_secs,
                    protocol,
                    grpc_status,
                } => sink.on_event(&Event::Http(HttpView {
                    ts: *ts,
                    outbound: true,
                    connection_id: h.flow_id,
                    dst: h.dst,
                    attribution: Some(&attribution),
                    method: *method,
                    status: *status,
                    latency_secs: *latency_secs,
                    protocol: *protocol,
                    grpc_status: *grpc_status,
                })),
                HeldEvent::Tls {
                    sni,
                    status,
                    alpn,
                    dns_check,
                } => sink.on_event(&Event::Tls(TlsView {
                    conn,
                    sni: sni.as_deref(),
                    status: *status,
                    alpn: alpn.as_deref(),
                    // Checked against the looked-up name: void without one.
                    dns_check: dns_check.filter(|_| rewritten),
                })),
                HeldEvent::H2Stream(reason) => sink.on_event(&Event::H2Stream {
                    outbound: true,
                    attribution: Some(&attribution),
                    reason: *reason,
                }),
                // Only a name's connection has a written form to settle.
                HeldEvent::RequestHost { host, h2 } if rewritten => {
                    sink.on_event(&Event::RequestHost {
                        conn,
                        host,
                        h2: *h2,
                    })
                }
                HeldEvent::RequestHost { .. } => {}
            }
        }
        if h.bytes_sent > 0 || h.bytes_received > 0 {
            sink.on_event(&Event::Bytes {
                attribution: &attribution,
                sent: h.bytes_sent,
                received: h.bytes_received,
            });
        }
    }

    fn on_tcp(
        &mut self,
        src: SocketAddr,
        dst: SocketAddr,
        seg: &TcpSegment<'_>,
        pt: Option<PacketType>,
        sink: &mut dyn Sink,
    ) {
        let key = FlowKey::new(Protocol::Tcp, src, dst);
        let flags = seg.flags;
        let now = self.now;
        let pure_syn = flags.syn() && !flags.ack();

        if let Some(flow) = self.flows.get_mut(&key) {
            let dir = flow.direction(src);
            let FlowState::Tcp(tcp) = &mut flow.state else {
                return;
            };
            let reused = pure_syn
                && dir == Direction::Initiator
                && tcp.state != TcpState::SynSent
                && seg.seq != tcp.isn;
            let reversed = pure_syn && dir == Direction::Responder;
            if reused || reversed {
                // Port reuse: the old connection is over, a new one starts.
                if let Some(mut old) = self.flows.remove(&key) {
                    let mut to = flow_sink(&mut self.rewrite, &old, sink);
                    emit_bytes(&mut old, &mut to);
                }
            } else {
                flow.last_seen = now;
                if pure_syn {
                    // A retransmitted SYN: not a new attempt.
                    return;
                }
                if seg.payload_len == 0 && !flags.syn() && !flags.fin() && !flags.rst() {
                    // A pure ACK changes nothing but the time the flow was
                    // last seen: no handshake step, no byte, no reader moves
                    // (they read payload, and a TLS flight ends at FIN/RST).
                    return;
                }
                if decided(tcp, flags) {
                    // The fast path: nothing is read of this connection any
                    // more, and no event can follow from this segment.
                    close_and_count(flow, dir, seg);
                    return;
                }
                let cx = proto::Context {
                    dns: &self.dns,
                    flights: &self.flights,
                    max_http_pending: self.cfg.limits.max_http_pending,
                };
                let mut to = flow_sink(&mut self.rewrite, flow, sink);
                update_tcp(flow, dir, seg, now, &cx, &mut to);
                let full = match to {
                    FlowSink::Held(k) => k.0.events.len() >= rewrite::MAX_HELD_EVENTS,
                    FlowSink::Direct(_) => false,
                };
                if full {
                    let id = flow.id;
                    if let Some(h) = self.rewrite.take(id) {
                        evict(Table::RewriteHeld, 1, sink);
                        self.decide(h, true, sink);
                    }
                }
                return;
            }
        }

        if pure_syn {
            let state = FlowState::Tcp(Tcp {
                state: TcpState::SynSent,
                isn: seg.seq,
                app: AppState::from_syn(seg.seq),
            });
            self.open_flow(src, dst, state, pt, sink);
        } else if !seg.payload.is_empty() && !flags.rst() {
            // Joined mid-connection: no attempt to count, but HTTP can still be read.
            let client_is_src = if http::looks_like_request(seg.payload) {
                true
            } else if seg.payload.starts_with(b"HTTP/1.") {
                false
            } else {
                src.port() > dst.port()
            };
            let (client, server) = if client_is_src {
                (src, dst)
            } else {
                (dst, src)
            };
            let outbound = match pt {
                Some(PacketType::Outgoing) => client_is_src,
                Some(PacketType::Host) => !client_is_src,
                _ => self.is_local(client.ip()) || !self.is_local(server.ip()),
            };
            let max_http_pending = self.cfg.limits.max_http_pending;
            let new = NewFlow {
                initiator: client,
                responder: server,
                outbound,
                state: FlowState::Tcp(Tcp {
                    state: TcpState::Midstream,
                    isn: 0,
                    app: AppState::joined(max_http_pending),
                }),
                attribution: outbound.then(|| self.attribute(server.ip())),
                counted: false,
            };
            let (flow, evicted) = self.flows.insert(new, now);
            let cx = proto::Context {
                dns: &self.dns,
                flights: &self.flights,
                max_http_pending,
            };
            let dir = flow.direction(src);
            update_tcp(flow, dir, seg, now, &cx, sink);
            if let Some(old) = evicted {
                self.flow_evicted(old, sink);
            }
        }
    }

    fn on_udp(
        &mut self,
        src: SocketAddr,
        dst: SocketAddr,
        dgram: &UdpDatagram<'_>,
        pt: Option<PacketType>,
        sink: &mut dyn Sink,
    ) {
        let key = FlowKey::new(Protocol::Udp, src, dst);
        let key = match self.flows.get_mut(&key) {
            Some(_) => key,
            None => self.open_flow(src, dst, FlowState::Udp(UdpState::Open), pt, sink),
        };
        if let Some(flow) = self.flows.get_mut(&key) {
            flow.last_seen = self.now;
            let dir = flow.direction(src);
            flow.count(dir, dgram.payload_len);
        }
    }

    fn on_udp_unreachable(&mut self, client: SocketAddr, server: SocketAddr, sink: &mut dyn Sink) {
        let key = FlowKey::new(Protocol::Udp, client, server);
        if let Some(flow) = self.flows.get_mut(&key) {
            if flow.outbound && matches!(flow.state, FlowState::Udp(UdpState::Open)) {
                flow.state = FlowState::Udp(UdpState::Unreachable);
                if let Some(a) = &flow.attribution {
                    sink.on_event(&Event::UdpUnreachable {
                        conn: view(flow, a),
                    });
                }
            }
        }
    }
}

/// Whether `name` is under the cluster domain (`x.<domain>`, not the domain itself).
fn in_domain(name: &str, domain: &str) -> bool {
    name.strip_suffix(domain)
        .is_some_and(|h| h.len() > 1 && h.ends_with('.'))
}

pub(crate) fn view<'a>(flow: &Flow, attribution: &'a Attribution) -> ConnectionView<'a> {
    ConnectionView {
        id: flow.id,
        ts: flow.first_seen,
        protocol: flow.protocol(),
        src: flow.initiator,
        dst: flow.responder,
        attribution,
    }
}

/// Where one flow's events go: to its hold while its attribution is held.
enum FlowSink<'a> {
    Direct(&'a mut dyn Sink),
    Held(Keep<'a>),
}

impl Sink for FlowSink<'_> {
    fn on_event(&mut self, event: &Event<'_>) {
        match self {
            FlowSink::Direct(s) => s.on_event(event),
            FlowSink::Held(k) => k.on_event(event),
        }
    }
}

fn flow_sink<'a>(
    rewrite: &'a mut RewriteDetector,
    flow: &Flow,
    sink: &'a mut dyn Sink,
) -> FlowSink<'a> {
    let (held, id) = (flow.held, flow.id);
    if held {
        if let Some(h) = rewrite.held_mut(id) {
            return FlowSink::Held(Keep(h));
        }
    }
    FlowSink::Direct(sink)
}

fn emit_failed(flow: &Flow, reason: FailReason, sink: &mut dyn Sink) {
    if let Some(a) = &flow.attribution {
        sink.on_event(&Event::ConnectFailed {
            conn: view(flow, a),
            reason,
        });
    }
}

/// Reports `count` entries evicted from `table` (none: no event).
fn evict(table: Table, count: u64, sink: &mut dyn Sink) {
    if count > 0 {
        sink.on_event(&Event::Evicted { table, count });
    }
}

fn emit_bytes(flow: &mut Flow, sink: &mut dyn Sink) {
    if flow.bytes_up == 0 && flow.bytes_down == 0 {
        return;
    }
    if flow.outbound {
        if let Some(a) = &flow.attribution {
            sink.on_event(&Event::Bytes {
                attribution: a,
                sent: flow.bytes_up,
                received: flow.bytes_down,
            });
        }
    }
    flow.bytes_up = 0;
    flow.bytes_down = 0;
}

/// Whether a segment on this connection takes the fast path: what it
/// speaks is decided (nothing more is read), and the segment can change
/// nothing but the byte counts and whether the connection is over (no SYN,
/// no RST answering a SYN).
fn decided(tcp: &Tcp<AppState>, flags: decode::TcpFlags) -> bool {
    matches!(tcp.app, AppState::Opaque) && !flags.syn() && tcp.state != TcpState::SynSent
}

/// A segment on a known TCP flow: handshake, failure, what it speaks, close, bytes.
fn update_tcp(
    flow: &mut Flow,
    dir: Direction,
    seg: &TcpSegment<'_>,
    now: Timestamp,
    cx: &proto::Context<'_>,
    sink: &mut dyn Sink,
) {
    let flags = seg.flags;
    let Some(tcp) = flow.tcp_mut() else {
        return;
    };
    let connected =
        flags.syn() && flags.ack() && dir == Direction::Responder && tcp.state == TcpState::SynSent;
    if connected {
        tcp.state = TcpState::Established;
        if flow.outbound {
            if let Some(a) = &flow.attribution {
                sink.on_event(&Event::Connected {
                    conn: view(flow, a),
                    latency_secs: now.secs_since(flow.first_seen),
                });
            }
        }
    }
    proto::on_segment(flow, dir, seg, now, cx, sink);
    let refused =
        flags.rst() && dir == Direction::Responder && flow.tcp_state() == Some(TcpState::SynSent);
    if refused {
        if let Some(tcp) = flow.tcp_mut() {
            tcp.state = TcpState::Failed;
        }
        if flow.outbound {
            emit_failed(flow, FailReason::Refused, sink);
        }
        return;
    }
    close_and_count(flow, dir, seg);
}

/// What every segment of an established connection changes: a RST or FIN
/// closes it (the payload of a RST is not counted), payload is counted.
fn close_and_count(flow: &mut Flow, dir: Direction, seg: &TcpSegment<'_>) {
    let flags = seg.flags;
    if !flags.rst() && seg.payload_len > 0 {
        flow.count(dir, seg.payload_len);
    }
    if let Some(tcp) = flow.tcp_mut() {
        if (flags.rst() || flags.fin()) && tcp.state != TcpState::Failed {
            tcp.state = TcpState::Closed;
        }
    }
}
