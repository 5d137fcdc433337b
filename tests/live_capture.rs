//! Live AF_PACKET capture, tested in network namespaces the tests create.
//!
//! Each test runs three ways, chosen by `PODPATH_NETNS_ROLE`:
//! - unset (outer): builds the lab (`ip netns add pp-cap-*`: namespace A with
//!   `lo` and `va` 10.250.0.1/24 + fd00:250::1/64, namespace B with `vb`
//!   10.250.0.2/24 + fd00:250::2/64, a veth pair between them) and re-runs this same test inside A with
//!   `ip netns exec A <this binary> --exact <test>`, then removes the lab;
//! - `inner`: the test body, capturing in A;
//! - `peer`: traffic from B, started by the inner body.
//!
//! The namespace tests need root; they are compiled in with the
//! `netns-tests` feature (CI: `cargo test --features netns-tests`) and shown
//! as ignored otherwise. No packet leaves the namespaces.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use podpath::capture::live::{CaptureMode, LiveConfig, LiveSource};
use podpath::capture::{Next, PacketSource};
use podpath::decode::PacketType;

const ROLE: &str = "PODPATH_NETNS_ROLE";
/// `ring` or `recvmsg`: every namespace test body runs once with each.
const MODE: &str = "PODPATH_TEST_CAPTURE_MODE";
const MODES: [&str; 2] = ["ring", "recvmsg"];
const PEER_NS: &str = "PODPATH_NETNS_PEER";
const A: Ipv4Addr = Ipv4Addr::new(10, 250, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 250, 0, 2);

#[derive(PartialEq)]
enum Role {
    Outer,
    Inner,
    Peer,
}

fn role() -> Role {
    match std::env::var(ROLE).as_deref() {
        Ok("inner") => Role::Inner,
        Ok("peer") => Role::Peer,
        _ => Role::Outer,
    }
}

/// The capture mode this run of a test body uses (never `Auto`, so that a
/// refused ring fails the test instead of falling back).
fn mode() -> CaptureMode {
    match std::env::var(MODE).as_deref() {
        Ok("recvmsg") => CaptureMode::Recvmsg,
        _ => CaptureMode::Ring,
    }
}

/// The default configuration in this run's capture mode.
fn base() -> LiveConfig {
    LiveConfig {
        mode: mode(),
        ..LiveConfig::default()
    }
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("run command");
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Two namespaces joined by a veth pair; removed on drop.
struct Lab {
    ns: String,
    peer: String,
}

impl Lab {
    fn new(tag: &str, mtu: u32) -> Lab {
        let mtu = mtu.to_string();
        let pid = std::process::id();
        let lab = Lab {
            ns: format!("pp-cap-{tag}-{pid}"),
            peer: format!("pp-capp-{tag}-{pid}"),
        };
        sh(&["ip", "netns", "add", &lab.ns]);
        sh(&["ip", "netns", "add", &lab.peer]);
        sh(&["ip", "-n", &lab.ns, "link", "set", "lo", "up"]);
        sh(&["ip", "-n", &lab.peer, "link", "set", "lo", "up"]);
        #[rustfmt::skip]
        sh(&["ip", "-n", &lab.ns, "link", "add", "va", "mtu", &mtu, "type", "veth",
             "peer", "name", "vb", "mtu", &mtu, "netns", &lab.peer]);
        sh(&[
            "ip",
            "-n",
            &lab.ns,
            "addr",
            "add",
            "10.250.0.1/24",
            "dev",
            "va",
        ]);
        sh(&[
            "ip",
            "-n",
            &lab.peer,
            "addr",
            "add",
            "10.250.0.2/24",
            "dev",
            "vb",
        ]);
        #[rustfmt::skip]
        sh(&["ip", "-n", &lab.ns, "addr", "add", "fd00:250::1/64", "dev", "va", "nodad"]);
        #[rustfmt::skip]
        sh(&["ip", "-n", &lab.peer, "addr", "add", "fd00:250::2/64", "dev", "vb", "nodad"]);
        sh(&["ip", "-n", &lab.ns, "link", "set", "va", "up"]);
        sh(&["ip", "-n", &lab.peer, "link", "set", "vb", "up"]);
        lab
    }

    /// Runs `test` inside namespace A, once per capture mode, and asserts
    /// that it ran and passed.
    fn run_inner(&self, test: &str) {
        for mode in MODES {
            let out = this_test_in(&["ip", "netns", "exec", &self.ns], test, "inner")
                .env(PEER_NS, &self.peer)
                .env(MODE, mode)
                .output()
                .expect("spawn inner test");
            assert_ran(&format!("{test} ({mode})"), &out);
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in [&self.ns, &self.peer] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// This test binary, run as `prefix... <exe> --exact test` in `role`.
fn this_test_in(prefix: &[&str], test: &str, role: &str) -> Command {
    let exe = std::env::current_exe().expect("current_exe");
    let mut cmd = Command::new(prefix[0]);
    cmd.args(&prefix[1..])
        .arg(exe)
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(ROLE, role);
    cmd
}

/// A copy of this test binary that user 65534 can run: the build directory
/// may sit under a home directory other users cannot enter. Removed on drop.
struct WorldExecutable {
    dir: std::path::PathBuf,
}

impl WorldExecutable {
    fn new(test: &str) -> WorldExecutable {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("pp-cap-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let exe = std::env::current_exe().expect("current_exe");
        std::fs::copy(exe, dir.join("live_capture")).expect("copy test binary");
        std::fs::set_permissions(
            dir.join("live_capture"),
            std::fs::Permissions::from_mode(0o755),
        )
        .expect("chmod");
        WorldExecutable { dir }
    }

    /// `prefix... <copy> --exact test` in `role`.
    fn command(&self, prefix: &[&str], test: &str, role: &str) -> Command {
        let mut cmd = Command::new(prefix[0]);
        cmd.args(&prefix[1..])
            .arg(self.dir.join("live_capture"))
            .args(["--exact", test, "--nocapture", "--test-threads=1"])
            .env(ROLE, role)
            .current_dir(&self.dir);
        cmd
    }
}

impl Drop for WorldExecutable {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn assert_ran(test: &str, out: &std::process::Output) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{test} inner run failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as u64
}

/// One captured frame, copied out of the source's buffer.
#[derive(Debug, Clone)]
struct Frame {
    ts: u64,
    data: Vec<u8>,
    orig_len: u32,
    packet_type: Option<PacketType>,
    interface: u16,
}

impl Frame {
    fn ipv4(&self) -> Option<(u8, Ipv4Addr, Ipv4Addr, usize, usize)> {
        let d = &self.data;
        if d.get(12..14)? != [0x08, 0x00] {
            return None;
        }
        let ihl = usize::from(d.get(14)? & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([*d.get(16)?, *d.get(17)?]));
        let addrs = d.get(26..34)?;
        let src = Ipv4Addr::new(addrs[0], addrs[1], addrs[2], addrs[3]);
        let dst = Ipv4Addr::new(addrs[4], addrs[5], addrs[6], addrs[7]);
        Some((*d.get(23)?, src, dst, ihl, total))
    }

    /// (protocol, src, dst, src port, dst port)
    fn ports(&self) -> Option<(u8, Ipv4Addr, Ipv4Addr, u16, u16)> {
        let (proto, src, dst, ihl, _) = self.ipv4()?;
        let l4 = 14 + ihl;
        let sp = u16::from_be_bytes([*self.data.get(l4)?, *self.data.get(l4 + 1)?]);
        let dp = u16::from_be_bytes([*self.data.get(l4 + 2)?, *self.data.get(l4 + 3)?]);
        Some((proto, src, dst, sp, dp))
    }

    /// TCP (flags, payload length from the IP header).
    fn tcp(&self) -> Option<(u8, usize)> {
        let (proto, _, _, ihl, total) = self.ipv4()?;
        if proto != 6 {
            return None;
        }
        let l4 = 14 + ihl;
        let doff = usize::from(self.data.get(l4 + 12)? >> 4) * 4;
        Some((*self.data.get(l4 + 13)?, total.checked_sub(ihl + doff)?))
    }
}

/// Keeps a capture on `lo` open until it sees kernel receive timestamps.
///
/// The kernel stamps received frames only while some socket asks for it,
/// and switches this on lazily (a static key flipped from a workqueue, in
/// ms, longer while other test processes close their sockets): until then a
/// frame carries the time it was read. Tests that compare timestamps hold
/// the returned source while opening theirs, so the switch stays on.
fn kernel_timestamps_on() -> LiveSource {
    let mut probe = LiveSource::open(&LiveConfig {
        interfaces: vec!["lo".to_string()],
        poll_interval: Duration::from_millis(10),
        ..base()
    })
    .expect("open lo");
    let rx = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let tx = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let to = rx.local_addr().expect("addr");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let sent = wall_ns();
        tx.send_to(b"probe", to).expect("send");
        std::thread::sleep(Duration::from_millis(5));
        let read_at = wall_ns();
        let mut stamped = false;
        while let Next::Packet(p) = probe.next_packet().expect("next_packet") {
            stamped |= sent <= p.ts.0 && p.ts.0 < read_at;
        }
        if stamped {
            return probe;
        }
        assert!(
            Instant::now() < deadline,
            "kernel receive timestamps never came on"
        );
    }
}

/// Reads frames until the source has been idle once after `quiet` passed.
fn drain(source: &mut LiveSource, quiet: Duration) -> Vec<Frame> {
    let until = Instant::now() + quiet;
    let mut frames = Vec::new();
    loop {
        match source.next_packet().expect("next_packet") {
            Next::Packet(p) => frames.push(Frame {
                ts: p.ts.0,
                data: p.data.to_vec(),
                orig_len: p.orig_len,
                packet_type: p.packet_type,
                interface: p.interface,
            }),
            Next::Idle { now } => {
                let wall = wall_ns();
                assert!(
                    now.0 <= wall && wall - now.0 < 1_000_000_000,
                    "idle now {now}"
                );
                if Instant::now() >= until {
                    return frames;
                }
            }
            Next::End => panic!("capture ended unasked"),
        }
    }
}

#[cfg_attr(
    not(feature = "netns-tests"),
    ignore = "needs root and network namespaces: cargo test --features netns-tests"
)]
#[test]
fn loopback_packets_are_seen_once_and_counted() {
    const TEST: &str = "loopback_packets_are_seen_once_and_counted";
    match role() {
        Role::Outer => Lab::new("lo", 65535).run_inner(TEST),
        Role::Peer => {}
        Role::Inner => loopback_inner(),
    }
}

fn loopback_inner() {
    const N: usize = 25;
    let config = LiveConfig {
        interfaces: vec!["lo".to_string()],
        ..base()
    };
    let _timestamps = kernel_timestamps_on();
    let mut source = LiveSource::open(&config).expect("open lo");
    assert_eq!(source.interface_names().collect::<Vec<_>>(), ["lo"]);

    let rx = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = rx.local_addr().expect("addr").port();
    let tx = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let start = wall_ns();
    for i in 0..N {
        tx.send_to(&[i as u8; 100], ("127.0.0.1", port))
            .expect("send");
    }
    let mut buf = [0u8; 200];
    for _ in 0..N {
        assert_eq!(rx.recv(&mut buf).expect("recv"), 100);
    }
    let end = wall_ns();

    let frames = drain(&mut source, Duration::from_millis(300));
    let ours: Vec<&Frame> = frames
        .iter()
        .filter(|f| matches!(f.ports(), Some((17, _, _, _, dp)) if dp == port))
        .collect();
    assert_eq!(ours.len(), N, "each datagram once on lo: {frames:?}");
    for f in &ours {
        assert_eq!(f.packet_type, Some(PacketType::Host));
        assert_eq!(f.interface, 0);
        // Non-DNS UDP: headers only (14 + 60 + 8 = 82 bytes at most).
        assert_eq!(f.orig_len, 14 + 20 + 8 + 100);
        assert_eq!(f.data.len(), 82);
        assert!(
            start <= f.ts && f.ts <= end,
            "kernel timestamp {} in [{start}, {end}]",
            f.ts
        );
    }
    // Payload byte i of datagram i, in order: the capture kept send order.
    let firsts: Vec<u8> = ours.iter().map(|f| f.data[42]).collect();
    assert_eq!(firsts, (0..N as u8).collect::<Vec<_>>());

    let stats = source.stats();
    assert_eq!(stats.len(), 1);
    assert_eq!(stats[0].name, "lo");
    assert!(stats[0].received >= N as u64, "{stats:?}");
    assert_eq!(stats[0].dropped, 0);
    // Counters accumulate across reads (the kernel resets its own).
    tx.send_to(b"x", ("127.0.0.1", port)).expect("send");
    rx.recv(&mut buf).expect("recv");
    let again = source.stats();
    assert_eq!(again[0].received, stats[0].received + 1, "{again:?}");

    // Stop from another thread while the source is idle: End within 250 ms.
    let stop = source.stop_flag();
    let setter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        stop.store(true, Ordering::Relaxed);
        Instant::now()
    });
    let ended = loop {
        match source.next_packet().expect("next_packet") {
            Next::End => break Instant::now(),
            Next::Packet(_) | Next::Idle { .. } => {}
        }
    };
    let set_at = setter.join().expect("setter");
    assert!(ended.duration_since(set_at) < Duration::from_millis(250));
}

