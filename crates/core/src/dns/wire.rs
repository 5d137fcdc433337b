//! DNS message summary: the few fields the tracker needs, owned and compact.
//!
//! ```text
//!  0                   1
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5
//! +-------------------------------+
//! |              ID               |
//! |QR| Opcode |AA|TC|RD|RA| Z|AD|CD| RCODE |
//! |            QDCOUNT            |
//! |            ANCOUNT            |
//! |            NSCOUNT            |
//! |            ARCOUNT            |
//! +-------------------------------+  12 bytes, then questions and RRs
//! ```
//!
//! The header is read by hand and its counts checked against the message
//! length before hickory-proto sees the body: a question takes at least 5
//! bytes (root name + type + class) and a resource record at least 11 (root
//! name + type + class + TTL + RDLENGTH), so a 12-byte message that claims
//! 65535 questions is rejected without allocating.

use std::net::{Ipv4Addr, Ipv6Addr};

use hickory_proto::rr::Name;
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

pub const HEADER_LEN: usize = 12;
const MIN_QUESTION_LEN: usize = 5;
const MIN_RR_LEN: usize = 11;
/// Answers kept per message; the rest are ignored (a CNAME chain plus a few
/// addresses is all attribution uses).
pub const MAX_ANSWERS: usize = 64;
const RR_TYPE_A: u16 = 1;
const RR_TYPE_CNAME: u16 = 5;
const RR_TYPE_PTR: u16 = 12;
const RR_TYPE_AAAA: u16 = 28;
const RR_TYPE_OPT: u16 = 41;
/// The largest message either transport can carry (TCP's 2-byte length).
const MAX_MESSAGE_LEN: usize = 65535;

/// Why a DNS message was not decoded. `as_str` is the `reason` label of
/// `podpath_dns_malformed_total` and the report's key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum WireError {
    #[error("message shorter than the 12-byte header")]
    TooShort,
    #[error("message longer than 65535 bytes")]
    TooLong,
    #[error("header counts need more bytes than the message has")]
    CountsExceedLength,
    #[error("malformed question")]
    Question,
    #[error("malformed resource record")]
    Record,
}

impl WireError {
    pub fn as_str(self) -> &'static str {
        match self {
            WireError::TooShort => "too_short",
            WireError::TooLong => "too_long",
            WireError::CountsExceedLength => "count_exceeds_length",
            WireError::Question => "bad_question",
            WireError::Record => "bad_record",
        }
    }
}

/// A query type. `as_str` names the common ones; any other value is `OTHER`
/// so label values stay a bounded set (the number is kept in `.0`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QType(pub u16);

impl QType {
    pub const A: QType = QType(1);
    pub const CNAME: QType = QType(5);
    pub const PTR: QType = QType(12);
    pub const AAAA: QType = QType(28);

    pub fn as_str(self) -> &'static str {
        match self.0 {
            1 => "A",
            2 => "NS",
            5 => "CNAME",
            6 => "SOA",
            12 => "PTR",
            13 => "HINFO",
            15 => "MX",
            16 => "TXT",
            28 => "AAAA",
            33 => "SRV",
            35 => "NAPTR",
            41 => "OPT",
            43 => "DS",
            46 => "RRSIG",
            47 => "NSEC",
            48 => "DNSKEY",
            52 => "TLSA",
            64 => "SVCB",
            65 => "HTTPS",
            252 => "AXFR",
            255 => "ANY",
            257 => "CAA",
            _ => "OTHER",
        }
    }
}

/// A response code, extended by the EDNS OPT record when present (12 bits).
/// `as_str` names the RFC 6895 registry values; any other is `OTHER`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Rcode(pub u16);

impl Rcode {
    pub const NOERROR: Rcode = Rcode(0);
    pub const FORMERR: Rcode = Rcode(1);
    pub const SERVFAIL: Rcode = Rcode(2);
    pub const NXDOMAIN: Rcode = Rcode(3);
    pub const REFUSED: Rcode = Rcode(5);

