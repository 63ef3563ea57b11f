//! Encoding of every frame the server sends, in one place.
//!
//! The server builds its frames from bounded parts, so they fit; should one not (a bug), the
//! client is told so with a short fatal error instead of the server panicking or sending a
//! frame the client would refuse.

use papo_protocol::{frame, ErrorCode, ErrorReply, ServerFrame, MAX_FRAME_LEN};
use tracing::warn;

/// One encoded frame.
pub(crate) fn encode(frame: &ServerFrame) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(frame, &mut out);
    out
}

/// Appends one encoded frame to `out`, so that frames for one connection go out in one write.
pub(crate) fn encode_into(frame: &ServerFrame, out: &mut Vec<u8>) {
    if let Err(e) = frame::encode_into(frame, MAX_FRAME_LEN, out) {
        warn!(error = %e, "a frame did not fit");
        let fallback =
            ServerFrame::Fatal(ErrorReply::new(ErrorCode::Internal, "the server built an oversized frame"));
        frame::encode_into(&fallback, MAX_FRAME_LEN, out).expect("a short error fits a frame");
    }
}

#[cfg(test)]
mod tests {
    use papo_protocol::{ChatMessage, Event, Reply, Username};

    use super::*;

    #[test]
    fn frames_round_trip_and_append() {
        let reply = ServerFrame::Reply { id: 3, result: Ok(Reply::Pong) };
        let mut out = encode(&reply);
        encode_into(&ServerFrame::Event(Event::ShuttingDown), &mut out);
        let (first, used) = frame::decode::<ServerFrame>(&out, MAX_FRAME_LEN).unwrap().unwrap();
        let (second, _) = frame::decode::<ServerFrame>(&out[used..], MAX_FRAME_LEN).unwrap().unwrap();
        assert_eq!((first, second), (reply, ServerFrame::Event(Event::ShuttingDown)));
    }

    #[test]
    fn an_oversized_frame_becomes_a_fatal_internal_error() {
        let name = Username::parse("ana").unwrap();
        let message =
            ChatMessage { id: 1, from: name.clone(), to: name, body: "x".repeat(MAX_FRAME_LEN), sent_at: 0 };
        let mut out = vec![9];
        encode_into(&ServerFrame::Event(Event::Message(message)), &mut out);
        let (frame, _) = frame::decode::<ServerFrame>(&out[1..], MAX_FRAME_LEN).unwrap().unwrap();
        assert!(matches!(frame, ServerFrame::Fatal(e) if e.code == ErrorCode::Internal));
        assert_eq!(out[0], 9, "what was there before stays");
    }
}