#[cfg_attr(
    not(feature = "netns-tests"),
    ignore = "needs root and network namespaces: cargo test --features netns-tests"
)]
#[test]
fn own_dns_client_is_dropped_by_the_kernel_filter() {
    const TEST: &str = "own_dns_client_is_dropped_by_the_kernel_filter";
    match role() {
        Role::Outer => Lab::new("own", 65535).run_inner(TEST),
        Role::Peer => {}
        Role::Inner => own_dns_inner(),
    }
}

/// podpath's PTR socket (one port, connected to the resolver) and the app's
/// resolver socket both talk to a DNS server on 127.0.0.1:53: the capture
/// sees the app's exchange whole and nothing of podpath's.
fn own_dns_inner() {
    let server = UdpSocket::bind("127.0.0.1:53").expect("bind :53 (root)");
    let own = UdpSocket::bind("127.0.0.1:0").expect("bind");
    own.connect("127.0.0.1:53").expect("connect");
    let own_port = own.local_addr().expect("addr").port();
    let app = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let app_port = app.local_addr().expect("addr").port();
    let config = LiveConfig {
        interfaces: vec!["lo".to_string()],
        own_dns: Some((own_port, "127.0.0.1:53".parse().expect("addr"))),
        ..base()
    };
    let mut source = LiveSource::open(&config).expect("open lo");
    let mut buf = [0u8; 600];
    for _ in 0..3 {
        own.send(&[0x11; 100]).expect("send");
        app.send_to(&[0x22; 100], "127.0.0.1:53").expect("send");
        for _ in 0..2 {
            let (n, from) = server.recv_from(&mut buf).expect("recv");
            server.send_to(&buf[..n], from).expect("answer");
        }
        assert_eq!(own.recv(&mut buf).expect("recv"), 100);
        assert_eq!(app.recv(&mut buf).expect("recv"), 100);
    }
    let frames = drain(&mut source, Duration::from_millis(300));
    let of = |p: u16| -> Vec<&Frame> {
        frames
            .iter()
            .filter(|f| matches!(f.ports(), Some((17, _, _, sp, dp)) if sp == p || dp == p))
            .collect()
    };
    assert_eq!(of(own_port).len(), 0, "podpath's own DNS: {frames:?}");
    let app_frames = of(app_port);
    assert_eq!(
        app_frames.len(),
        6,
        "the app's queries and answers: {frames:?}"
    );
    // DNS is kept whole (other UDP would be cut to 82 bytes).
    let lengths: Vec<usize> = app_frames.iter().map(|f| f.data.len()).collect();
    assert_eq!(lengths, [14 + 20 + 8 + 100; 6]);
}

#[cfg_attr(
    not(feature = "netns-tests"),
    ignore = "needs root and network namespaces: cargo test --features netns-tests"
)]
#[test]
fn veth_keeps_dns_whole_cuts_tcp_and_reports_direction() {
    const TEST: &str = "veth_keeps_dns_whole_cuts_tcp_and_reports_direction";
    match role() {
        Role::Outer => Lab::new("veth", 65535).run_inner(TEST),
        Role::Inner => veth_inner(TEST),
        Role::Peer => veth_peer(),
    }
}

const DNS_SIZE: usize = 20_000;
const TCP_SIZE: usize = 3_000;