    pub fn as_str(self) -> &'static str {
        match self.0 {
            0 => "NOERROR",
            1 => "FORMERR",
            2 => "SERVFAIL",
            3 => "NXDOMAIN",
            4 => "NOTIMP",
            5 => "REFUSED",
            6 => "YXDOMAIN",
            7 => "YXRRSET",
            8 => "NXRRSET",
            9 => "NOTAUTH",
            10 => "NOTZONE",
            16 => "BADVERS",
            17 => "BADKEY",
            18 => "BADTIME",
            19 => "BADMODE",
            20 => "BADNAME",
            21 => "BADALG",
            22 => "BADTRUNC",
            23 => "BADCOOKIE",
            _ => "OTHER",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Question {
    /// Lowercase, without the trailing dot; the root is "".
    pub name: String,
    pub qtype: QType,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AnswerData {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    /// Target, lowercase, without the trailing dot.
    Cname(String),
    /// PTR target (RFC 1035 §3.3.12), lowercase, without the trailing dot.
    Ptr(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// Owner name, lowercase, without the trailing dot.
    pub name: String,
    pub ttl: u32,
    pub data: AnswerData,
}

/// What the tracker keeps of one DNS message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsMessage {
    pub id: u16,
    pub is_response: bool,
    pub opcode: u8,
    pub rcode: Rcode,
    pub truncated: bool,
    /// The first question; messages with none (some error responses) have `None`.
    pub question: Option<Question>,
    /// Number of records in the answer section according to the header.
    pub answer_count: u16,
    /// A, AAAA and CNAME answers (at most `MAX_ANSWERS`); other types are skipped.
    pub answers: Vec<Answer>,
}

/// The fixed header, read without hickory-proto.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub id: u16,
    pub flags: u16,
    pub qdcount: u16,
    pub ancount: u16,
    pub nscount: u16,
    pub arcount: u16,
}

impl Header {
    /// Reads the header and checks that the counts fit in `msg`.
    pub fn check(msg: &[u8]) -> Result<Header, WireError> {
        let be = |i: usize| -> u16 {
            match (msg.get(i), msg.get(i + 1)) {
                (Some(&hi), Some(&lo)) => u16::from_be_bytes([hi, lo]),
                _ => 0,
            }
        };
        if msg.len() < HEADER_LEN {
            return Err(WireError::TooShort);
        }
        let h = Header {
            id: be(0),
            flags: be(2),
            qdcount: be(4),
            ancount: be(6),
            nscount: be(8),
            arcount: be(10),
        };
        let rrs = h.ancount as usize + h.nscount as usize + h.arcount as usize;
        let needed = h.qdcount as usize * MIN_QUESTION_LEN + rrs * MIN_RR_LEN;
        if needed > msg.len() - HEADER_LEN {
            return Err(WireError::CountsExceedLength);
        }
        Ok(h)
    }

    pub fn is_response(&self) -> bool {
        self.flags & 0x8000 != 0
    }
    pub fn opcode(&self) -> u8 {
        ((self.flags >> 11) & 0x0f) as u8
    }
    pub fn truncated(&self) -> bool {
        self.flags & 0x0200 != 0
    }
    pub fn rcode_low(&self) -> u16 {
        self.flags & 0x000f
    }
}

/// Lowercase ASCII form without the trailing dot ("" for the root). Labels
/// of letters, digits, `-` and `_` are copied; any other byte makes the
/// whole name go through hickory-proto's escaping (`to_ascii`).
pub fn name_to_string(name: &Name) -> String {
    let plain = |b: &u8| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_';
    let mut s = String::with_capacity(name.len());
    for label in name.iter() {
        if !label.iter().all(plain) {
            return escaped(name);
        }
        if !s.is_empty() {
            s.push('.');
        }
        s.extend(label.iter().map(|b| b.to_ascii_lowercase() as char));
    }
    s
}

fn escaped(name: &Name) -> String {
    let mut s = name.to_ascii();
    if s.ends_with('.') {
        s.pop();
    }
    s.make_ascii_lowercase();
    s
}

/// Parses one DNS message (UDP payload, or one TCP message without its length prefix).
///
/// Records are walked by hand (owner name skipped, fixed fields read,
/// RDATA skipped by RDLENGTH); hickory-proto decodes only the names kept —
/// the question, and the owners and targets of A/AAAA/CNAME/PTR answers — with
/// its compression and label checks. RDATA of other types is never decoded,
/// so no decoder for exotic types runs on wire data.
pub fn parse(msg: &[u8]) -> Result<DnsMessage, WireError> {
    let mut out = DnsMessage::empty();
    parse_into(msg, &mut out)?;
    Ok(out)
}

impl DnsMessage {
    /// A message to parse into ([`parse_into`]); allocates nothing.
    pub fn empty() -> Self {
        DnsMessage {
            id: 0,
            is_response: false,
            opcode: 0,
            rcode: Rcode::NOERROR,
            truncated: false,
            question: None,
            answer_count: 0,
            answers: Vec::new(),
        }
    }
}

/// [`parse`] into `out`, reusing its question name's and answer list's
/// buffers: a message without answers reads without allocating once the
/// buffers have grown. On error `out` holds a partial message.
pub fn parse_into(msg: &[u8], out: &mut DnsMessage) -> Result<(), WireError> {
    let header = Header::check(msg)?;
    if msg.len() > MAX_MESSAGE_LEN {
        return Err(WireError::TooLong);
    }
    let mut pos = HEADER_LEN;

    let mut name_buf = out.question.take().map(|q| q.name).unwrap_or_default();
    out.answers.clear();
    let mut question = None;
    for i in 0..header.qdcount {
        let name_at = pos;
        pos = skip_name(msg, pos).ok_or(WireError::Question)?;
        let qtype = be16(msg, pos).ok_or(WireError::Question)?;
        pos += 4;
        if pos > msg.len() {
            return Err(WireError::Question);
        }
        if i == 0 {
            read_name_into(msg, name_at, &mut name_buf).ok_or(WireError::Question)?;
            question = Some(Question {
                name: std::mem::take(&mut name_buf),
                qtype: QType(qtype),
            });
        }
    }

    let answers = &mut out.answers;
    for _ in 0..header.ancount {
        let rr = read_rr(msg, pos)?;
        pos = rr.end;
        if answers.len() >= MAX_ANSWERS {
            continue;
        }
        let rdata = msg.get(rr.rdata_at..rr.end).ok_or(WireError::Record)?;
        let data = match (rr.rtype, rdata.len()) {
            (RR_TYPE_A, _) => match <[u8; 4]>::try_from(rdata) {
                Ok(octets) => AnswerData::A(Ipv4Addr::from(octets)),
                Err(_) => return Err(WireError::Record),
            },
            (RR_TYPE_AAAA, _) => match <[u8; 16]>::try_from(rdata) {
                Ok(octets) => AnswerData::Aaaa(Ipv6Addr::from(octets)),
                Err(_) => return Err(WireError::Record),
            },
            (RR_TYPE_CNAME | RR_TYPE_PTR, _) => {
                let (target, target_end) =
                    read_name_end(msg, rr.rdata_at).ok_or(WireError::Record)?;
                if target_end > rr.end {
                    return Err(WireError::Record);
                }
                if rr.rtype == RR_TYPE_PTR {
                    AnswerData::Ptr(target)
                } else {
                    AnswerData::Cname(target)
                }
            }
            _ => continue,
        };
        answers.push(Answer {
            name: owner_name(msg, rr.owner_at, question.as_ref())?,
            // RFC 2181 §8: a TTL with the top bit set is read as zero.
            ttl: if rr.ttl > i32::MAX as u32 { 0 } else { rr.ttl },
            data,
        });
    }

    // The extended RCODE's high 8 bits sit in the OPT record's TTL field
    // (RFC 6891 §6.1.3), so the additional section has to be walked.
    let mut rcode = header.rcode_low();
    for i in 0..header.nscount as usize + header.arcount as usize {
        let rr = read_rr(msg, pos)?;
        pos = rr.end;
        if i >= header.nscount as usize && rr.rtype == RR_TYPE_OPT {
            rcode |= ((rr.ttl >> 24) as u16) << 4;
        }
    }

    out.id = header.id;
    out.is_response = header.is_response();
    out.opcode = header.opcode();
    out.rcode = Rcode(rcode);
    out.truncated = header.truncated();
    out.question = question;
    out.answer_count = header.ancount;
    Ok(())
}

/// Where one resource record's parts are.
struct RawRr {
    owner_at: usize,
    rtype: u16,
    ttl: u32,
    rdata_at: usize,
    /// First byte after the record.
    end: usize,
}

/// ```text
/// owner name | TYPE (2) | CLASS (2) | TTL (4) | RDLENGTH (2) | RDATA
/// ```
fn read_rr(msg: &[u8], at: usize) -> Result<RawRr, WireError> {
    let fixed = skip_name(msg, at).ok_or(WireError::Record)?;
    let rtype = be16(msg, fixed).ok_or(WireError::Record)?;
    let ttl_hi = be16(msg, fixed + 4).ok_or(WireError::Record)?;
    let ttl_lo = be16(msg, fixed + 6).ok_or(WireError::Record)?;
    let rdlen = be16(msg, fixed + 8).ok_or(WireError::Record)?;
    let rdata_at = fixed + 10;
    let end = rdata_at + rdlen as usize;
    if end > msg.len() {
        return Err(WireError::Record);
    }
    Ok(RawRr {
        owner_at: at,
        rtype,
        ttl: (ttl_hi as u32) << 16 | ttl_lo as u32,
        rdata_at,
        end,
    })
}

fn be16(msg: &[u8], at: usize) -> Option<u16> {
    match (msg.get(at), msg.get(at.checked_add(1)?)) {
        (Some(&hi), Some(&lo)) => Some(u16::from_be_bytes([hi, lo])),
        _ => None,
    }
}

/// Position after the name at `at`, without following compression
/// pointers (a pointer ends the name in place). `None` when the name runs
/// off the message, uses a reserved label type, or exceeds 255 bytes.
fn skip_name(msg: &[u8], at: usize) -> Option<usize> {
    let mut pos = at;
    loop {
        let len = *msg.get(pos)?;
        match len & 0xc0 {
            0x00 if len == 0 => return Some(pos + 1),
            0x00 => {
                pos += 1 + len as usize;
                if pos - at > 255 {
                    return None;
                }
            }
            0xc0 => {
                msg.get(pos + 1)?;
                return Some(pos + 2);
            }
            _ => return None,
        }
    }
}

/// An answer's owner name. Owners are nearly always a compression pointer
/// to the question name at offset 12; that one is not decoded again.
fn owner_name(msg: &[u8], at: usize, question: Option<&Question>) -> Result<String, WireError> {
    let points_to_question = msg.get(at..at + 2) == Some(&[0xc0, HEADER_LEN as u8][..]);
    match question {
        Some(q) if points_to_question => Ok(q.name.clone()),
        _ => read_name(msg, at).ok_or(WireError::Record),
    }
}

/// The name at `at`, decoded by hickory-proto (compression followed,
/// pointers only backwards), lowercase without the trailing dot.
fn read_name(msg: &[u8], at: usize) -> Option<String> {
    read_name_end(msg, at).map(|(name, _)| name)
}

/// As `read_name`, with the position after the name's bytes in place.
fn read_name_end(msg: &[u8], at: usize) -> Option<(String, usize)> {
    match read_plain_name(msg, at) {
        PlainName::Read(name, end) => Some((name, end)),
        PlainName::Invalid => None,
        PlainName::NotPlain => read_name_hickory(msg, at),
    }
}

/// As `read_name_end` into `out`; returns the position after the name's bytes.
fn read_name_into(msg: &[u8], at: usize, out: &mut String) -> Option<usize> {
    match read_plain_name_into(msg, at, out) {
        PlainInto::Read(end) => Some(end),
        PlainInto::Invalid => None,
        PlainInto::NotPlain => {
            let (name, end) = read_name_hickory(msg, at)?;
            *out = name;
            Some(end)
        }
    }
}

/// hickory-proto's decoding, for names with a label `name_to_string` escapes.
fn read_name_hickory(msg: &[u8], at: usize) -> Option<(String, usize)> {
    let mut decoder = BinDecoder::new(msg);
    decoder.read_slice(at).ok()?;
    let name = Name::read(&mut decoder).ok()?;
    Some((name_to_string(&name), decoder.index()))
}

/// Label bytes `name_to_string` copies as they are (letters, digits, `-`,
/// `_`) mapped to their lowercase form; 0 for every other byte.
const PLAIN_LOWER: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_alphanumeric() || c == b'-' || c == b'_' {
            t[b] = c.to_ascii_lowercase();
        }
        b += 1;
    }
    t
};

