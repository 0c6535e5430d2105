//! Gateway protocol v1 (GATEWAY.md): opcodes, close codes, and the frames we send. Inbound
//! frames are parsed into a typed command; anything else is a typed error.

use bytes::{BufMut, BytesMut};
use serde::Deserialize;
use serde_json::value::RawValue;

pub use conclave_core::opcodes::*;

/// Close codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseCode {
    UnknownError = 4000,
    UnknownOpcode = 4001,
    DecodeError = 4002,
    NotAuthenticated = 4003,
    AuthenticationFailed = 4004,
    AlreadyAuthenticated = 4005,
    InvalidSeq = 4007,
    RateLimited = 4008,
    SessionTimedOut = 4009,
    PayloadTooLarge = 4010,
    UnsupportedVersion = 4012,
    NotPermitted = 4014,
}

impl CloseCode {
    #[must_use]
    pub const fn code(self) -> u16 {
        self as u16
    }

    /// How a socket whose credential lapsed is closed, when a connection starts and at a
    /// heartbeat (the hub closes on the events with the same codes and reasons).
    #[must_use]
    pub const fn lapsed(why: conclave_core::service::Lapsed) -> (Self, &'static str) {
        match why {
            conclave_core::service::Lapsed::Revoked => {
                (Self::AuthenticationFailed, "credential revoked")
            }
            conclave_core::service::Lapsed::SecondFactorRequired => {
                (Self::NotPermitted, SECOND_FACTOR_REQUIRED)
            }
        }
    }
}

/// Why a socket of a user who must turn on 2FA first is closed (4014).
pub const SECOND_FACTOR_REQUIRED: &str = "two-factor authentication is required: turn it on first";

/// A frame from the client. `op` is read as any unsigned integer: one past our opcodes (256
/// too) is an unknown opcode (4001), not a frame that could not be decoded (4002).
#[derive(Debug, Deserialize)]
struct RawFrame<'a> {
    op: u64,
    #[serde(borrow, default)]
    d: Option<&'a RawValue>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identify {
    pub token: Option<String>,
    pub client: Option<String>,
    pub protocol_version: Option<u32>,
    /// The access-token gate's token (AUTH-9), required when the gate is on.
    pub access_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resume {
    pub token: Option<String>,
    pub session_id: String,
    /// The last `s` the client saw; `null` (it has seen none yet) is 0, as for HEARTBEAT. The
    /// field itself must be present.
    #[serde(deserialize_with = "nullable_seq")]
    pub seq: u64,
    /// The access-token gate's token (AUTH-9), required when the gate is on.
    pub access_token: Option<String>,
}

fn nullable_seq<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Ok(Option::<u64>::deserialize(d)?.unwrap_or(0))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientStatus {
    Online,
    Idle,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresenceUpdate {
    pub status: ClientStatus,
}

/// What a client can say.
#[derive(Debug)]
pub enum Command {
    Heartbeat(Option<u64>),
    Identify(Identify),
    Resume(Resume),
    Presence(PresenceUpdate),
}

/// Why an inbound frame was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameError {
    Decode,
    UnknownOpcode,
}

impl FrameError {
    #[must_use]
    pub const fn close_code(&self) -> CloseCode {
        match self {
            Self::Decode => CloseCode::DecodeError,
            Self::UnknownOpcode => CloseCode::UnknownOpcode,
        }
    }
}

fn payload<'a, T: Deserialize<'a>>(d: Option<&'a RawValue>) -> Result<T, FrameError> {
    let raw = d.ok_or(FrameError::Decode)?;
    serde_json::from_str(raw.get()).map_err(|_| FrameError::Decode)
}

