//! The pure frame codec: a 4-byte big-endian payload length, then a bincode 2 payload.
//!
//! No sockets here, so the codec can be tested and fuzzed on plain byte slices. The length
//! prefix is checked against the maximum before anything is allocated for the payload.

use serde::{de::DeserializeOwned, Serialize};

/// Bytes of the length prefix.
pub const HEADER_LEN: usize = 4;

/// Why a frame could not be encoded, decoded, read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The length prefix (or an encoded message) exceeds the maximum frame size.
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// The announced or encoded payload length.
        len: usize,
        /// The limit in force.
        max: usize,
    },
    /// The payload is not a valid message.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// The peer closed the connection in the middle of a frame.
    #[error("connection closed in the middle of a frame")]
    Truncated,
    /// The socket failed (including read and write timeouts).
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

fn config() -> bincode::config::Configuration<
    bincode::config::BigEndian,
    bincode::config::Varint,
    bincode::config::Limit<{ crate::MAX_FRAME_LEN }>,
> {
    // The limit stops a lying length inside a payload from reserving more than a frame holds.
    bincode::config::standard().with_big_endian().with_limit::<{ crate::MAX_FRAME_LEN }>()
}

/// Appends one frame holding `message` to `out`.
///
/// On error `out` is left as it was.
pub fn encode_into<T: Serialize>(message: &T, max: usize, out: &mut Vec<u8>) -> Result<(), FrameError> {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_LEN]);
    let written = bincode::serde::encode_into_std_write(message, out, config())
        .map_err(|e| FrameError::Malformed(format!("cannot encode: {e}")));
    let len = match written {
        Ok(len) if len <= max => len,
        Ok(len) => {
            out.truncate(start);
            return Err(FrameError::TooLarge { len, max });
        }
        Err(e) => {
            out.truncate(start);
            return Err(e);
        }
    };
    let prefix = u32::try_from(len).expect("len <= max frame, which fits in u32");
    out[start..start + HEADER_LEN].copy_from_slice(&prefix.to_be_bytes());
    Ok(())
}

/// One frame holding `message`.
pub fn encode<T: Serialize>(message: &T, max: usize) -> Result<Vec<u8>, FrameError> {
    let mut out = Vec::new();
    encode_into(message, max, &mut out)?;
    Ok(out)
}

/// The payload length a complete header announces, or `None` if fewer than
/// [`HEADER_LEN`] bytes are buffered. Fails before allocation if it exceeds `max`.
pub fn payload_len(buf: &[u8], max: usize) -> Result<Option<usize>, FrameError> {
    let Some(header) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes(header.try_into().expect("slice of HEADER_LEN")) as usize;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    Ok(Some(len))
}

/// Decodes the first frame of `buf`.
///
/// Returns the message and the bytes it used, or `None` if `buf` holds only part of a frame.
pub fn decode<T: DeserializeOwned>(buf: &[u8], max: usize) -> Result<Option<(T, usize)>, FrameError> {
    let Some(len) = payload_len(buf, max)? else {
        return Ok(None);
    };
    let Some(payload) = buf.get(HEADER_LEN..HEADER_LEN + len) else {
        return Ok(None);
    };
    let (message, used) = bincode::serde::decode_from_slice(payload, config())
        .map_err(|e| FrameError::Malformed(e.to_string()))?;
    if used != len {
        return Err(FrameError::Malformed(format!("{} trailing bytes after the message", len - used)));
    }
    Ok(Some((message, HEADER_LEN + len)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ClientFrame, Hello, Request, MAX_FRAME_LEN};

    fn sample() -> ClientFrame {
        ClientFrame::Request {
            id: 7,
            request: Request::Send { to: "bob".into(), body: "olá 👋".into(), client_msg_id: 42 },
        }
    }

    #[test]
    fn round_trips() {
        let bytes = encode(&sample(), MAX_FRAME_LEN).unwrap();
        let (back, used) = decode::<ClientFrame>(&bytes, MAX_FRAME_LEN).unwrap().unwrap();
        assert_eq!(back, sample());
        assert_eq!(used, bytes.len());
    }

    #[test]
    fn partial_frames_need_more_bytes() {
        let bytes = encode(&sample(), MAX_FRAME_LEN).unwrap();
        for cut in 0..bytes.len() {
            assert!(decode::<ClientFrame>(&bytes[..cut], MAX_FRAME_LEN).unwrap().is_none(), "cut at {cut}");
        }
    }

    #[test]
    fn oversized_prefix_fails_before_payload_arrives() {
        let header = u32::MAX.to_be_bytes();
        let err = decode::<ClientFrame>(&header, MAX_FRAME_LEN).unwrap_err();
        assert!(
            matches!(err, FrameError::TooLarge { len, max } if len == u32::MAX as usize && max == MAX_FRAME_LEN)
        );
    }

    #[test]
    fn oversized_message_is_not_encoded() {
        let big = ClientFrame::Hello(Hello { protocol_version: 1, client_name: "x".repeat(100) });
        let mut out = vec![1, 2, 3];
        assert!(matches!(encode_into(&big, 50, &mut out), Err(FrameError::TooLarge { max: 50, .. })));
        assert_eq!(out, [1, 2, 3]);
    }

    #[test]
    fn garbage_and_trailing_bytes_are_malformed() {
        let garbage = [0, 0, 0, 3, 0xff, 0xff, 0xff];
        assert!(matches!(decode::<ClientFrame>(&garbage, MAX_FRAME_LEN), Err(FrameError::Malformed(_))));

        let mut padded = encode(&sample(), MAX_FRAME_LEN).unwrap();
        padded.push(0);
        let len = u32::try_from(padded.len() - HEADER_LEN).unwrap();
        padded[..HEADER_LEN].copy_from_slice(&len.to_be_bytes());
        assert!(matches!(decode::<ClientFrame>(&padded, MAX_FRAME_LEN), Err(FrameError::Malformed(_))));

        let empty = [0, 0, 0, 0];
        assert!(matches!(decode::<ClientFrame>(&empty, MAX_FRAME_LEN), Err(FrameError::Malformed(_))));
    }

    #[test]
    fn invalid_names_inside_server_frames_are_malformed() {
        // A `Username` field is validated while decoding, so a peer cannot smuggle one in.
        let frame = crate::ServerFrame::Event(crate::Event::Presence {
            user: crate::Username::parse("ok").unwrap(),
            online: true,
        });
        let mut bytes = encode(&frame, MAX_FRAME_LEN).unwrap();
        let at = bytes.windows(2).position(|w| w == b"ok").unwrap();
        bytes[at] = b'/';
        assert!(matches!(decode::<crate::ServerFrame>(&bytes, MAX_FRAME_LEN), Err(FrameError::Malformed(_))));
    }
}
