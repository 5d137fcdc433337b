//! Names for literal destinations: from the engine's entry point, the feed
//! other threads use, and (item 2) from the traffic itself.

use super::*;
use crate::dns::k8s::NameSource;
use crate::engine::destinations::FedName;

/// Address, FQDN, service, namespace, source.
type Named = (IpAddr, String, Option<String>, Option<String>, NameSource);

/// Collects the naming events the exporters get.
#[derive(Default)]
struct Names {
    literal: Vec<(IpAddr, Path, bool)>,
    named: Vec<Named>,
    evicted: Vec<&'static str>,
}

impl Sink for Names {
    fn on_event(&mut self, event: &Event<'_>) {
        match event {
            Event::LiteralDestination { addr, path, named } => {
                self.literal.push((*addr, *path, *named))
            }
            Event::DestinationNamed { addr, naming } => self.named.push((
                *addr,
                naming.fqdn.to_string(),
                naming.service().map(str::to_string),
                naming.namespace().map(str::to_string),
                naming.source,
            )),
            Event::Evicted { table } => self.evicted.push(table),
            _ => {}
        }
    }
}

fn syn(r: &mut Run, sport: u16, dst: &str, names: &mut Names) {
    let f = FrameBuilder::new(ip(POD), ip(dst))
        .tcp(sport, 80)
        .flags(TcpFlags::SYN)
        .seq(1);
    r.t += 0.001;
    let bytes = f.link(r.link).build();
    let raw = RawPacket {
        ts: Timestamp::from_secs_f64(r.t),
        link: r.link,
        data: &bytes,
        orig_len: bytes.len() as u32,
        packet_type: None,
        interface: 0,
    };
    let mut tee = Tee(vec![&mut r.report, &mut r.sink, names]);
    r.engine.process(&raw, &mut tee);
}

#[test]
fn a_name_learned_after_the_literal_call_is_exported_for_it() {
    let mut r = Run::new(LinkType::Ethernet);
    let mut names = Names::default();
    syn(&mut r, 40001, "10.244.1.10", &mut names);
    assert_eq!(names.literal, vec![(ip("10.244.1.10"), Path::PodIp, false)]);
    assert!(names.named.is_empty());
    // Later, from outside the capture (task E's PTR lookup).
    r.engine.learn_name(
        ip("10.244.1.10"),
        "10-244-1-10.demo-app.default.svc.cluster.local.",
        NameSource::Ptr,
        &mut names,
    );
    assert_eq!(
        names.named,
        vec![(
            ip("10.244.1.10"),
            "10-244-1-10.demo-app.default.svc.cluster.local".into(),
            Some("demo-app".into()),
            Some("default".into()),
            NameSource::Ptr
        )]
    );
    // A second use is not a new literal destination.
    syn(&mut r, 40002, "10.244.1.10", &mut names);
    assert_eq!(names.literal.len(), 1);
}

#[test]
fn a_name_known_before_the_literal_call_is_exported_with_its_first_use() {
    let mut r = Run::new(LinkType::Ethernet);
    let mut names = Names::default();
    // A name for an address never dialed literally is not exported.
    r.engine.learn_name(
        ip("10.96.5.5"),
        "cart.shop.svc.cluster.local",
        NameSource::Ptr,
        &mut names,
    );
    assert!(names.named.is_empty());
    syn(&mut r, 40001, "10.96.5.5", &mut names);
    assert_eq!(
        names.literal,
        vec![(ip("10.96.5.5"), Path::ClusterIp, true)]
    );
    assert_eq!(names.named.len(), 1);
    assert_eq!(names.named[0].2.as_deref(), Some("cart"));
}

#[test]
fn names_fed_from_another_thread_arrive_with_the_next_sweep() {
    let mut r = Run::new(LinkType::Ethernet);
    let mut names = Names::default();
    syn(&mut r, 40001, "10.96.7.7", &mut names);
    let feed = r.engine.name_feed();
    std::thread::spawn(move || {
        assert!(feed.send(FedName {
            addr: "10.96.7.7".parse().unwrap(),
            fqdn: "statsd.monitoring.svc.cluster.local.".into(),
            source: NameSource::Ptr,
        }))
    })
    .join()
    .unwrap();
    assert!(names.named.is_empty(), "not before packet time moves");
    let later = Timestamp::from_secs_f64(r.t + 1.5);
    r.engine.advance(later, &mut names);
    assert_eq!(names.named.len(), 1);
    assert_eq!(names.named[0].3.as_deref(), Some("monitoring"));
}