enum PlainName {
    /// The name as `name_to_string` writes it, and the position after it in place.
    Read(String, usize),
    /// hickory-proto would reject it.
    Invalid,
    /// A label has a byte other than a letter, digit, `-` or `_`: decode it
    /// with hickory-proto, which escapes such bytes.
    NotPlain,
}

/// The common case of `read_name_hickory` without building a `Name`: the
/// same checks as hickory-proto 0.26's `Name::read` (labels of at most 63
/// bytes, reserved label types rejected, a pointer only to before the
/// start of the labels that hold it, at most 255 bytes encoded), writing
/// plain labels lowercase straight into the string. Anything else is
/// `NotPlain` and goes through hickory-proto (`tests::plain_names_decode_as_hickory_does`).
fn read_plain_name(msg: &[u8], at: usize) -> PlainName {
    let mut out = String::new();
    match read_plain_name_into(msg, at, &mut out) {
        PlainInto::Read(end) => PlainName::Read(out, end),
        PlainInto::Invalid => PlainName::Invalid,
        PlainInto::NotPlain => PlainName::NotPlain,
    }
}

/// `read_plain_name`'s outcome, the name itself written into a caller's buffer.
enum PlainInto {
    Read(usize),
    Invalid,
    NotPlain,
}

/// `read_plain_name` into `out` (cleared first), so a reused buffer reads
/// a name without allocating.
fn read_plain_name_into(msg: &[u8], at: usize, out: &mut String) -> PlainInto {
    out.clear();
    // The text is built on the stack and checked as UTF-8 once: at most 253
    // bytes (255 encoded, less the first length byte and the root).
    let mut text = [0u8; 256];
    let mut n = 0usize;
    let mut pos = at;
    // Start of the run of labels being read, and the bound the first pointer set.
    let mut run_start = at;
    let mut bound: Option<usize> = None;
    let mut end = None;
    // Encoded length so far, root label included.
    let mut encoded = 1usize;
    loop {
        if bound.is_some_and(|b| pos >= b) {
            return PlainInto::Invalid;
        }
        let Some(&len) = msg.get(pos) else {
            return PlainInto::Invalid;
        };
        match len & 0xc0 {
            0x00 if len == 0 => {
                return match std::str::from_utf8(text.get(..n).unwrap_or_default()) {
                    Ok(name) => {
                        out.push_str(name);
                        PlainInto::Read(end.unwrap_or(pos + 1))
                    }
                    Err(_) => PlainInto::NotPlain,
                };
            }
            0x00 => {
                let len = len as usize;
                let Some(label) = msg.get(pos + 1..pos + 1 + len) else {
                    return PlainInto::Invalid;
                };
                encoded += len + 1;
                if encoded > 255 {
                    return PlainInto::Invalid;
                }
                let dot = usize::from(n > 0);
                let Some(dst) = text.get_mut(n..n + dot + len) else {
                    return PlainInto::Invalid;
                };
                let (sep, dst) = dst.split_at_mut(dot);
                sep.fill(b'.');
                for (d, &b) in dst.iter_mut().zip(label) {
                    let lower = PLAIN_LOWER[b as usize];
                    if lower == 0 {
                        return PlainInto::NotPlain;
                    }
                    *d = lower;
                }
                n += dot + len;
                pos += 1 + len;
            }
            0xc0 => {
                let Some(&low) = msg.get(pos + 1) else {
                    return PlainInto::Invalid;
                };
                let target = (((len & 0x3f) as usize) << 8) | low as usize;
                if target >= run_start {
                    return PlainInto::Invalid;
                }
                end.get_or_insert(pos + 2);
                bound = Some(run_start);
                run_start = target;
                pos = target;
            }
            _ => return PlainInto::Invalid,
        }
    }
}

