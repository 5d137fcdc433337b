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

use hickory_proto::op::Query;
use hickory_proto::rr::{Name, RData, Record};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

pub const HEADER_LEN: usize = 12;
const MIN_QUESTION_LEN: usize = 5;
const MIN_RR_LEN: usize = 11;
/// Answers kept per message; the rest are ignored (a CNAME chain plus a few
/// addresses is all attribution uses).
pub const MAX_ANSWERS: usize = 64;
const RR_TYPE_OPT: u16 = 41;

/// Why a DNS message was not decoded. `reason()` is a stable label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum WireError {
    #[error("message shorter than the 12-byte header")]
    TooShort,
    #[error("header counts need more bytes than the message has")]
    CountsExceedLength,
    #[error("malformed question")]
    Question,
    #[error("malformed resource record")]
    Record,
}

impl WireError {
    pub fn reason(self) -> &'static str {
        match self {
            WireError::TooShort => "too_short",
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

/// Lowercase ASCII form without the trailing dot ("" for the root).
pub fn name_to_string(name: &Name) -> String {
    let mut s = name.to_ascii();
    if s.ends_with('.') {
        s.pop();
    }
    s.make_ascii_lowercase();
    s
}

/// Parses one DNS message (UDP payload, or one TCP message without its length prefix).
pub fn parse(msg: &[u8]) -> Result<DnsMessage, WireError> {
    let header = Header::check(msg)?;
    let mut decoder = BinDecoder::new(msg);
    decoder
        .read_slice(HEADER_LEN)
        .map_err(|_| WireError::TooShort)?;

    let mut question = None;
    for i in 0..header.qdcount {
        let q = Query::read(&mut decoder).map_err(|_| WireError::Question)?;
        if i == 0 {
            question = Some(Question {
                name: name_to_string(q.name()),
                qtype: QType(u16::from(q.query_type())),
            });
        }
    }

    let mut answers = Vec::new();
    for _ in 0..header.ancount {
        let record = Record::read(&mut decoder).map_err(|_| WireError::Record)?;
        if answers.len() >= MAX_ANSWERS {
            continue;
        }
        let data = match &record.data {
            RData::A(a) => AnswerData::A(a.0),
            RData::AAAA(a) => AnswerData::Aaaa(a.0),
            RData::CNAME(c) => AnswerData::Cname(name_to_string(&c.0)),
            _ => continue,
        };
        answers.push(Answer {
            name: name_to_string(&record.name),
            ttl: record.ttl,
            data,
        });
    }

    // The extended RCODE's high 8 bits sit in the OPT record's TTL field
    // (RFC 6891 §6.1.3), so the additional section has to be walked.
    let mut rcode = header.rcode_low();
    let rest = header.nscount as usize + header.arcount as usize;
    for i in 0..rest {
        let record = Record::read(&mut decoder).map_err(|_| WireError::Record)?;
        if i >= header.nscount as usize && u16::from(record.record_type()) == RR_TYPE_OPT {
            rcode |= (((record.ttl >> 24) & 0xff) as u16) << 4;
        }
    }

    Ok(DnsMessage {
        id: header.id,
        is_response: header.is_response(),
        opcode: header.opcode(),
        rcode: Rcode(rcode),
        truncated: header.truncated(),
        question,
        answer_count: header.ancount,
        answers,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
    use hickory_proto::rr::rdata::{A, AAAA, CNAME};
    use hickory_proto::rr::RecordType;
    use std::str::FromStr;

    pub(crate) fn query_bytes(id: u16, name: &str, qtype: RecordType) -> Vec<u8> {
        let mut m = Message::new(id, MessageType::Query, OpCode::Query);
        m.add_query(Query::query(Name::from_str(name).unwrap(), qtype));
        m.to_vec().unwrap()
    }

    /// A response to `name`/`qtype` with `records` as (owner, ttl, rdata).
    pub(crate) fn response_bytes(
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

    pub(crate) fn a(ip: &str) -> RData {
        RData::A(A(ip.parse().unwrap()))
    }
    pub(crate) fn aaaa(ip: &str) -> RData {
        RData::AAAA(AAAA(ip.parse().unwrap()))
    }
    pub(crate) fn cname(target: &str) -> RData {
        RData::CNAME(CNAME(Name::from_str(target).unwrap()))
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