/// In namespace B: a 20 000-byte datagram to A's port 53 (closed: A answers
/// with ICMP port unreachable), then one TCP exchange on port 8080.
fn veth_peer() {
    let listener = TcpListener::bind((B, 8080)).expect("listen");
    let udp = UdpSocket::bind((B, 0)).expect("bind");
    udp.send_to(&[0x5a; DNS_SIZE], (A, 53)).expect("send dns");
    println!("PEER READY");
    std::io::stdout().flush().expect("flush");
    let (mut conn, _) = listener.accept().expect("accept");
    let mut got = vec![0u8; TCP_SIZE];
    conn.read_exact(&mut got).expect("read");
    conn.write_all(&[0x42; TCP_SIZE]).expect("write");
    let mut rest = Vec::new();
    conn.read_to_end(&mut rest).expect("read to EOF");
}

fn spawn_peer(test: &str) -> Child {
    let peer_ns = std::env::var(PEER_NS).expect("peer namespace name");
    let mut child = this_test_in(&["ip", "netns", "exec", &peer_ns], test, "peer")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn peer");
    let stdout = child.stdout.take().expect("peer stdout");
    let mut lines = BufReader::new(stdout).lines();
    let ready = lines.any(|l| l.map(|l| l.contains("PEER READY")).unwrap_or(false));
    assert!(ready, "peer did not start");
    // Keep reading so the peer never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    child
}

fn veth_inner(test: &str) {
    let _timestamps = kernel_timestamps_on();
    let mut source = LiveSource::open(&base()).expect("open");
    assert_eq!(source.mode(), mode());
    let names: Vec<String> = source.interface_names().map(String::from).collect();
    assert_eq!(names, ["lo", "va"], "default: every interface that is up");
    let va = 1u16;

    let start = wall_ns();
    let mut peer = spawn_peer(test);
    let mut conn = TcpStream::connect_timeout(&SocketAddr::from((B, 8080)), Duration::from_secs(5))
        .expect("connect");
    conn.write_all(&[0x41; TCP_SIZE]).expect("write");
    let mut got = vec![0u8; TCP_SIZE];
    conn.read_exact(&mut got).expect("read");
    drop(conn);
    assert!(peer.wait().expect("peer").success(), "peer failed");
    let end = wall_ns();

    let frames = drain(&mut source, Duration::from_millis(300));
    let on_va: Vec<&Frame> = frames.iter().filter(|f| f.interface == va).collect();
    assert!(!on_va.is_empty());
    // The kernel's own IPv6 traffic (router solicitations with extension
    // headers) may pass too, at any time; ours is IPv4.
    for f in on_va.iter().filter(|f| f.ipv4().is_some()) {
        assert!(
            start <= f.ts && f.ts <= end,
            "timestamp {} in [{start}, {end}]: {f:?}",
            f.ts
        );
    }

    // DNS-port datagram: whole, one frame (MTU 65535), from B, incoming.
    let dns: Vec<&&Frame> = on_va
        .iter()
        .filter(|f| f.ports() == Some((17, B, A, f.ports().map_or(0, |p| p.3), 53)))
        .collect();
    assert_eq!(dns.len(), 1, "{on_va:?}");
    let dns = dns[0];
    assert_eq!(dns.orig_len as usize, 14 + 20 + 8 + DNS_SIZE);
    assert_eq!(dns.data.len(), 14 + 20 + 8 + DNS_SIZE);
    assert!(dns.data[42..].iter().all(|&b| b == 0x5a));
    assert_eq!(dns.packet_type, Some(PacketType::Host));

    // A's port unreachable for it: ICMP error, outgoing, quoted header kept.
    let icmp: Vec<&&Frame> = on_va
        .iter()
        .filter(|f| matches!(f.ipv4(), Some((1, src, dst, _, _)) if src == A && dst == B))
        .collect();
    assert_eq!(icmp.len(), 1, "{on_va:?}");
    assert_eq!(icmp[0].packet_type, Some(PacketType::Outgoing));
    assert_eq!(icmp[0].data.get(34), Some(&3), "destination unreachable");
    assert_eq!(icmp[0].data.len(), 202);
    assert!(icmp[0].orig_len > 202);

    // TCP: the SYN leaves A, the SYN-ACK arrives.
    let tcp = |src: Ipv4Addr| {
        on_va
            .iter()
            .filter(move |f| matches!(f.ports(), Some((6, s, _, _, _)) if s == src))
            .copied()
    };
    let syn = tcp(A).find(|f| f.tcp().is_some_and(|(fl, _)| fl & 0x12 == 0x02));
    assert_eq!(syn.and_then(|f| f.packet_type), Some(PacketType::Outgoing));
    let syn_ack = tcp(B).find(|f| f.tcp().is_some_and(|(fl, _)| fl & 0x12 == 0x12));
    assert_eq!(syn_ack.and_then(|f| f.packet_type), Some(PacketType::Host));

    // Data segments: cut to the snap (14 + 60 + 60 + 1024), sizes from the IP
    // header intact, all bytes accounted for in each direction.
    for (src, dir, byte) in [(A, PacketType::Outgoing, 0x41), (B, PacketType::Host, 0x42)] {
        let data: Vec<&Frame> = tcp(src)
            .filter(|f| f.tcp().is_some_and(|t| t.1 > 0))
            .collect();
        let total: usize = data.iter().filter_map(|f| f.tcp()).map(|t| t.1).sum();
        assert_eq!(total, TCP_SIZE, "{src}: {data:?}");
        for f in &data {
            assert_eq!(f.packet_type, Some(dir));
            let ip_total = f.ipv4().map_or(0, |t| t.4);
            assert_eq!(f.orig_len as usize, 14 + ip_total);
            assert_eq!(f.data.len(), (f.orig_len as usize).min(1158));
            assert_eq!(f.data.last(), Some(&byte));
        }
        assert!(data
            .iter()
            .any(|f| f.data.len() == 1158 && f.orig_len > 1158));
    }

    let stats = source.stats();
    let names: Vec<&str> = stats.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["lo", "va"]);
    assert!(stats[1].received >= on_va.len() as u64, "{stats:?}");
    assert!(stats.iter().all(|s| s.dropped == 0), "{stats:?}");
}

#[cfg_attr(
    not(feature = "netns-tests"),
    ignore = "needs root and network namespaces: cargo test --features netns-tests"
)]
#[test]
fn pure_acks_are_dropped_in_the_kernel_except_dns() {
    const TEST: &str = "pure_acks_are_dropped_in_the_kernel_except_dns";
    match role() {
        Role::Outer => Lab::new("ack", 65535).run_inner(TEST),
        Role::Peer => {}
        Role::Inner => pure_acks_inner(),
    }
}

/// A TCP frame of either family: (source port, destination port, flags,
/// payload length from the IP header).
fn tcp_fields(f: &Frame) -> Option<(u16, u16, u8, usize)> {
    let d = &f.data;
    let (l4, l4_len) = match d.get(12..14)? {
        [0x08, 0x00] => {
            let ihl = usize::from(d.get(14)? & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([*d.get(16)?, *d.get(17)?]));
            (*d.get(23)? == 6).then_some((14 + ihl, total.checked_sub(ihl)?))?
        }
        [0x86, 0xdd] => (*d.get(20)? == 6).then_some((
            54,
            usize::from(u16::from_be_bytes([*d.get(18)?, *d.get(19)?])),
        ))?,
        _ => return None,
    };
    let port = |at: usize| Some(u16::from_be_bytes([*d.get(at)?, *d.get(at + 1)?]));
    let doff = usize::from(d.get(l4 + 12)? >> 4) * 4;
    Some((
        port(l4)?,
        port(l4 + 2)?,
        *d.get(l4 + 13)?,
        l4_len.checked_sub(doff)?,
    ))
}