/// DNS messages for tests, benches and fuzz seeds (built with hickory-proto).
#[cfg(any(test, feature = "testkit"))]
pub mod testkit {
    use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
    use hickory_proto::rr::rdata::{A, AAAA, CNAME, PTR};
    use hickory_proto::rr::{Name, RData, Record, RecordType};
    use std::str::FromStr;

    pub fn query_bytes(id: u16, name: &str, qtype: RecordType) -> Vec<u8> {
        let mut m = Message::new(id, MessageType::Query, OpCode::Query);
        m.add_query(Query::query(Name::from_str(name).unwrap(), qtype));
        m.to_vec().unwrap()
    }

    /// A response to `name`/`qtype` with `records` as (owner, ttl, rdata).
    pub fn response_bytes(
        id: u16,
        name: &str,
        qtype: RecordType,
        rcode: ResponseCode,
        records: &[(&str, u32, RData)],
    ) -> Vec<u8> {
        let mut m = Message::new(id, MessageType::Response, OpCode::Query);
        m.metadata.response_code = rcode;
        m.add_query(Query::query(Name::from_str(name).unwrap(), qtype));
        for (owner, ttl, data) in records {
            m.add_answer(Record::from_rdata(
                Name::from_str(owner).unwrap(),
                *ttl,
                data.clone(),
            ));
        }
        m.to_vec().unwrap()
    }

