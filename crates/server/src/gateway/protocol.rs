//! Gateway protocol v1 (GATEWAY.md): opcodes, close codes, and the frames we send. Inbound
//! frames are parsed into a typed command; anything else is a typed error.

use serde::Deserialize;
use serde_json::value::RawValue;

pub const DISPATCH: u8 = 0;
pub const HEARTBEAT: u8 = 1;
pub const IDENTIFY: u8 = 2;
pub const PRESENCE_UPDATE: u8 = 3;
pub const RESUME: u8 = 6;
pub const RECONNECT: u8 = 7;
pub const INVALID_SESSION: u8 = 9;
pub const HELLO: u8 = 10;
pub const HEARTBEAT_ACK: u8 = 11;

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
}

/// A frame from the client.
#[derive(Debug, Deserialize)]
struct RawFrame<'a> {
    op: u8,
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
    match frame.op {
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
    let mut out = String::with_capacity(d.get().len() + t.len() + 40);
    out.push_str("{\"op\":0,\"s\":");
    match s {
        Some(s) => out.push_str(itoa::Buffer::new().format(s)),
        None => out.push_str("null"),
    }
    out.push_str(",\"t\":\"");
    out.push_str(t);
    out.push_str("\",\"d\":");
    out.push_str(d.get());
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