/// Two captures on `lo` side by side, one dropping pure ACKs (the default)
/// and one keeping them, over TCP exchanges on both families, to a plain
/// port and to port 53: the first sees every segment the second sees except
/// the pure ACKs of the plain port; DNS keeps its ACKs.
fn pure_acks_inner() {
    let open = |drop_pure_acks| {
        LiveSource::open(&LiveConfig {
            interfaces: vec!["lo".to_string()],
            drop_pure_acks,
            ..base()
        })
        .expect("open lo")
    };
    let mut dropping = open(true);
    let mut keeping = open(false);
    let mut ports = Vec::new();
    for addr in ["127.0.0.1:0", "[::1]:0", "127.0.0.1:53", "[::1]:53"] {
        let listener = TcpListener::bind(addr).expect("listen (root for :53)");
        let to = listener.local_addr().expect("addr");
        ports.push(to.port());
        // The server reads three writes (acknowledging each while it has
        // nothing to send), answers, and closes after the client.
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().expect("accept");
            let mut got = [0u8; 300];
            conn.read_exact(&mut got).expect("read");
            conn.write_all(&[0x42; 200]).expect("write");
            let mut rest = Vec::new();
            conn.read_to_end(&mut rest).expect("read to EOF");
        });
        let mut conn = TcpStream::connect(to).expect("connect");
        for _ in 0..3 {
            conn.write_all(&[0x41; 100]).expect("write");
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut got = [0u8; 200];
        conn.read_exact(&mut got).expect("read");
        drop(conn);
        server.join().expect("server");
    }
    let ours = |source: &mut LiveSource| -> Vec<(u16, u16, u8, usize)> {
        drain(source, Duration::from_millis(300))
            .iter()
            .filter_map(tcp_fields)
            .filter(|t| ports.contains(&t.0) || ports.contains(&t.1))
            .collect()
    };
    let seen = ours(&mut dropping);
    let all = ours(&mut keeping);
    let pure = |t: &&(u16, u16, u8, usize)| t.2 & 0x07 == 0 && t.3 == 0;
    let dns = |t: &&(u16, u16, u8, usize)| t.0 == 53 || t.1 == 53;
    // Each connection has at least the handshake's ACK and the one of the
    // last FIN as pure ACKs; 53 is in both lists twice (two families).
    let all_pure: Vec<_> = all.iter().filter(pure).collect();
    assert!(all_pure.iter().filter(|t| !dns(t)).count() >= 4, "{all:?}");
    assert!(all_pure.iter().filter(|t| dns(t)).count() >= 4, "{all:?}");
    let expected: Vec<_> = all.iter().filter(|t| !pure(t) || dns(t)).collect();
    assert_eq!(seen.iter().collect::<Vec<_>>(), expected);
    // Every handshake, close and payload byte of each connection is still
    // there.
    let mut connections: Vec<(u16, u16)> =
        seen.iter().map(|t| (t.0.min(t.1), t.0.max(t.1))).collect();
    connections.sort_unstable();
    connections.dedup();
    assert_eq!(connections.len(), 4, "{seen:?}");
    for c in connections {
        let of: Vec<_> = seen
            .iter()
            .filter(|t| (t.0.min(t.1), t.0.max(t.1)) == c)
            .collect();
        assert_eq!(of.iter().map(|t| t.3).sum::<usize>(), 500, "{c:?}: {of:?}");
        let flags = |f: u8| of.iter().filter(|t| t.2 & f != 0).count();
        assert_eq!(flags(0x02), 2, "SYN and SYN-ACK: {of:?}");
        assert_eq!(flags(0x01), 2, "a FIN each way: {of:?}");
    }
    // The kernel never queued them: its counters differ by exactly those.
    let (d, k) = (dropping.stats(), keeping.stats());
    assert_eq!(
        k[0].received - d[0].received,
        all_pure.iter().filter(|t| !dns(t)).count() as u64,
        "{d:?} {k:?}"
    );
}

#[cfg_attr(
    not(feature = "netns-tests"),
    ignore = "needs root and network namespaces: cargo test --features netns-tests"
)]
#[test]
fn frames_from_several_interfaces_come_in_time_order() {
    const TEST: &str = "frames_from_several_interfaces_come_in_time_order";
    match role() {
        Role::Outer => Lab::new("order", 65535).run_inner(TEST),
        Role::Peer => {}
        Role::Inner => order_inner(),
    }
}

/// 50 datagrams on `lo`, 50 over `va`, 50 on `lo` again, all queued before
/// the first read: the source must yield them in that order, not
/// alternating between the two queues.
fn order_inner() {
    let _timestamps = kernel_timestamps_on();
    let mut source = LiveSource::open(&base()).expect("open");
    assert_eq!(source.mode(), mode());
    let names: Vec<String> = source.interface_names().map(String::from).collect();
    assert_eq!(names, ["lo", "va"]);
    let tx = UdpSocket::bind("0.0.0.0:0").expect("bind");
    let rx = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let lo_port = rx.local_addr().expect("addr").port();
    let va_port = 9999;
    // Resolve B's MAC first so no datagram waits in the neighbour queue.
    tx.send_to(b"prime", (B, va_port)).expect("send");
    std::thread::sleep(Duration::from_millis(100));
    for (addr, port) in [
        (Ipv4Addr::LOCALHOST, lo_port),
        (B, va_port),
        (Ipv4Addr::LOCALHOST, lo_port),
    ] {
        for _ in 0..50 {
            tx.send_to(b"ordered", (addr, port)).expect("send");
        }
    }
    let frames = drain(&mut source, Duration::from_millis(300));
    let disorder: Vec<(usize, u16, i64)> = frames
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w[1].ts < w[0].ts)
        .map(|(i, w)| (i, w[1].interface, w[1].ts as i64 - w[0].ts as i64))
        .collect();
    if !disorder.is_empty() {
        let t0 = frames[0].ts;
        for (i, f) in frames.iter().enumerate() {
            eprintln!(
                "{i} if{} {:?} +{}us {:?} {:?}",
                f.interface,
                f.packet_type,
                (f.ts - t0.min(f.ts)) / 1000,
                f.ports(),
                f.ipv4().map(|t| t.0)
            );
        }
    }
    assert!(
        disorder.is_empty(),
        "out of order: {disorder:?} of {}",
        frames.len()
    );
    let ours: Vec<u16> = frames
        .iter()
        .filter(|f| {
            f.data.ends_with(b"ordered")
                && matches!(f.ports(), Some((17, _, _, _, p)) if p == lo_port || p == va_port)
        })
        .map(|f| f.interface)
        .collect();
    let expected: Vec<u16> = [0u16, 1, 0].iter().flat_map(|&i| [i; 50]).collect();
    assert_eq!(ours, expected);
}

#[cfg_attr(
    not(feature = "netns-tests"),
    ignore = "needs root and network namespaces: cargo test --features netns-tests"
)]
#[test]
fn ipv6_dns_is_whole_other_udp_cut_neighbour_discovery_dropped() {
    const TEST: &str = "ipv6_dns_is_whole_other_udp_cut_neighbour_discovery_dropped";
    match role() {
        Role::Outer => Lab::new("ipv6", 1500).run_inner(TEST),
        Role::Peer => {}
        Role::Inner => ipv6_inner(),
    }
}

/// Frame fields for IPv6: (next header, payload length, first byte after the
/// fixed header).
fn ipv6_fields(f: &Frame) -> Option<(u8, usize, u8)> {
    if f.data.get(12..14)? != [0x86, 0xdd] {
        return None;
    }
    let plen = usize::from(u16::from_be_bytes([*f.data.get(18)?, *f.data.get(19)?]));
    Some((*f.data.get(20)?, plen, *f.data.get(54)?))
}

/// Only A sends: B's kernel answers the closed ports with ICMPv6 errors, and
/// the first datagram makes both kernels run neighbour discovery.
fn ipv6_inner() {
    let _timestamps = kernel_timestamps_on();
    let config = LiveConfig {
        interfaces: vec!["va".to_string()],
        ..base()
    };
    let mut source = LiveSource::open(&config).expect("open va");
    let b: std::net::Ipv6Addr = "fd00:250::2".parse().expect("addr");
    let udp = UdpSocket::bind("[fd00:250::1]:0").expect("bind");
    udp.send_to(&[0x5a; 1200], (b, 53)).expect("send dns");
    udp.send_to(&[0x33; 1200], (b, 9999)).expect("send other");
    // Neighbour discovery on a fresh link can take a second.
    let mut frames = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline
        && frames
            .iter()
            .filter(|f| ipv6_fields(f).is_some_and(|x| x.0 == 58 && x.2 == 1))
            .count()
            < 2
    {
        frames.extend(drain(&mut source, Duration::from_millis(100)));
    }
    let v6: Vec<(&Frame, (u8, usize, u8))> = frames
        .iter()
        .filter_map(|f| ipv6_fields(f).map(|x| (f, x)))
        .collect();

    let udp_out: Vec<&(&Frame, (u8, usize, u8))> = v6.iter().filter(|(_, x)| x.0 == 17).collect();
    assert_eq!(udp_out.len(), 2, "{v6:?}");
    for (f, (_, plen, _)) in &udp_out {
        assert_eq!(f.packet_type, Some(PacketType::Outgoing));
        assert_eq!(f.orig_len as usize, 14 + 40 + plen);
        let dport = u16::from_be_bytes([f.data[56], f.data[57]]);
        let kept = if dport == 53 { 14 + 40 + 8 + 1200 } else { 82 };
        assert_eq!(f.data.len(), kept, "port {dport}");
    }
    // ICMPv6: the two port-unreachable errors (type 1) come back cut to 202
    // bytes; neighbour solicitations and advertisements (135, 136) and
    // router solicitations (133) are dropped in the kernel.
    let icmp: Vec<&(&Frame, (u8, usize, u8))> = v6.iter().filter(|(_, x)| x.0 == 58).collect();
    assert_eq!(icmp.len(), 2, "{v6:?}");
    // MLD reports (hop-by-hop header, then ICMPv6) are dropped too.
    assert!(v6.iter().all(|(_, x)| x.0 != 0), "{v6:?}");
    for (f, (_, _, icmp_type)) in &icmp {
        assert_eq!(*icmp_type, 1);
        assert_eq!(f.packet_type, Some(PacketType::Host));
        assert_eq!(f.data.len(), 202);
    }
}