/// Parses one text frame.
pub fn parse(text: &str) -> Result<Command, FrameError> {
    let frame: RawFrame<'_> = serde_json::from_str(text).map_err(|_| FrameError::Decode)?;
    let op = u8::try_from(frame.op).map_err(|_| FrameError::UnknownOpcode)?;
    match op {
        HEARTBEAT => {
            let seq = match frame.d {
                None => None,
                Some(raw) => serde_json::from_str::<Option<u64>>(raw.get())
                    .map_err(|_| FrameError::Decode)?,
            };
            Ok(Command::Heartbeat(seq))
        }
        IDENTIFY => Ok(Command::Identify(payload(frame.d)?)),
        RESUME => Ok(Command::Resume(payload(frame.d)?)),
        PRESENCE_UPDATE => Ok(Command::Presence(payload(frame.d)?)),
        _ => Err(FrameError::UnknownOpcode),
    }
}

/// A frame with `op` and a JSON payload (never a DISPATCH with a sequence).
#[must_use]
pub fn control(op: u8, d: &serde_json::Value) -> String {
    serde_json::json!({"op": op, "d": d, "s": null, "t": null}).to_string()
}

/// A DISPATCH frame around an already serialized payload: the payload's bytes are copied in,
/// never re-serialized.
#[must_use]
pub fn dispatch(s: Option<u64>, t: &str, d: &RawValue) -> String {
    let mut n = itoa::Buffer::new();
    dispatch_parts(&mut n, s, t, d).concat()
}

/// Appends a DISPATCH frame, as a WebSocket frame, around an already serialized payload.
pub fn put_dispatch(buf: &mut BytesMut, s: Option<u64>, t: &str, d: &RawValue) {
    let mut n = itoa::Buffer::new();
    put_text_frame(buf, &dispatch_parts(&mut n, s, t, d));
}

/// The pieces of a DISPATCH frame's JSON, in order.
fn dispatch_parts<'a>(
    n: &'a mut itoa::Buffer,
    s: Option<u64>,
    t: &'a str,
    d: &'a RawValue,
) -> [&'a str; 7] {
    let s = match s {
        Some(s) => n.format(s),
        None => "null",
    };
    [
        "{\"op\":0,\"s\":",
        s,
        ",\"t\":\"",
        t,
        "\",\"d\":",
        d.get(),
        "}",
    ]
}

