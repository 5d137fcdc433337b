//! TLS ClientHello: record layer → handshake message → SNI and ALPN.
//!
//! ```text
//! record:     type(1)=22 · version(2)=3.x · length(2) · fragment
//! handshake:  msg_type(1)=1 · length(3) · body   (may span several records)
//! body:       legacy_version(2) · random(32) · session_id<0..32>(len 1)
//!             · cipher_suites(len 2) · compression_methods(len 1)
//!             · extensions(len 2): { type(2) · length(2) · data }*
//! server_name (0):  list(len 2): { name_type(1)=0 · host_name(len 2) }
//! alpn (16):        list(len 2): { protocol(len 1) }
//! ```
//!
//! The scanner reads any prefix of the first client flight: what lies in the
//! prefix is reported, and `Scan::complete` says whether the whole message was
//! there. A capture that keeps only the first bytes of each segment therefore
//! still yields the SNI when it comes before the cut.

use thiserror::Error;

/// Content type of a handshake record.
const HANDSHAKE: u8 = 22;
/// Handshake message type of a ClientHello.
const CLIENT_HELLO: u8 = 1;
const EXT_SERVER_NAME: u16 = 0;
const EXT_ALPN: u16 = 16;
/// Largest record fragment TLS allows (2^14) plus the expansion TLS 1.2
/// permits for compressed or protected records.
const MAX_RECORD: usize = 16384 + 2048;
/// ALPN protocols kept per hello.
const MAX_ALPN: usize = 8;
/// A DNS name is at most 253 characters in text form.
const MAX_HOST: usize = 253;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum TlsError {
    #[error("not a TLS handshake record")]
    NotHandshake,
    #[error("handshake message is not a ClientHello")]
    NotClientHello,
    #[error("record length {0} exceeds the TLS maximum")]
    RecordTooLong(usize),
    #[error("malformed ClientHello: {0}")]
    Malformed(&'static str),
}

impl TlsError {
    pub fn reason(self) -> &'static str {
        match self {
            TlsError::NotHandshake => "not_handshake",
            TlsError::NotClientHello => "not_client_hello",
            TlsError::RecordTooLong(_) => "record_too_long",
            TlsError::Malformed(_) => "malformed",
        }
    }
}

/// What a prefix of the client's first flight says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scan {
    /// The server_name extension's host name, lower-cased, when it was read.
    pub sni: Option<String>,
    /// The server_name extension was present but its name was not a valid
    /// host name (or not a host_name entry).
    pub sni_invalid: bool,
    pub alpn: Vec<String>,
    /// The whole ClientHello was read: absent extensions are really absent.
    pub complete: bool,
}

/// Whether `data` could start a TLS handshake record (the first client bytes).
pub fn looks_like_hello(data: &[u8]) -> bool {
    matches!(data, [HANDSHAKE, 3, minor, ..] if *minor <= 4)
        && data.get(5).is_none_or(|&t| t == CLIENT_HELLO)
}

/// Joins the fragments of the handshake records at the start of `stream`
/// (as far as they were captured) into `out`.
fn handshake_bytes(stream: &[u8], out: &mut Vec<u8>) -> Result<(), TlsError> {
    let mut rest = stream;
    while !rest.is_empty() {
        let Some(&[kind, major, _, hi, lo]) = rest.get(..5) else {
            // A record header cut by the end of what was captured.
            return Ok(());
        };
        if kind != HANDSHAKE || major != 3 {
            // The first flight ends where the handshake records end (e.g.
            // ChangeCipherSpec or early data follow in TLS 1.3).
            return if out.is_empty() {
                Err(TlsError::NotHandshake)
            } else {
                Ok(())
            };
        }
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        if len > MAX_RECORD {
            return Err(TlsError::RecordTooLong(len));
        }
        let body = rest.get(5..).unwrap_or(&[]);
        let take = len.min(body.len());
        out.extend_from_slice(body.get(..take).unwrap_or(&[]));
        rest = body.get(len..).unwrap_or(&[]);
    }
    Ok(())
}

