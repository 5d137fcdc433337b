//! HTTP/2 frames (RFC 9113 §4.1) and the client connection preface.
//!
//! ```text
//! +-----------------------------------------------+
//! |                 Length (24)                   |
//! +---------------+---------------+---------------+
//! |   Type (8)    |   Flags (8)   |
//! +-+-------------+---------------+-------------------------------+
//! |R|                 Stream Identifier (31)                      |
//! +=+=============================================================+
//! |                   Frame Payload (Length)                    ...
//! ```

/// The client connection preface of HTTP/2 (prior knowledge or after TLS).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
pub const HEADER_LEN: usize = 9;

pub const DATA: u8 = 0;
pub const HEADERS: u8 = 1;
pub const PRIORITY: u8 = 2;
pub const RST_STREAM: u8 = 3;
pub const SETTINGS: u8 = 4;
pub const PUSH_PROMISE: u8 = 5;
pub const PING: u8 = 6;
pub const GOAWAY: u8 = 7;
pub const WINDOW_UPDATE: u8 = 8;
pub const CONTINUATION: u8 = 9;

pub const FLAG_END_STREAM: u8 = 0x1;
pub const FLAG_ACK: u8 = 0x1;
pub const FLAG_END_HEADERS: u8 = 0x4;
pub const FLAG_PADDED: u8 = 0x8;
pub const FLAG_PRIORITY: u8 = 0x20;

/// The largest frame payload a peer may announce (SETTINGS_MAX_FRAME_SIZE
/// upper bound, 2^24 − 1) is what the length field holds; nothing to check.
/// The default maximum, which a frame header seen without context should
/// respect to be believed.
pub const DEFAULT_MAX_FRAME: u32 = 16_384;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    pub len: u32,
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
}

impl FrameHeader {
    pub fn parse(b: &[u8; HEADER_LEN]) -> FrameHeader {
        let [l0, l1, l2, kind, flags, s0, s1, s2, s3] = *b;
        FrameHeader {
            len: u32::from_be_bytes([0, l0, l1, l2]),
            kind,
            flags,
            stream: u32::from_be_bytes([s0 & 0x7f, s1, s2, s3]),
        }
    }

    fn reserved_bit(b: &[u8; HEADER_LEN]) -> bool {
        b[5] & 0x80 != 0
    }

    /// Whether the header is plausible for a frame of a known type: stream
    /// 0 exactly for connection frames, fixed lengths where the RFC fixes
    /// them. Used to find frame boundaries without having seen the start.
    pub fn plausible(b: &[u8; HEADER_LEN]) -> bool {
        let h = FrameHeader::parse(b);
        if FrameHeader::reserved_bit(b) || h.len > DEFAULT_MAX_FRAME {
            return false;
        }
        match h.kind {
            DATA | HEADERS | CONTINUATION | PUSH_PROMISE => h.stream != 0,
            PRIORITY => h.stream != 0 && h.len == 5,
            RST_STREAM => h.stream != 0 && h.len == 4,
            SETTINGS => h.stream == 0 && h.len % 6 == 0 && h.flags & !FLAG_ACK == 0,
            PING => h.stream == 0 && h.len == 8 && h.flags & !FLAG_ACK == 0,
            GOAWAY => h.stream == 0 && h.len >= 8,
            WINDOW_UPDATE => h.len == 4,
            _ => false,
        }
    }
}

/// Whether `payload` (the captured part of a segment of `payload_len`
/// bytes) is exactly a whole number of plausible frames, starting at its
/// first byte. That is how a reader that joined a connection late finds a
/// frame boundary. Frames whose payload lies past the capture cut count if
/// the last one ends exactly at `payload_len`.
pub fn whole_frames(payload: &[u8], payload_len: u32) -> bool {
    let total = payload_len as usize;
    let mut at = 0usize;
    let mut frames = 0;
    while at < total {
        let Some(head) = payload
            .get(at..at + HEADER_LEN)
            .and_then(|h| <&[u8; HEADER_LEN]>::try_from(h).ok())
        else {
            return false;
        };
        if !FrameHeader::plausible(head) {
            return false;
        }
        at += HEADER_LEN + FrameHeader::parse(head).len as usize;
        frames += 1;
        if at > payload.len() && at != total {
            return false;
        }
    }
    frames > 0 && at == total
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
        f.push(kind);
        f.push(flags);
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn header_fields() {
        let f = frame(HEADERS, FLAG_END_HEADERS, 0x8000_0003, &[1, 2, 3]);
        let h = FrameHeader::parse(f[..9].try_into().unwrap());
        assert_eq!(
            h,
            FrameHeader {
                len: 3,
                kind: HEADERS,
                flags: FLAG_END_HEADERS,
                stream: 3
            }
        );
        assert!(!FrameHeader::plausible(f[..9].try_into().unwrap()));
    }

    #[test]
    fn whole_frames_finds_boundaries_only_when_they_add_up() {
        let mut seg = frame(SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100]);
        seg.extend(frame(WINDOW_UPDATE, 0, 0, &[0, 0, 1, 0]));
        seg.extend(frame(HEADERS, FLAG_END_HEADERS, 1, &[0x82, 0x86]));
        assert!(whole_frames(&seg, seg.len() as u32));
        assert!(!whole_frames(&seg[1..], seg.len() as u32 - 1));
        assert!(!whole_frames(&seg, seg.len() as u32 + 1));
        assert!(!whole_frames(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27));
        assert!(!whole_frames(&[], 0));
        // A DATA frame whose payload was cut by the capture still adds up.
        let data = frame(DATA, 0, 1, &[7u8; 2000]);
        assert!(whole_frames(&data[..1024], data.len() as u32));
    }
}