/// Appends one WebSocket text frame whose payload is `parts` joined: final, unmasked (server to
/// client, RFC 6455 §5.2), the length in the shortest form.
pub fn put_text_frame(buf: &mut BytesMut, parts: &[&str]) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    buf.reserve(len + 10);
    buf.put_u8(0x81);
    if len < 126 {
        buf.put_u8(len as u8);
    } else if let Ok(short) = u16::try_from(len) {
        buf.put_u8(126);
        buf.put_u16(short);
    } else {
        buf.put_u8(127);
        buf.put_u64(len as u64);
    }
    for p in parts {
        buf.extend_from_slice(p.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_tungstenite::tungstenite;

    #[test]
    fn parses_commands_and_refuses_the_rest() {
        assert!(matches!(
            parse(r#"{"op":1,"d":5}"#),
            Ok(Command::Heartbeat(Some(5)))
        ));
        assert!(matches!(
            parse(r#"{"op":1,"d":null}"#),
            Ok(Command::Heartbeat(None))
        ));
        assert!(matches!(
            parse(r#"{"op":2,"d":{"token":"Bearer x","client":"a/1.0.0","protocol_version":1}}"#),
            Ok(Command::Identify(_))
        ));
        assert_eq!(
            parse(r#"{"op":99,"d":null}"#).unwrap_err(),
            FrameError::UnknownOpcode
        );
        // Past a byte, an opcode is still an unknown one, not a decode error.
        for op in ["256", "257", "65536", "18446744073709551615"] {
            assert_eq!(
                parse(&format!(r#"{{"op":{op},"d":null}}"#)).unwrap_err(),
                FrameError::UnknownOpcode,
                "{op}"
            );
        }
        // Not an unsigned integer: the frame does not decode.
        for op in ["-1", "1.5", "\"1\"", "null"] {
            assert_eq!(
                parse(&format!(r#"{{"op":{op},"d":null}}"#)).unwrap_err(),
                FrameError::Decode,
                "{op}"
            );
        }
        assert_eq!(parse("not json").unwrap_err(), FrameError::Decode);
        assert_eq!(
            parse(r#"{"op":2,"d":{"bogus":1}}"#).unwrap_err(),
            FrameError::Decode
        );
        assert_eq!(
            parse(r#"{"op":3,"d":{"status":"asleep"}}"#).unwrap_err(),
            FrameError::Decode
        );
    }

    #[test]
    fn resume_with_a_null_seq_starts_from_zero() {
        let resume = |text: &str| match parse(text) {
            Ok(Command::Resume(r)) => Ok(r.seq),
            Ok(other) => panic!("not a RESUME: {other:?}"),
            Err(e) => Err(e),
        };
        assert_eq!(
            resume(r#"{"op":6,"d":{"session_id":"x","seq":null}}"#),
            Ok(0)
        );
        assert_eq!(resume(r#"{"op":6,"d":{"session_id":"x","seq":7}}"#), Ok(7));
        // The field is still required, and must be a number when given.
        assert_eq!(
            resume(r#"{"op":6,"d":{"session_id":"x"}}"#),
            Err(FrameError::Decode)
        );
        assert_eq!(
            resume(r#"{"op":6,"d":{"session_id":"x","seq":-1}}"#),
            Err(FrameError::Decode)
        );
    }

    #[test]
    fn dispatch_frames_are_json() {
        let d = RawValue::from_string(r#"{"a":[1,2]}"#.into()).unwrap();
        let f = dispatch(Some(7), "MESSAGE_CREATE", &d);
        let v: serde_json::Value = serde_json::from_str(&f).unwrap();
        assert_eq!(v["op"], 0);
        assert_eq!(v["s"], 7);
        assert_eq!(v["t"], "MESSAGE_CREATE");
        assert_eq!(v["d"]["a"][1], 2);
        assert_eq!(
            dispatch(None, "READY", &d),
            r#"{"op":0,"s":null,"t":"READY","d":{"a":[1,2]}}"#
        );
    }

    /// Decodes one server frame with the WebSocket codec the clients use.
    fn decode(bytes: &[u8]) -> (tungstenite::protocol::frame::FrameHeader, String) {
        use tungstenite::protocol::frame::FrameHeader;
        let mut cursor = std::io::Cursor::new(bytes);
        let (header, len) = FrameHeader::parse(&mut cursor).unwrap().unwrap();
        let start = usize::try_from(cursor.position()).unwrap();
        assert_eq!(
            start + usize::try_from(len).unwrap(),
            bytes.len(),
            "one whole frame"
        );
        (header, String::from_utf8(bytes[start..].to_vec()).unwrap())
    }

    #[test]
    fn text_frames_use_every_length_form() {
        for len in [0, 1, 125, 126, 127, 65_535, 65_536, 70_000] {
            let text = "x".repeat(len);
            let mut buf = BytesMut::new();
            put_text_frame(&mut buf, &[&text[..len / 2], &text[len / 2..]]);
            let (header, payload) = decode(&buf);
            assert!(header.is_final);
            assert_eq!(
                header.opcode,
                tungstenite::protocol::frame::coding::OpCode::Data(
                    tungstenite::protocol::frame::coding::Data::Text
                )
            );
            assert!(header.mask.is_none(), "server frames are not masked");
            assert_eq!(payload, text, "length {len}");
        }
        let d = RawValue::from_string(r#"{"content":"é"}"#.into()).unwrap();
        let mut buf = BytesMut::new();
        put_dispatch(&mut buf, Some(42), "MESSAGE_CREATE", &d);
        assert_eq!(decode(&buf).1, dispatch(Some(42), "MESSAGE_CREATE", &d));
    }
}