/// A cursor over a byte slice that reports running out of bytes as `None`.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let head = self.buf.get(..n)?;
        self.buf = self.buf.get(n..)?;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).and_then(|b| b.first().copied())
    }

    fn u16(&mut self) -> Option<u16> {
        let b = self.take(2)?;
        Some(u16::from_be_bytes([*b.first()?, *b.get(1)?]))
    }

    fn u24(&mut self) -> Option<usize> {
        let b = self.take(3)?;
        Some(
            usize::from(*b.first()?) << 16 | usize::from(*b.get(1)?) << 8 | usize::from(*b.get(2)?),
        )
    }
}

/// Scans the first client flight `stream` (record layer included), which
/// may be cut anywhere.
pub fn scan(stream: &[u8]) -> Result<Scan, TlsError> {
    let mut hs = Vec::with_capacity(stream.len().min(MAX_RECORD));
    handshake_bytes(stream, &mut hs)?;
    scan_handshake(&hs)
}

fn scan_handshake(hs: &[u8]) -> Result<Scan, TlsError> {
    let mut out = Scan::default();
    let mut r = Reader { buf: hs };
    match r.u8() {
        None => return Ok(out),
        Some(CLIENT_HELLO) => {}
        Some(_) => return Err(TlsError::NotClientHello),
    }
    let Some(msg_len) = r.u24() else {
        return Ok(out);
    };
    // The message ends at msg_len even if more handshake bytes follow.
    let available = r.buf.len();
    let whole = available >= msg_len;
    r.buf = r.buf.get(..msg_len.min(available)).unwrap_or(&[]);
    if scan_body(&mut r, &mut out)?.is_some() {
        out.complete = whole;
    }
    Ok(out)
}

/// Reads the body; `Ok(None)` when the bytes ran out first.
fn scan_body(r: &mut Reader<'_>, out: &mut Scan) -> Result<Option<()>, TlsError> {
    let Some(_) = r.take(2 + 32) else {
        return Ok(None);
    };
    let Some(sid) = r.u8() else { return Ok(None) };
    if sid > 32 {
        return Err(TlsError::Malformed("session id longer than 32 bytes"));
    }
    if r.take(usize::from(sid)).is_none() {
        return Ok(None);
    }
    let Some(suites) = r.u16() else {
        return Ok(None);
    };
    if suites % 2 != 0 || suites == 0 {
        return Err(TlsError::Malformed("cipher suite list length"));
    }
    if r.take(usize::from(suites)).is_none() {
        return Ok(None);
    }
    let Some(comp) = r.u8() else { return Ok(None) };
    if comp == 0 {
        return Err(TlsError::Malformed("empty compression method list"));
    }
    if r.take(usize::from(comp)).is_none() {
        return Ok(None);
    }
    if r.buf.is_empty() {
        // No extensions block at all is valid and complete (SSL 3 style), but
        // only if the message ends here; the caller decides from the length.
        return Ok(Some(()));
    }
    let Some(ext_len) = r.u16() else {
        return Ok(None);
    };
    let ext_len = usize::from(ext_len);
    let captured = r.buf.len();
    let mut exts = Reader {
        buf: r.buf.get(..ext_len.min(captured)).unwrap_or(&[]),
    };
    loop {
        if exts.buf.is_empty() {
            return Ok((captured >= ext_len).then_some(()));
        }
        let (Some(kind), Some(len)) = (exts.u16(), exts.u16()) else {
            return Ok(None);
        };
        let Some(data) = exts.take(usize::from(len)) else {
            return Ok(None);
        };
        match kind {
            EXT_SERVER_NAME => read_sni(data, out),
            EXT_ALPN => read_alpn(data, out)?,
            _ => {}
        }
    }
}

