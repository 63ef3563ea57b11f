//! Arbitrary bytes into the frame decoder and the buffered frame reader: typed errors or
//! values, never a panic, never an allocation past the frame limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use papo_protocol::{frame, ClientFrame, FrameReader, ServerFrame, MAX_FRAME_LEN};

fuzz_target!(|data: &[u8]| {
    let _ = frame::decode::<ClientFrame>(data, MAX_FRAME_LEN);
    let _ = frame::decode::<ServerFrame>(data, MAX_FRAME_LEN);
    let mut reader = FrameReader::new(data);
    while let Ok(Some(_)) = reader.read_message::<ClientFrame>() {}
});