    pub fn a(ip: &str) -> RData {
        RData::A(A(ip.parse().unwrap()))
    }
    pub fn aaaa(ip: &str) -> RData {
        RData::AAAA(AAAA(ip.parse().unwrap()))
    }
    pub fn cname(target: &str) -> RData {
        RData::CNAME(CNAME(Name::from_str(target).unwrap()))
    }
    pub fn ptr(target: &str) -> RData {
        RData::PTR(PTR(Name::from_str(target).unwrap()))
    }
}

#[cfg(test)]
mod tests {
    use super::testkit::*;
    use super::*;
    use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
    use hickory_proto::rr::{RData, Record, RecordType};
    use std::str::FromStr;

    #[test]
    fn ptr_answers_keep_their_target() {
        let q = "20.0.96.10.in-addr.arpa.";
        let r = response_bytes(
            9,
            q,
            RecordType::PTR,
            ResponseCode::NoError,
            &[(q, 5, ptr("Demo-App.default.svc.cluster.local."))],
        );
        let m = parse(&r).unwrap();
        assert_eq!(m.question.unwrap().qtype.as_str(), "PTR");
        assert_eq!(
            m.answers,
            vec![Answer {
                name: "20.0.96.10.in-addr.arpa".into(),
                ttl: 5,
                data: AnswerData::Ptr("demo-app.default.svc.cluster.local".into()),
            }]
        );
    }