fn read_sni(data: &[u8], out: &mut Scan) {
    let mut r = Reader { buf: data };
    let name = (|| {
        let list = r.u16()?;
        let mut list = Reader {
            buf: r.take(usize::from(list))?,
        };
        while !list.buf.is_empty() {
            let kind = list.u8()?;
            let len = list.u16()?;
            let name = list.take(usize::from(len))?;
            if kind == 0 {
                return Some(name);
            }
        }
        None
    })();
    match name.and_then(host_name) {
        Some(host) => out.sni = Some(host),
        None => out.sni_invalid = true,
    }
}

/// A host name as a label value: ASCII letters, digits, `-`, `_` and `.`,
/// lower-cased, without a trailing dot.
fn host_name(raw: &[u8]) -> Option<String> {
    let raw = raw.strip_suffix(b".").unwrap_or(raw);
    let ok = !raw.is_empty()
        && raw.len() <= MAX_HOST
        && raw
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'));
    ok.then(|| String::from_utf8_lossy(raw).to_ascii_lowercase())
}

fn read_alpn(data: &[u8], out: &mut Scan) -> Result<(), TlsError> {
    let mut r = Reader { buf: data };
    let list = r
        .u16()
        .ok_or(TlsError::Malformed("ALPN extension too short"))?;
    let mut list = Reader {
        buf: r
            .take(usize::from(list))
            .ok_or(TlsError::Malformed("ALPN list longer than its extension"))?,
    };
    while !list.buf.is_empty() {
        let len = list.u8().unwrap_or(0);
        let proto = list
            .take(usize::from(len))
            .ok_or(TlsError::Malformed("ALPN protocol longer than its list"))?;
        let printable = !proto.is_empty() && proto.iter().all(|c| c.is_ascii_graphic());
        if printable && out.alpn.len() < MAX_ALPN {
            out.alpn.push(String::from_utf8_lossy(proto).into_owned());
        }
    }
    Ok(())
}

/// ClientHellos for tests, benches and fuzz seeds.
#[cfg(any(test, feature = "testkit"))]
pub mod testkit {
    use super::*;

    /// A ClientHello in one record, with the given SNI and ALPN and an
    /// unrelated extension of `padding` bytes before them (so tests can push
    /// the SNI past a capture cut).
    pub fn client_hello(sni: Option<&str>, alpn: &[&str], padding: usize) -> Vec<u8> {
        let mut exts = Vec::new();
        if padding > 0 {
            exts.extend_from_slice(&21u16.to_be_bytes());
            exts.extend_from_slice(&(padding as u16).to_be_bytes());
            exts.extend(std::iter::repeat_n(0u8, padding));
        }
        if let Some(name) = sni {
            let n = name.as_bytes();
            exts.extend_from_slice(&EXT_SERVER_NAME.to_be_bytes());
            exts.extend_from_slice(&((n.len() + 5) as u16).to_be_bytes());
            exts.extend_from_slice(&((n.len() + 3) as u16).to_be_bytes());
            exts.push(0);
            exts.extend_from_slice(&(n.len() as u16).to_be_bytes());
            exts.extend_from_slice(n);
        }
        if !alpn.is_empty() {
            let mut list = Vec::new();
            for p in alpn {
                list.push(p.len() as u8);
                list.extend_from_slice(p.as_bytes());
            }
            exts.extend_from_slice(&EXT_ALPN.to_be_bytes());
            exts.extend_from_slice(&((list.len() + 2) as u16).to_be_bytes());
            exts.extend_from_slice(&(list.len() as u16).to_be_bytes());
            exts.extend_from_slice(&list);
        }
        let mut body = vec![3, 3];
        body.extend_from_slice(&[7u8; 32]);
        body.push(32);
        body.extend_from_slice(&[9u8; 32]);
        body.extend_from_slice(&4u16.to_be_bytes());
        body.extend_from_slice(&[0x13, 0x01, 0x13, 0x02]);
        body.extend_from_slice(&[1, 0]);
        body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
        body.extend_from_slice(&exts);
        let mut hs = vec![CLIENT_HELLO];
        hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        hs.extend_from_slice(&body);
        let mut rec = vec![HANDSHAKE, 3, 1];
        rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
        rec.extend_from_slice(&hs);
        rec
    }
}

