//! Captures on the named interfaces for a while with podpath's filter and
//! prints what was copied, what the frames measured, and the kernel's counters.
//!
//! `RCVBUF_MB=4 cargo run --release -p podpath-afpacket --example rate -- SECONDS IFACE...`

use std::time::{Duration, Instant};

use podpath_afpacket::{capture_filter, FilterSpec, Options, Poller, Socket};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let secs: u64 = args.next().ok_or("usage: rate SECONDS IFACE...")?.parse()?;
    let names: Vec<String> = args.collect();
    let options = match std::env::var("RCVBUF_MB") {
        Ok(mb) => Options {
            rcvbuf: Some(mb.parse::<usize>()? << 20),
        },
        Err(_) => Options::default(),
    };
    let mut sockets = Vec::new();
    for name in &names {
        let ifindex: u32 = std::fs::read_to_string(format!("/sys/class/net/{name}/ifindex"))?
            .trim()
            .parse()?;
        let spec = FilterSpec {
            loopback: name == "lo",
            ..FilterSpec::default()
        };
        sockets.push(Socket::open(ifindex, &capture_filter(&spec), &options)?);
    }
    let mut poller = Poller::new(&sockets);
    let mut buf = vec![0u8; 256 * 1024];
    let (mut frames, mut copied, mut wire) = (0u64, 0u64, 0u64);
    let until = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < until {
        if poller.wait(Duration::from_millis(200))? == 0 {
            continue;
        }
        for (i, s) in sockets.iter().enumerate() {
            if !poller.is_ready(i) {
                continue;
            }
            while let Some(r) = s.recv(&mut buf)? {
                frames += 1;
                copied += r.len as u64;
                wire += u64::from(r.orig_len);
            }
        }
    }
    for (name, s) in names.iter().zip(&sockets) {
        let st = s.stats()?;
        println!("{name}: kernel packets {} drops {}", st.packets, st.drops);
    }
    let granted = sockets
        .first()
        .map(|s| s.rcvbuf())
        .transpose()?
        .unwrap_or(0);
    println!("frames {frames} copied {copied} B wire {wire} B rcvbuf {granted} B");
    Ok(())
}