    #[test]
    fn count_bomb_is_rejected_before_decoding() {
        let mut msg = vec![0u8; 12];
        msg[4] = 0xff;
        msg[5] = 0xff;
        assert_eq!(parse(&msg), Err(WireError::CountsExceedLength));
        let mut msg = vec![0u8; 40];
        msg[10] = 0xff;
        msg[11] = 0xff;
        assert_eq!(parse(&msg), Err(WireError::CountsExceedLength));
    }

    #[test]
    fn short_and_truncated_messages_are_errors() {
        assert_eq!(parse(&[]), Err(WireError::TooShort));
        assert_eq!(parse(&[0; 11]), Err(WireError::TooShort));
        let q = query_bytes(7, "demo-app.default.svc.cluster.local.", RecordType::A);
        // Cut inside the question: the counts no longer fit, or the name breaks.
        let cut = &q[..q.len() - 3];
        assert!(parse(cut).is_err());
        // A label length pointing past the end.
        let mut bad = q.clone();
        bad[12] = 63;
        assert!(parse(&bad).is_err());
        // A compression pointer pointing forward into itself.
        let mut looped = vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        looped.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        assert!(parse(&looped).is_err());
    }

    proptest::proptest! {
        /// The plain-name fast path reads exactly what hickory-proto reads:
        /// the same names accepted, the same text, the same end position.
        #[test]
        fn plain_names_decode_as_hickory_does(
            msg in proptest::collection::vec(
                proptest::prop_oneof![
                    4 => proptest::prop_oneof![b'a'..=b'z', b'A'..=b'Z', b'0'..=b'9', proptest::strategy::Just(b'-')],
                    2 => 0u8..=8,
                    1 => 0xc0u8..=0xc1,
                    1 => proptest::num::u8::ANY,
                ],
                0..300,
            ),
            at in 0usize..40,
        ) {
            let fast = match read_plain_name(&msg, at) {
                PlainName::Read(name, end) => Some(Some((name, end))),
                PlainName::Invalid => Some(None),
                PlainName::NotPlain => None,
            };
            if let Some(fast) = fast {
                proptest::prop_assert_eq!(fast, read_name_hickory(&msg, at));
            }
        }
    }

    proptest::proptest! {
        /// A reused message reads every input as a fresh one does, whatever
        /// the message parsed into it before (errors included).
        #[test]
        fn parse_into_a_reused_message_equals_parse(
            first in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
            second in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
            pick in 0usize..4,
        ) {
            let seeds = [
                response_bytes(
                    3,
                    "www.example.com.",
                    RecordType::A,
                    ResponseCode::NoError,
                    &[("www.example.com.", 300, cname("edge.example.net.")), ("edge.example.net.", 60, a("192.0.2.7"))],
                ),
                query_bytes(4, "Demo-App.default.svc.cluster.local.", RecordType::AAAA),
                response_bytes(5, "x.", RecordType::A, ResponseCode::NXDomain, &[]),
                first,
            ];
            let mut reused = DnsMessage::empty();
            let _ = parse_into(&seeds[pick], &mut reused);
            let again = parse_into(&second, &mut reused).map(|()| reused.clone());
            proptest::prop_assert_eq!(again, parse(&second));
            for seed in &seeds[..3] {
                let again = parse_into(seed, &mut reused).map(|()| reused.clone());
                proptest::prop_assert_eq!(again, parse(seed));
            }
        }
    }