#[cfg(test)]
mod tests {
    use super::testkit::client_hello;
    use super::*;

    #[test]
    fn sni_and_alpn_from_a_whole_hello() {
        let hello = client_hello(Some("API.Example.com."), &["h2", "http/1.1"], 0);
        assert!(looks_like_hello(&hello));
        let s = scan(&hello).unwrap();
        assert_eq!(s.sni.as_deref(), Some("api.example.com"));
        assert_eq!(s.alpn, vec!["h2".to_string(), "http/1.1".to_string()]);
        assert!(s.complete);
    }

    #[test]
    fn a_hello_without_sni_is_complete_and_nameless() {
        let s = scan(&client_hello(None, &[], 0)).unwrap();
        assert_eq!(s.sni, None);
        assert!(s.complete);
        assert!(!s.sni_invalid);
    }

    #[test]
    fn every_prefix_scans_without_error_and_sni_appears_once_its_extension_is_in() {
        let hello = client_hello(Some("demo-app"), &["h2"], 100);
        let sni_end = hello.len() - (2 + 2 + 2 + 1 + 2);
        for cut in 0..hello.len() {
            let s = scan(&hello[..cut]).unwrap();
            assert!(!s.complete, "cut at {cut}");
            assert_eq!(s.sni.is_some(), cut >= sni_end, "cut at {cut}");
        }
        assert!(scan(&hello).unwrap().complete);
    }

    #[test]
    fn hello_split_across_two_records() {
        let one = client_hello(Some("split.example"), &[], 0);
        let hs = &one[5..];
        let (a, b) = hs.split_at(40);
        let mut two = Vec::new();
        for part in [a, b] {
            two.extend_from_slice(&[HANDSHAKE, 3, 3]);
            two.extend_from_slice(&(part.len() as u16).to_be_bytes());
            two.extend_from_slice(part);
        }
        let s = scan(&two).unwrap();
        assert_eq!(s.sni.as_deref(), Some("split.example"));
        assert!(s.complete);
    }

    #[test]
    fn garbage_is_rejected_not_panicking() {
        assert_eq!(scan(b"GET / HTTP/1.1\r\n"), Err(TlsError::NotHandshake));
        assert!(!looks_like_hello(b"GET / HTTP/1.1\r\n"));
        assert_eq!(
            scan(&[HANDSHAKE, 3, 1, 0, 4, 2, 0, 0, 0]),
            Err(TlsError::NotClientHello)
        );
        assert_eq!(
            scan(&[HANDSHAKE, 3, 1, 0xff, 0xff]),
            Err(TlsError::RecordTooLong(65535))
        );
        let mut bad = client_hello(Some("x"), &[], 0);
        bad[5 + 4 + 34] = 200;
        assert!(matches!(scan(&bad), Err(TlsError::Malformed(_))));
        let mut lcg = 12345u32;
        for _ in 0..2000 {
            let mut data = client_hello(Some("fuzz.example"), &["h2"], 10);
            for _ in 0..4 {
                lcg = lcg.wrapping_mul(1_103_515_245).wrapping_add(12345);
                let i = (lcg >> 8) as usize % data.len();
                data[i] = (lcg >> 24) as u8;
            }
            let _ = scan(&data);
        }
    }

    #[test]
    fn invalid_host_names_are_flagged() {
        let s = scan(&client_hello(Some("bad name"), &[], 0)).unwrap();
        assert_eq!(s.sni, None);
        assert!(s.sni_invalid);
    }
}
