//! `analyze` reads its files on the engine's thread, or on a thread of its
//! own (`ReadAhead`) with `PODPATH_ANALYZE_THREADS=2`; mapped when they are
//! regular files, read when they are pipes. Whichever way, the output must be the same, byte for
//! byte: every committed capture, alone and merged, cut mid-record, turned
//! into pcapng, piped through standard input, with a link type podpath
//! cannot decode and with a record too large to read, in the table, JSON and
//! exposition formats (its samples sorted: families print in hash order), and
//! the exit status and standard error with them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const FLAGS: &[&str] = &[
    "--service-cidr",
    "10.96.0.0/12",
    "--pod-cidr",
    "10.244.0.0/16",
];
const FORMATS: &[&str] = &["table", "json", "prometheus"];

/// What one run printed.
#[derive(Debug, PartialEq, Eq)]
struct Run {
    status: Option<i32>,
    stdout: String,
    stderr: String,
}

/// `podpath analyze --format FORMAT FLAGS FILES` with the given number of
/// threads; `stdin` is piped in when given (then FILES is `/dev/stdin`).
fn analyze(threads: &str, format: &str, files: &[PathBuf], stdin: Option<&[u8]>) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_podpath"))
        .env("PODPATH_ANALYZE_THREADS", threads)
        .env_remove("RUST_LOG")
        .args(["analyze", "--format", format])
        .args(FLAGS)
        .args(files)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run podpath");
    if let Some(bytes) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        let bytes = bytes.to_vec();
        // A pipe holds 64 KiB: write from another thread while podpath reads.
        std::thread::spawn(move || {
            let _ = pipe.write_all(&bytes);
        });
    }
    let out = child.wait_with_output().unwrap();
    Run {
        status: out.status.code(),
        stdout: String::from_utf8(out.stdout).expect("utf-8"),
        stderr: String::from_utf8(out.stderr).expect("utf-8"),
    }
}

/// Runs `files` both ways in every format and asserts the same output;
/// returns the JSON run (reading ahead) for further checks.
fn same_both_ways(what: &str, files: &[PathBuf], stdin: Option<&[u8]>) -> Run {
    let mut json = None;
    for format in FORMATS {
        let mut inline = analyze("1", format, files, stdin);
        let mut ahead = analyze("2", format, files, stdin);
        if *format == "prometheus" {
            inline.stdout = exposition(&inline.stdout);
            ahead.stdout = exposition(&ahead.stdout);
        }
        if inline != ahead {
            let first = inline
                .stdout
                .lines()
                .zip(ahead.stdout.lines())
                .position(|(a, b)| a != b);
            panic!(
                "{what} ({format}): one thread and two differ: status {:?} / {:?}, \
                 stderr {:?} / {:?}, first different line {first:?}: {:?} / {:?}",
                inline.status,
                ahead.status,
                inline.stderr,
                ahead.stderr,
                first.and_then(|i| inline.stdout.lines().nth(i)),
                first.and_then(|i| ahead.stdout.lines().nth(i)),
            );
        }
        if *format == "json" {
            json = Some(ahead);
        }
    }
    json.unwrap()
}

/// The exposition's samples in a fixed order, without the process's own
/// (CPU time, resident memory, open files): the series of a family come out
/// in hash order, which differs from run to run.
fn exposition(text: &str) -> String {
    let mut lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("process_"))
        .collect();
    lines.sort_unstable();
    lines.join("\n")
}

fn committed_captures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/captures");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.contains(".pcap"))
        })
        .collect();
    files.sort();
    files
}

/// Legacy pcap records: (seconds, microseconds, captured bytes, original length).
type Records = Vec<(u32, u32, Vec<u8>, u32)>;

/// The link type and records of a little-endian microsecond pcap (what
/// tcpdump writes, and every committed capture is).
fn legacy_records(bytes: &[u8]) -> (u32, Records) {
    let le = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    assert_eq!(
        &bytes[..4],
        &[0xd4, 0xc3, 0xb2, 0xa1],
        "little-endian µs pcap"
    );
    let link = le(20);
    let mut records = Vec::new();
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let caplen = le(at + 8) as usize;
        let data = bytes[at + 16..at + 16 + caplen].to_vec();
        records.push((le(at), le(at + 4), data, le(at + 12)));
        at += 16 + caplen;
    }
    assert_eq!(at, bytes.len());
    (link, records)
}

fn block(out: &mut Vec<u8>, kind: u32, body: &[u8]) {
    let len = (12 + body.len()) as u32;
    out.extend(kind.to_le_bytes());
    out.extend(len.to_le_bytes());
    out.extend(body);
    out.extend(len.to_le_bytes());
}