    #[test]
    fn plain_names_match_hickory_on_edge_cases() {
        let check = |msg: &[u8], at: usize| {
            let hickory = read_name_hickory(msg, at);
            match read_plain_name(msg, at) {
                PlainName::Read(name, end) => assert_eq!(Some((name, end)), hickory),
                PlainName::Invalid => assert_eq!(None, hickory, "{msg:?} at {at}"),
                PlainName::NotPlain => {}
            }
        };
        // Longest legal name: 127 one-byte labels (254 bytes encoded with the root), then one more.
        for labels in [126, 127, 128] {
            let mut msg = vec![0u8; 12];
            for _ in 0..labels {
                msg.extend_from_slice(&[1, b'A']);
            }
            msg.push(0);
            check(&msg, 12);
        }
        // 63-byte labels up to the limit.
        for labels in [3, 4, 5] {
            let mut msg = vec![0u8; 12];
            for _ in 0..labels {
                msg.push(63);
                msg.extend(std::iter::repeat_n(b'x', 63));
            }
            msg.push(0);
            check(&msg, 12);
        }
        // A pointer to a pointer, backwards, and one that lands on itself.
        let mut msg = vec![0u8; 12];
        msg.extend_from_slice(&[
            3, b'f', b'o', b'o', 0, 3, b'b', b'a', b'r', 0xc0, 12, 0xc0, 17, 0xc0, 23,
        ]);
        for at in [12, 17, 22, 23, 25, 30] {
            check(&msg, at);
        }
        // Reserved label types, a pointer cut off, the root alone, past the end.
        for tail in [&[0x40u8][..], &[0x80], &[0xc0], &[0]] {
            let mut msg = vec![0u8; 12];
            msg.extend_from_slice(tail);
            check(&msg, 12);
            check(&msg, 14);
        }
    }

    #[test]
    fn names_are_lowercased_and_odd_bytes_escaped() {
        let plain = Name::from_str("Demo_App.Default.SVC.cluster.local.").unwrap();
        assert_eq!(name_to_string(&plain), "demo_app.default.svc.cluster.local");
        assert_eq!(name_to_string(&Name::root()), "");
        let odd = Name::from_labels(vec![b"a.b".to_vec(), b"C d".to_vec()]).unwrap();
        let text = name_to_string(&odd);
        // The dot inside the first label is escaped, so it cannot pass for a label boundary.
        assert!(text.starts_with("a\\.b."), "{text}");
        assert!(!text.ends_with('.'));
    }

    #[test]
    fn query_summary() {
        let q = query_bytes(
            0x1234,
            "Demo-App.Default.svc.cluster.local.",
            RecordType::AAAA,
        );
        let m = parse(&q).unwrap();
        assert_eq!(m.id, 0x1234);
        assert!(!m.is_response);
        assert_eq!(m.opcode, 0);
        let question = m.question.unwrap();
        assert_eq!(question.name, "demo-app.default.svc.cluster.local");
        assert_eq!(question.qtype.as_str(), "AAAA");
    }

    #[test]
    fn response_with_cname_chain_and_ignored_types() {
        let r = response_bytes(
            9,
            "www.example.com.",
            RecordType::A,
            ResponseCode::NoError,
            &[
                ("www.example.com.", 300, cname("edge.example.net.")),
                ("edge.example.net.", 60, a("192.0.2.7")),
                (
                    "edge.example.net.",
                    60,
                    RData::TXT(hickory_proto::rr::rdata::TXT::new(vec!["x".into()])),
                ),
            ],
        );
        let m = parse(&r).unwrap();
        assert!(m.is_response);
        assert_eq!(m.rcode.as_str(), "NOERROR");
        assert_eq!(m.answer_count, 3);
        assert_eq!(m.answers.len(), 2);
        assert_eq!(
            m.answers[0].data,
            AnswerData::Cname("edge.example.net".into())
        );
        assert_eq!(m.answers[1].ttl, 60);
        assert_eq!(
            m.answers[1].data,
            AnswerData::A("192.0.2.7".parse().unwrap())
        );
    }