#[cfg_attr(
    not(feature = "netns-tests"),
    ignore = "needs root and network namespaces: cargo test --features netns-tests"
)]
#[test]
fn kernel_drops_are_counted_when_the_buffer_overflows() {
    const TEST: &str = "kernel_drops_are_counted_when_the_buffer_overflows";
    match role() {
        Role::Outer => Lab::new("drop", 65535).run_inner(TEST),
        Role::Peer => {}
        Role::Inner => drops_inner(),
    }
}

fn drops_inner() {
    const N: u64 = 2000;
    // The kernel raises a tiny receive buffer to its minimum (a few frames);
    // the smallest ring is 4 blocks of 4 KiB (~90 of these frames).
    let config = LiveConfig {
        interfaces: vec!["lo".to_string()],
        rcvbuf: Some(1),
        ring_size: 1,
        ..base()
    };
    let _timestamps = kernel_timestamps_on();
    let mut source = LiveSource::open(&config).expect("open lo");
    let rx = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let tx = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let to = rx.local_addr().expect("addr");
    for _ in 0..N {
        tx.send_to(&[7; 100], to).expect("send");
    }
    let stats = source.stats();
    assert!(stats[0].dropped > 0, "{stats:?}");
    assert!(
        stats[0].received >= N,
        "received counts the dropped too: {stats:?}"
    );
    let read = drain(&mut source, Duration::from_millis(100)).len() as u64;
    let after = source.stats();
    assert_eq!(after[0].dropped, stats[0].dropped, "nothing sent since");
    assert_eq!(read, after[0].received - after[0].dropped, "{after:?}");
}

#[cfg_attr(
    not(feature = "netns-tests"),
    ignore = "needs root and network namespaces: cargo test --features netns-tests"
)]
#[test]
fn ip_fragments_of_dns_arrive_whole() {
    const TEST: &str = "ip_fragments_of_dns_arrive_whole";
    match role() {
        Role::Outer => Lab::new("frag", 1500).run_inner(TEST),
        Role::Inner => fragments_inner(TEST),
        Role::Peer => {
            let udp = UdpSocket::bind((B, 0)).expect("bind");
            udp.send_to(&[0x5a; DNS_SIZE], (A, 53)).expect("send dns");
            udp.send_to(&[0x33; DNS_SIZE], (A, 9999))
                .expect("send other");
        }
    }
}

fn fragments_inner(test: &str) {
    let config = LiveConfig {
        interfaces: vec!["va".to_string()],
        ..base()
    };
    let _timestamps = kernel_timestamps_on();
    let mut source = LiveSource::open(&config).expect("open va");
    let peer_ns = std::env::var(PEER_NS).expect("peer namespace name");
    let out = this_test_in(&["ip", "netns", "exec", &peer_ns], test, "peer")
        .output()
        .expect("run peer");
    assert_ran(test, &out);
    let frames = drain(&mut source, Duration::from_millis(300));
    // (IP identification, fragment offset in bytes, frame)
    let frags: Vec<(u16, usize, &Frame)> = frames
        .iter()
        .filter(|f| matches!(f.ipv4(), Some((17, src, _, _, _)) if src == B))
        .map(|f| {
            let id = u16::from_be_bytes([f.data[18], f.data[19]]);
            let off = usize::from(u16::from_be_bytes([f.data[20], f.data[21]]) & 0x1fff) * 8;
            (id, off, f)
        })
        .collect();
    let firsts: Vec<&(u16, usize, &Frame)> = frags.iter().filter(|x| x.1 == 0).collect();
    assert_eq!(firsts.len(), 2, "{frags:?}");
    for (id, _, first) in firsts {
        let dns = first.ports().map(|p| p.4) == Some(53);
        let datagram: Vec<&&Frame> = frags.iter().filter(|x| x.0 == *id).map(|x| &x.2).collect();
        assert!(datagram.len() > 10, "MTU 1500 fragments 20 008 bytes");
        let ip_payload: usize = datagram
            .iter()
            .filter_map(|f| f.ipv4().map(|t| t.4 - t.3))
            .sum();
        assert_eq!(ip_payload, 8 + DNS_SIZE);
        // Later fragments have no ports: always whole. The first one is
        // whole for DNS and cut to the UDP headers otherwise.
        for f in &datagram {
            assert_eq!(f.orig_len as usize, 14 + f.ipv4().map_or(0, |t| t.4));
        }
        let first_len = if dns { first.orig_len as usize } else { 82 };
        assert_eq!(first.data.len(), first_len);
        assert!(frags
            .iter()
            .filter(|x| x.0 == *id && x.1 > 0)
            .all(|x| x.2.data.len() == x.2.orig_len as usize));
    }
}

#[cfg_attr(
    not(feature = "netns-tests"),
    ignore = "needs root and network namespaces: cargo test --features netns-tests"
)]
#[test]
fn capture_runs_as_non_root_with_only_cap_net_raw() {
    const TEST: &str = "capture_runs_as_non_root_with_only_cap_net_raw";
    match role() {
        Role::Outer => {
            let lab = Lab::new("caps", 65535);
            #[rustfmt::skip]
            let prefix = ["ip", "netns", "exec", &lab.ns,
                "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                "--inh-caps=-all,+net_raw", "--ambient-caps=-all,+net_raw",
                "--bounding-set=-all,+net_raw", "--"];
            let exe = WorldExecutable::new(TEST);
            for mode in MODES {
                let out = exe
                    .command(&prefix, TEST, "inner")
                    .env(MODE, mode)
                    .output()
                    .expect("spawn");
                assert_ran(&format!("{TEST} ({mode})"), &out);
            }
        }
        Role::Peer => {}
        Role::Inner => {
            let status = std::fs::read_to_string("/proc/self/status").expect("status");
            assert!(status
                .lines()
                .any(|l| l.starts_with("Uid:") && l.contains("65534")));
            // CapEff: only CAP_NET_RAW (bit 13).
            assert!(
                status.lines().any(|l| l == "CapEff:\t0000000000002000"),
                "{status}"
            );
            let mut source = LiveSource::open(&LiveConfig {
                interfaces: vec!["lo".to_string()],
                ..base()
            })
            .expect("CAP_NET_RAW is enough to capture");
            let rx = UdpSocket::bind("127.0.0.1:0").expect("bind");
            let port = rx.local_addr().expect("addr").port();
            UdpSocket::bind("127.0.0.1:0")
                .expect("bind")
                .send_to(b"unprivileged", ("127.0.0.1", port))
                .expect("send");
            let frames = drain(&mut source, Duration::from_millis(100));
            let seen = frames
                .iter()
                .filter(|f| matches!(f.ports(), Some((17, _, _, _, p)) if p == port))
                .count();
            assert_eq!(seen, 1);
            // Without CAP_NET_ADMIN the buffer falls back to SO_RCVBUF,
            // capped by net.core.rmem_max; stats still work.
            assert_eq!(source.stats()[0].dropped, 0);
        }
    }
}