/// One pcapng section holding every input as an interface of its own
/// (default microsecond resolution), the frames of all merged in time order
/// (out of order, the report's order of lookups left pending at the end
/// varies from run to run, whichever way the file is read).
fn pcapng(inputs: &[(u32, Records)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut shb = 0x1A2B_3C4Du32.to_le_bytes().to_vec();
    shb.extend([1, 0, 0, 0]);
    shb.extend((-1i64).to_le_bytes());
    block(&mut out, 0x0A0D_0D0A, &shb);
    for (link, _) in inputs {
        let mut idb = (*link as u16).to_le_bytes().to_vec();
        idb.extend([0, 0]);
        idb.extend(262_144u32.to_le_bytes());
        block(&mut out, 1, &idb);
    }
    let mut frames: Vec<(u64, u32, &Vec<u8>, u32)> = Vec::new();
    for (iface, (_, records)) in inputs.iter().enumerate() {
        for (secs, micros, data, orig_len) in records {
            let ts = *secs as u64 * 1_000_000 + *micros as u64;
            frames.push((ts, iface as u32, data, *orig_len));
        }
    }
    frames.sort_by_key(|f| f.0);
    for (ts, iface, data, orig_len) in frames {
        let mut epb = iface.to_le_bytes().to_vec();
        epb.extend(((ts >> 32) as u32).to_le_bytes());
        epb.extend((ts as u32).to_le_bytes());
        epb.extend((data.len() as u32).to_le_bytes());
        epb.extend(orig_len.to_le_bytes());
        epb.extend(data);
        epb.resize(epb.len().next_multiple_of(4), 0);
        block(&mut out, 6, &epb);
    }
    out
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn packets(run: &Run) -> u64 {
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    json["stats"]["packets"].as_u64().unwrap()
}

#[test]
fn reading_ahead_changes_nothing_in_the_output() {
    let dir = TempDir(std::env::temp_dir().join(format!("podpath-ahead-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.0.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let captures = committed_captures();
    assert!(captures.len() >= 6, "{captures:?}");

    // The embedded seed capture.
    let run = same_both_ways("embedded", &[], None);
    assert_eq!(run.status, Some(0));

    let mut decoded = Vec::new();
    let mut total = 0;
    for path in &captures {
        let name = path.file_name().unwrap().to_str().unwrap();
        let bytes = std::fs::read(path).unwrap();
        let whole = same_both_ways(name, std::slice::from_ref(path), None);
        assert_eq!(whole.status, Some(0), "{name}: {}", whole.stderr);
        total += packets(&whole);

        // Cut inside its last record: the same counted skip both ways.
        let cut = write(&format!("cut-{name}"), &bytes[..bytes.len() - 10]);
        let run = same_both_ways(&format!("{name} cut"), &[cut], None);
        assert_eq!(packets(&run) + 1, packets(&whole), "{name}");
        assert!(
            run.stdout.contains("\"truncated_record\": 1"),
            "{}",
            run.stdout
        );

        decoded.push(legacy_records(&bytes));
    }
    // More frames than two batches hand over (256 each), so batches are
    // refilled and reused.
    assert!(total > 2 * 256, "{total} frames in the committed captures");

    // Every capture at once: the merge in timestamp order.
    let run = same_both_ways("all merged", &captures, None);
    assert_eq!(packets(&run), total);

    // The same frames as one pcapng file, one interface per capture: read
    // through pcap-parser, which copies out of the mapped file.
    let ng = pcapng(&decoded);
    let ng_path = write("all.pcapng", &ng);
    let run = same_both_ways("pcapng", std::slice::from_ref(&ng_path), None);
    assert_eq!(packets(&run), total);

    // Through a pipe: read in chunks, not mapped. The same report as the
    // mapped file, but for the input's name.
    let stdin = [PathBuf::from("/dev/stdin")];
    let seed_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/captures/seed-any.pcap");
    let seed = std::fs::read(&seed_path).unwrap();
    let piped = same_both_ways("legacy through a pipe", &stdin, Some(&seed));
    let mapped = analyze("2", "json", std::slice::from_ref(&seed_path), None);
    assert_eq!(
        piped.stdout,
        mapped
            .stdout
            .replace(seed_path.to_str().unwrap(), "/dev/stdin")
    );
    let piped = same_both_ways("pcapng through a pipe", &stdin, Some(&ng));
    let mapped = analyze("2", "json", std::slice::from_ref(&ng_path), None);
    assert_eq!(
        piped.stdout,
        mapped
            .stdout
            .replace(ng_path.to_str().unwrap(), "/dev/stdin")
    );

    // A link type podpath does not decode (LINKTYPE_USER0): every frame is
    // a counted skip.
    let mut user0 = seed.clone();
    user0[20..24].copy_from_slice(&147u32.to_le_bytes());
    let path = write("user0.pcap", &user0);
    let run = same_both_ways("unsupported link type", &[path], None);
    assert_eq!(run.status, Some(0));
    assert!(
        run.stdout.contains("unsupported_link_type"),
        "{}",
        run.stdout
    );

    // A record claiming more bytes than a record may hold: the frames
    // before it, then the same error and exit status.
    let mut large = seed.clone();
    let second = 24 + 16 + u32::from_le_bytes(large[32..36].try_into().unwrap()) as usize;
    large[second + 8..second + 12].copy_from_slice(&(4u32 << 20).to_le_bytes());
    let path = write("large.pcap", &large);
    let run = same_both_ways("record too large", std::slice::from_ref(&path), None);
    assert_eq!(run.status, Some(1));
    assert!(
        run.stderr.contains(path.to_str().unwrap()),
        "{}",
        run.stderr
    );
    let piped = same_both_ways("record too large, piped", &stdin, Some(&large));
    assert_eq!(piped.status, Some(1));
    assert_eq!(
        piped.stderr,
        run.stderr.replace(path.to_str().unwrap(), "/dev/stdin")
    );
}