    #[test]
    fn bad_rdata_lengths_and_label_types_are_rejected() {
        let fq = "x.example.";
        let good = response_bytes(
            1,
            fq,
            RecordType::A,
            ResponseCode::NoError,
            &[(fq, 5, a("192.0.2.1"))],
        );
        assert!(parse(&good).is_ok());
        // RDLENGTH of the A record (2 bytes before its 4 RDATA bytes) set to 3.
        let mut short_a = good.clone();
        let at = short_a.len() - 5;
        short_a[at] = 3;
        assert_eq!(parse(&short_a[..short_a.len() - 1]), Err(WireError::Record));
        // RDLENGTH beyond the end.
        let mut long = good.clone();
        long[at] = 200;
        assert_eq!(parse(&long), Err(WireError::Record));
        // Label type 01 (extended, RFC 6891 obsoleted) in the question name.
        let mut reserved = good.clone();
        reserved[12] = 0x41;
        assert_eq!(parse(&reserved), Err(WireError::Question));
        // More than 65535 bytes cannot be one message.
        let mut huge = good.clone();
        huge.resize(70_000, 0);
        assert_eq!(parse(&huge), Err(WireError::TooLong));
    }

    #[test]
    fn other_sections_and_types_are_skipped_not_decoded() {
        let mut m = Message::new(4, MessageType::Response, OpCode::Query);
        m.add_query(Query::query(
            Name::from_str("example.com.").unwrap(),
            RecordType::MX,
        ));
        m.add_answer(Record::from_rdata(
            Name::from_str("example.com.").unwrap(),
            60,
            RData::MX(hickory_proto::rr::rdata::MX::new(
                10,
                Name::from_str("mail.example.com.").unwrap(),
            )),
        ));
        m.add_authority(Record::from_rdata(
            Name::from_str("example.com.").unwrap(),
            60,
            RData::NS(hickory_proto::rr::rdata::NS(
                Name::from_str("ns.example.com.").unwrap(),
            )),
        ));
        m.add_additional(Record::from_rdata(
            Name::from_str("ns.example.com.").unwrap(),
            60,
            a("192.0.2.53"),
        ));
        m.set_edns(Edns::new());
        let parsed = parse(&m.to_vec().unwrap()).unwrap();
        assert_eq!(parsed.question.unwrap().qtype.as_str(), "MX");
        assert_eq!(parsed.answer_count, 1);
        assert!(parsed.answers.is_empty());
        assert_eq!(parsed.rcode, Rcode::NOERROR);
    }

    #[test]
    fn huge_ttl_reads_as_zero() {
        let fq = "x.example.";
        let r = response_bytes(
            1,
            fq,
            RecordType::A,
            ResponseCode::NoError,
            &[(fq, 0x8000_0000, a("192.0.2.1"))],
        );
        assert_eq!(parse(&r).unwrap().answers[0].ttl, 0);
    }

    #[test]
    fn extended_rcode_from_opt() {
        let mut m = Message::new(3, MessageType::Response, OpCode::Query);
        m.add_query(Query::query(Name::from_str("x.").unwrap(), RecordType::A));
        // BADVERS = 16: high bits 1 in OPT, low bits 0 in the header.
        m.metadata.response_code = ResponseCode::BADVERS;
        let mut edns = Edns::new();
        edns.set_rcode_high(1);
        m.set_edns(edns);
        let bytes = m.to_vec().unwrap();
        let parsed = parse(&bytes).unwrap();
        assert_eq!(parsed.rcode, Rcode(16));
        assert_eq!(parsed.rcode.as_str(), "BADVERS");
    }

    #[test]
    fn label_sets_are_bounded() {
        assert_eq!(Rcode(11).as_str(), "OTHER");
        assert_eq!(Rcode(3).as_str(), "NXDOMAIN");
        assert_eq!(QType(65).as_str(), "HTTPS");
        assert_eq!(QType(999).as_str(), "OTHER");
        assert_eq!(
            parse(&response_bytes(
                1,
                "x.",
                RecordType::A,
                ResponseCode::Refused,
                &[]
            ))
            .unwrap()
            .rcode
            .as_str(),
            "REFUSED"
        );
        let m = parse(&response_bytes(
            1,
            "x.",
            RecordType::AAAA,
            ResponseCode::NoError,
            &[("x.", 5, aaaa("fd00::1"))],
        ))
        .unwrap();
        assert_eq!(
            m.answers[0].data,
            AnswerData::Aaaa("fd00::1".parse().unwrap())
        );
    }
}