/// Runs without the namespace gate: as root it drops to uid 65534 with no
/// capabilities; as any other user it already lacks CAP_NET_RAW.
#[test]
fn capture_without_cap_net_raw_names_the_capability() {
    const TEST: &str = "capture_without_cap_net_raw_names_the_capability";
    match role() {
        Role::Outer => {
            let root = Command::new("id")
                .arg("-u")
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
                .unwrap_or(false);
            #[rustfmt::skip]
            let prefix: &[&str] = if root {
                &["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                  "--inh-caps=-all", "--bounding-set=-all", "--"]
            } else {
                &["env"]
            };
            let out = WorldExecutable::new(TEST)
                .command(prefix, TEST, "inner")
                .output()
                .expect("spawn");
            assert_ran(TEST, &out);
        }
        Role::Peer => {}
        Role::Inner => {
            let err = LiveSource::open(&LiveConfig {
                interfaces: vec!["lo".to_string()],
                ..base()
            })
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
            assert!(
                err.starts_with("capture: lo: socket(AF_PACKET) failed: Operation not permitted"),
                "{err}"
            );
            // The cause read from the process: as root the outer role
            // emptied the bounding set; any other user has no file capability.
            assert!(
                err.contains("CAP_NET_RAW is not in the capability bounding set")
                    && err.contains("[cause=not_in_bounding_set")
                    || err.contains("the binary has no file capability")
                        && err.contains("[cause=no_file_capability"),
                "{err}"
            );
        }
    }
}

#[cfg_attr(
    not(feature = "netns-tests"),
    ignore = "needs root and network namespaces: cargo test --features netns-tests"
)]
#[test]
fn interface_down_neither_spins_nor_ends_the_capture() {
    const TEST: &str = "interface_down_neither_spins_nor_ends_the_capture";
    match role() {
        Role::Outer => Lab::new("down", 1500).run_inner(TEST),
        Role::Peer => {}
        Role::Inner => down_inner(),
    }
}

/// CPU seconds this process has used (utime + stime).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("stat");
    let fields: Vec<&str> = stat.rsplit_once(") ").expect("comm").1.split(' ').collect();
    let ticks: f64 =
        fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
    ticks / 100.0
}

/// `va` goes down while captured: the kernel flags the socket (ENETDOWN),
/// which `poll` reports until it is read. The source must clear it (no busy
/// loop: it stays idle at a few % of a core), keep going, and see frames
/// again once `va` is back up.
fn down_inner() {
    let config = LiveConfig {
        interfaces: vec!["va".to_string()],
        poll_interval: Duration::from_millis(50),
        ..base()
    };
    let mut source = LiveSource::open(&config).expect("open va");
    // A busy loop inside `next_packet` would never return: fail instead of
    // hanging the suite.
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(20));
        eprintln!("next_packet did not return within 20 s: busy loop while the interface was down");
        std::process::exit(1);
    });
    sh(&["ip", "link", "set", "va", "down"]);
    let cpu0 = cpu_seconds();
    let start = Instant::now();
    drain(&mut source, Duration::from_millis(1500));
    let used = cpu_seconds() - cpu0;
    let wall = start.elapsed().as_secs_f64();
    assert!(
        used < 0.3 * wall,
        "{used:.2} s of CPU in {wall:.2} s while the interface was down"
    );
    sh(&["ip", "link", "set", "va", "up"]);
    std::thread::sleep(Duration::from_millis(200));
    let tx = UdpSocket::bind("0.0.0.0:0").expect("bind");
    for _ in 0..5 {
        tx.send_to(b"after down", (B, 9999)).expect("send");
        std::thread::sleep(Duration::from_millis(20));
    }
    let frames = drain(&mut source, Duration::from_millis(300));
    let seen = frames
        .iter()
        .filter(|f| f.data.ends_with(b"after down"))
        .count();
    assert!(seen >= 1, "no frame after the interface came back up");
}

// ---------------------------------------------------------------------------
// `podpath run` as a process: capture failure is a state, never an exit, and
// the metrics port is dual-stack.

/// The `podpath` binary, copied where any user can run it; removed on drop.
struct PodpathBinary {
    dir: std::path::PathBuf,
}

impl PodpathBinary {
    fn new(tag: &str) -> PodpathBinary {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("pp-run-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let bin = dir.join("podpath");
        std::fs::copy(env!("CARGO_BIN_EXE_podpath"), &bin).expect("copy podpath");
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        PodpathBinary { dir }
    }

    /// Starts `prefix... podpath run args...`, its log (debug) in a file.
    fn run(&self, prefix: &[&str], args: &[&str]) -> Podpath {
        let log = self.dir.join(format!("run-{}.log", args.len()));
        let file = std::fs::File::create(&log).expect("log file");
        let mut cmd = Command::new(if prefix.is_empty() {
            self.dir.join("podpath").into_os_string()
        } else {
            prefix[0].into()
        });
        if !prefix.is_empty() {
            cmd.args(&prefix[1..]).arg(self.dir.join("podpath"));
        }
        let child = cmd
            .arg("run")
            .args(args)
            .env("PODPATH_LOG", "podpath=debug")
            .env_remove("POD_IP")
            .env_remove("POD_IPS")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .stdout(Stdio::null())
            .stderr(file)
            .current_dir(&self.dir)
            .spawn()
            .expect("spawn podpath");
        Podpath { child, log }
    }
}

impl Drop for PodpathBinary {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A running `podpath run`; killed on drop if still running.
struct Podpath {
    child: Child,
    log: std::path::PathBuf,
}

impl Podpath {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn assert_running(&mut self) {
        let status = self.child.try_wait().expect("try_wait");
        assert!(
            status.is_none(),
            "podpath exited ({status:?}); log:\n{}",
            self.log()
        );
    }

    /// SIGTERM; it must exit 0.
    fn stop(mut self) -> String {
        sh(&["kill", "-TERM", &self.child.id().to_string()]);
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                assert!(status.success(), "exit {status:?}; log:\n{}", self.log());
                return self.log();
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "no exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Podpath {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GET `path` from `addr` (this namespace): status and body; (0, "") when
/// nothing answers.
fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return (0, String::new());
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let req = format!("GET {path} HTTP/1.1\r\nHost: podpath\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return (0, String::new());
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let code = out
        .get(9..12)
        .and_then(|c| c.parse().ok())
        .unwrap_or_default();
    let body = out
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (code, body)
}

/// Waits until podpath serves `/healthz` on `addr`.
fn wait_serving(p: &mut Podpath, addr: SocketAddr) {
    let start = Instant::now();
    while http_get(addr, "/healthz").0 != 200 {
        p.assert_running();
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "podpath does not serve on {addr}; log:\n{}",
            p.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Scrapes until every line of `want` is in the exposition (and none of
/// `absent`), or fails after `within`.
fn wait_metrics(
    p: &mut Podpath,
    addr: SocketAddr,
    want: &[&str],
    absent: &[&str],
    within: Duration,
) -> String {
    let start = Instant::now();
    loop {
        p.assert_running();
        let (code, body) = http_get(addr, "/metrics");
        let lines: Vec<&str> = body.lines().collect();
        if code == 200
            && want.iter().all(|w| lines.contains(w))
            && absent.iter().all(|a| !body.contains(a))
        {
            return body;
        }
        assert!(
            start.elapsed() < within,
            "after {within:?} the scrape lacks {want:?} or holds {absent:?}:\n{}\nlog:\n{}",
            body.lines()
                .filter(|l| l.starts_with("podpath_capture"))
                .collect::<Vec<_>>()
                .join("\n"),
            p.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs `test`'s inner body once in namespace A (as root).
fn run_inner_once(lab: &Lab, test: &str) {
    let out = this_test_in(&["ip", "netns", "exec", &lab.ns], test, "inner")
        .env(PEER_NS, &lab.peer)
        .output()
        .expect("spawn inner test");
    assert_ran(test, &out);
}

const METRICS_V4: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 9809);

#[cfg_attr(
    not(feature = "netns-tests"),
    ignore = "needs root and network namespaces: cargo test --features netns-tests"
)]
#[test]
fn run_without_cap_net_raw_stays_up_ready_and_says_why() {
    const TEST: &str = "run_without_cap_net_raw_stays_up_ready_and_says_why";
    match role() {
        Role::Outer => run_inner_once(&Lab::new("nocap", 1500), TEST),
        Role::Peer => {}
        Role::Inner => {
            let bin = PodpathBinary::new("nocap");
            #[rustfmt::skip]
            let mut p = bin.run(
                &["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                  "--inh-caps=-all", "--bounding-set=-all", "--"],
                &["-i", "lo"],
            );
            wait_serving(&mut p, METRICS_V4);
            // At least two retries (after 1 s and 2 s more) fail the same way.
            std::thread::sleep(Duration::from_millis(3500));
            p.assert_running();
            assert_eq!(http_get(METRICS_V4, "/healthz").0, 200);
            assert_eq!(
                http_get(METRICS_V4, "/readyz").0,
                200,
                "ready without capture"
            );
            let (code, status) = http_get(METRICS_V4, "/status");
            assert_eq!(code, 200);
            assert!(
                status.starts_with("lo: not capturing (permission_denied): socket(AF_PACKET)")
                    && status.contains("CAP_NET_RAW is not in the capability bounding set")
                    && status.contains("[cause=not_in_bounding_set ")
                    && status.contains("; remedy: as the cause names"),
                "{status}"
            );
            wait_metrics(
                &mut p,
                METRICS_V4,
                &[
                    r#"podpath_capture_up{interface="lo"} 0"#,
                    r#"podpath_capture_error_info{interface="lo",reason="permission_denied"} 1"#,
                ],
                &[],
                Duration::from_secs(2),
            );
            let log = p.stop();
            let warned = log
                .lines()
                .filter(|l| l.contains("WARN") && l.contains("permission_denied"))
                .collect::<Vec<_>>();
            assert_eq!(warned.len(), 1, "logged once per cause:\n{log}");
            assert!(
                warned[0].contains("CAP_NET_RAW") && warned[0].contains("capabilities.add"),
                "the cause and its remedy: {}",
                warned[0]
            );
            let retries = log.matches("capture retry failed").count();
            assert!(retries >= 2, "{retries} retries in 3.5 s:\n{log}");
        }
    }
}

#[cfg_attr(
    not(feature = "netns-tests"),
    ignore = "needs root and network namespaces: cargo test --features netns-tests"
)]
#[test]
fn run_recovers_interfaces_that_go_down_go_away_and_come_back() {
    const TEST: &str = "run_recovers_interfaces_that_go_down_go_away_and_come_back";
    match role() {
        Role::Outer => run_inner_once(&Lab::new("back", 1500), TEST),
        Role::Peer => {}
        Role::Inner => {
            let bin = PodpathBinary::new("back");
            let mut p = bin.run(&[], &["-i", "lo,va,vx"]);
            let up = |i: &str| format!(r#"podpath_capture_up{{interface="{i}"}} 1"#);
            let down = |i: &str| format!(r#"podpath_capture_up{{interface="{i}"}} 0"#);
            let why = |i: &str, r: &str| {
                format!(r#"podpath_capture_error_info{{interface="{i}",reason="{r}"}} 1"#)
            };
            let error_on = |i: &str| format!(r#"podpath_capture_error_info{{interface="{i}""#);
            let secs = Duration::from_secs;
            wait_serving(&mut p, METRICS_V4);
            // vx does not exist yet: the others capture.
            wait_metrics(
                &mut p,
                METRICS_V4,
                &[
                    &up("lo"),
                    &up("va"),
                    &down("vx"),
                    &why("vx", "interface_missing"),
                ],
                &[&error_on("lo"), &error_on("va")],
                secs(2),
            );
            // It appears: picked up at the next retry.
            add_vx();
            wait_metrics(
                &mut p,
                METRICS_V4,
                &[&up("vx")],
                &[&error_on("vx")],
                secs(10),
            );
            // va goes down, then up again: the socket is kept, and a frame
            // (or the next check) shows it up.
            sh(&["ip", "link", "set", "va", "down"]);
            wait_metrics(
                &mut p,
                METRICS_V4,
                &[&down("va"), &why("va", "interface_down")],
                &[],
                secs(3),
            );
            sh(&["ip", "link", "set", "va", "up"]);
            let tx = UdpSocket::bind("0.0.0.0:0").expect("bind");
            let start = Instant::now();
            loop {
                let _ = tx.send_to(b"va is back", (B, 9999));
                let (_, body) = http_get(METRICS_V4, "/metrics");
                if body.lines().any(|l| l == up("va")) && !body.contains(&error_on("va")) {
                    break;
                }
                assert!(start.elapsed() < secs(10), "va not back:\n{}", p.log());
                std::thread::sleep(Duration::from_millis(200));
            }
            // vx is deleted, then created again (a new index): reopened by name.
            sh(&["ip", "link", "del", "vx"]);
            wait_metrics(
                &mut p,
                METRICS_V4,
                &[&down("vx"), &why("vx", "interface_missing")],
                &[],
                secs(5),
            );
            add_vx();
            wait_metrics(
                &mut p,
                METRICS_V4,
                &[&up("vx")],
                &[&error_on("vx")],
                secs(20),
            );
            let before = packets(&http_get(METRICS_V4, "/metrics").1, "vx");
            let start = Instant::now();
            while packets(&http_get(METRICS_V4, "/metrics").1, "vx") <= before {
                let _ = tx.send_to(b"vx is back", ("10.251.0.2", 9999));
                assert!(start.elapsed() < secs(5), "no frame counted on the new vx");
                std::thread::sleep(Duration::from_millis(200));
            }
            wait_metrics(
                &mut p,
                METRICS_V4,
                &[&up("lo"), &up("va"), &up("vx")],
                &["podpath_capture_error_info{"],
                secs(1),
            );
            let (_, status) = http_get(METRICS_V4, "/status");
            assert_eq!(status, "lo: capturing\nva: capturing\nvx: capturing\n");
            let log = p.stop();
            assert_eq!(log.matches("capturing again").count(), 3, "{log}");
        }
    }
}

/// A veth `vx` 10.251.0.1/24 to the peer's `vy` 10.251.0.2/24.
fn add_vx() {
    let peer_ns = std::env::var(PEER_NS).expect("peer namespace");
    #[rustfmt::skip]
    sh(&["ip", "link", "add", "vx", "type", "veth", "peer", "name", "vy", "netns", &peer_ns]);
    sh(&["ip", "addr", "add", "10.251.0.1/24", "dev", "vx"]);
    sh(&[
        "ip",
        "-n",
        &peer_ns,
        "addr",
        "add",
        "10.251.0.2/24",
        "dev",
        "vy",
    ]);
    sh(&["ip", "-n", &peer_ns, "link", "set", "vy", "up"]);
    sh(&["ip", "link", "set", "vx", "up"]);
}

/// `podpath_capture_packets_total` of `interface` in a scrape.
fn packets(scrape: &str, interface: &str) -> f64 {
    let prefix = format!(r#"podpath_capture_packets_total{{interface="{interface}"}} "#);
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

const A6: &str = "fd00:250::1";
const B6: &str = "fd00:250::2";
/// A ClusterIP in the test's service range, served by B.
const SVC6: &str = "fd00:96::10";

/// A child process killed when the test body ends, passed or not.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The Service the v6 test looks up, by its fully qualified name; podpath
/// reports it in its short form (the namespace's search-list suffix is
/// stripped).
const SVC6_NAME: &str = "web";
const SVC6_FQDN: &str = "web.default.svc.cluster.local.";

/// In namespace B: a DNS server on port 53 answering AAAA for the Service
/// with the ClusterIP (5 s TTL, as CoreDNS does); anything else NXDOMAIN.
fn dns6_server() {
    use hickory_proto::op::{Message, MessageType, ResponseCode};
    use hickory_proto::rr::rdata::AAAA;
    use hickory_proto::rr::{RData, Record, RecordType};
    let socket = UdpSocket::bind(format!("[{B6}]:53")).expect("bind dns");
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            let Ok(q) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let mut r = Message::new(q.metadata.id, MessageType::Response, q.metadata.op_code);
            let svc: SocketAddr = format!("[{SVC6}]:0").parse().expect("addr");
            for query in &q.queries {
                r.add_query(query.clone());
                let name = query.name().to_ascii();
                if name == SVC6_FQDN && query.query_type() == RecordType::AAAA {
                    let std::net::IpAddr::V6(ip) = svc.ip() else {
                        continue;
                    };
                    r.add_answer(Record::from_rdata(
                        query.name().clone(),
                        5,
                        RData::AAAA(AAAA(ip)),
                    ));
                } else if name != SVC6_FQDN {
                    r.metadata.response_code = ResponseCode::NXDomain;
                }
            }
            if let Ok(bytes) = r.to_vec() {
                let _ = socket.send_to(&bytes, from);
            }
        }
    });
}

/// Looks `SVC6_FQDN` up (AAAA) at B's DNS server, as a resolver would:
/// the ClusterIP it answers.
fn resolve6() -> std::net::Ipv6Addr {
    use hickory_proto::op::{Message, MessageType, OpCode, Query};
    use hickory_proto::rr::{Name, RData, RecordType};
    let mut q = Message::new(0x6006, MessageType::Query, OpCode::Query);
    q.add_query(Query::query(
        Name::from_ascii(SVC6_FQDN).expect("name"),
        RecordType::AAAA,
    ));
    let socket = UdpSocket::bind("[::]:0").expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    socket
        .send_to(&q.to_vec().expect("encode"), format!("[{B6}]:53"))
        .expect("send query");
    let mut buf = [0u8; 1500];
    let (n, _) = socket.recv_from(&mut buf).expect("dns answer");
    let answer = Message::from_vec(&buf[..n]).expect("decode");
    answer
        .answers
        .iter()
        .find_map(|r| match r.data {
            RData::AAAA(a) => Some(a.0),
            _ => None,
        })
        .expect("an AAAA answer")
}

/// In namespace B: DNS, and HTTP on its pod address and on the ClusterIP,
/// one response per connection.
fn ipv6_peer() {
    // Never outlive a failed test body, which would hold its output open.
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(60));
        std::process::exit(0);
    });
    dns6_server();
    let listeners = [
        TcpListener::bind(format!("[{B6}]:8080")).expect("listen on B"),
        TcpListener::bind(format!("[{SVC6}]:80")).expect("listen on the ClusterIP"),
    ];
    println!("PEER READY");
    std::io::stdout().flush().expect("flush");
    let handles: Vec<_> = listeners
        .into_iter()
        .map(|l| {
            std::thread::spawn(move || {
                for mut conn in l.incoming().flatten() {
                    let mut buf = [0u8; 1024];
                    let _ = conn.read(&mut buf);
                    let _ = conn.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                    );
                }
            })
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
}

#[cfg_attr(
    not(feature = "netns-tests"),
    ignore = "needs root and network namespaces: cargo test --features netns-tests"
)]
#[test]
fn run_on_an_ipv6_only_pod_captures_attributes_and_serves_over_ipv6() {
    const TEST: &str = "run_on_an_ipv6_only_pod_captures_attributes_and_serves_over_ipv6";
    match role() {
        Role::Outer => {
            let lab = Lab::new("v6", 1500);
            // No IPv4 on the pod's link; the ClusterIP is B's and routed there.
            sh(&["ip", "-n", &lab.ns, "-4", "addr", "flush", "dev", "va"]);
            sh(&["ip", "-n", &lab.peer, "-4", "addr", "flush", "dev", "vb"]);
            sh(&[
                "ip",
                "-n",
                &lab.peer,
                "addr",
                "add",
                &format!("{SVC6}/128"),
                "dev",
                "lo",
            ]);
            #[rustfmt::skip]
            sh(&["ip", "-n", &lab.ns, "-6", "route", "add", "fd00:96::/112", "via", B6, "dev", "va"]);
            run_inner_once(&lab, TEST);
        }
        Role::Peer => ipv6_peer(),
        Role::Inner => {
            let _peer = KillOnDrop(spawn_peer(TEST));
            let peer_ns = std::env::var(PEER_NS).expect("peer namespace");
            let bin = PodpathBinary::new("v6");
            #[rustfmt::skip]
            let mut p = bin.run(&[], &[
                "--pod-cidr", "fd00:250::/64", "--service-cidr", "fd00:96::/112",
                "--pod-ip", A6, "--namespace", "default",
            ]);
            let v6: SocketAddr = "[::1]:9809".parse().expect("addr");
            wait_serving(&mut p, v6);
            wait_metrics(
                &mut p,
                v6,
                &[
                    r#"podpath_capture_up{interface="lo"} 1"#,
                    r#"podpath_capture_up{interface="va"} 1"#,
                ],
                &[],
                Duration::from_secs(2),
            );
            // Literal addresses first: once a lookup answered the ClusterIP,
            // connections to it count as that name's (within the TTL).
            for target in [format!("[{B6}]:8080"), format!("[{SVC6}]:80")] {
                let addr: SocketAddr = target.parse().expect("addr");
                let (code, body) = http_get(addr, "/");
                assert_eq!((code, body.as_str()), (200, "ok"), "{target}");
            }
            // A lookup over IPv6, then a connection to what it answered.
            let answered = resolve6();
            assert_eq!(answered.to_string(), SVC6);
            let (code, _) = http_get(SocketAddr::new(answered.into(), 80), "/");
            assert_eq!(code, 200);
            // Scraped from the peer over IPv6, as Prometheus would.
            let url = format!("http://[{A6}]:9809/metrics");
            let start = Instant::now();
            let scrape = loop {
                let out = Command::new("ip")
                    .args([
                        "netns",
                        "exec",
                        &peer_ns,
                        "curl",
                        "-sf",
                        "-g",
                        "--max-time",
                        "2",
                        &url,
                    ])
                    .output()
                    .expect("curl");
                let body = String::from_utf8_lossy(&out.stdout).into_owned();
                if out.status.success() && body.contains(r#"podpath_connections_total{path="dns""#)
                {
                    break body;
                }
                assert!(
                    start.elapsed() < Duration::from_secs(5),
                    "scrape over IPv6 from the peer: {} {body}",
                    out.status
                );
                std::thread::sleep(Duration::from_millis(200));
            };
            let count = |path: &str| -> f64 {
                scrape
                    .lines()
                    .filter(|l| {
                        l.starts_with(&format!(r#"podpath_connections_total{{path="{path}""#))
                    })
                    .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                    .sum()
            };
            assert_eq!(count("pod_ip"), 1.0, "{scrape}");
            assert_eq!(count("cluster_ip"), 1.0, "{scrape}");
            assert_eq!(count("dns"), 1.0, "{scrape}");
            assert!(
                scrape.lines().any(|l| l.starts_with(&format!(
                    r#"podpath_connections_total{{path="dns",target="cluster_ip",protocol="tcp",dns_name="{SVC6_NAME}",service="{SVC6_NAME}",namespace="default",port="80"}} 1"#
                ))),
                "{scrape}"
            );
            assert_eq!(count("external"), 0.0, "{scrape}");
            assert!(
                scrape
                    .lines()
                    .any(|l| l.starts_with(r#"podpath_http_requests_total{path="cluster_ip""#)),
                "{scrape}"
            );
            p.stop();
        }
    }
}

#[cfg_attr(
    not(feature = "netns-tests"),
    ignore = "needs root and network namespaces: cargo test --features netns-tests"
)]
#[test]
fn run_serves_ipv4_where_ipv6_is_disabled() {
    const TEST: &str = "run_serves_ipv4_where_ipv6_is_disabled";
    match role() {
        Role::Outer => {
            let lab = Lab::new("nov6", 1500);
            #[rustfmt::skip]
            sh(&["ip", "netns", "exec", &lab.ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
            run_inner_once(&lab, TEST);
        }
        Role::Peer => {}
        Role::Inner => {
            assert!(
                Command::new("ip")
                    .args(["-6", "addr", "show", "dev", "lo"])
                    .output()
                    .map(|o| !String::from_utf8_lossy(&o.stdout).contains("::1"))
                    .unwrap_or(false),
                "IPv6 is still on"
            );
            let peer_ns = std::env::var(PEER_NS).expect("peer namespace");
            let bin = PodpathBinary::new("nov6");
            let mut p = bin.run(&[], &[]);
            wait_serving(&mut p, METRICS_V4);
            // From the peer, to the pod's IPv4 address.
            let url = format!("http://{A}:9809/healthz");
            let out = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &peer_ns,
                    "curl",
                    "-sf",
                    "--max-time",
                    "2",
                    &url,
                ])
                .output()
                .expect("curl");
            assert!(out.status.success(), "{url}: {out:?}");
            wait_metrics(
                &mut p,
                METRICS_V4,
                &[
                    r#"podpath_capture_up{interface="lo"} 1"#,
                    r#"podpath_capture_up{interface="va"} 1"#,
                ],
                &[],
                Duration::from_secs(2),
            );
            p.stop();
        }
    }
}
