//! The pairs workload over Papo's protocol: `Send` requests out, `Sent` replies as
//! acknowledgements, `Message` events in.

use std::io::{self, ErrorKind};
use std::time::Duration;

use anyhow::Result;
use papo_protocol::{
    ClientFrame, Event, FrameError, FrameReader, FrameWriter, ReadHalf, Reply, Request, ServerFrame,
    WriteHalf,
};

use crate::pairs::{AckSource, Delivery, Inbox, Outbox, PairEnds, Read, Settled};
use crate::target::Target;
use crate::users;

/// How long one read waits before the loops look at their deadline again.
pub const READ_TIMEOUT: Duration = Duration::from_millis(200);

/// A sender's outgoing frames, addressed to its receiver.
pub struct PapoOutbox {
    /// The sender's connection.
    pub writer: FrameWriter<WriteHalf>,
    /// A user or a `#group`.
    pub to: String,
}

/// A sender's incoming frames, where its `Sent` replies arrive.
pub struct PapoAcks(pub FrameReader<ReadHalf>);

/// A receiver's incoming frames.
pub struct PapoInbox(FrameReader<ReadHalf>);

/// Registers and logs in `2 × pairs` users named `{prefix}{i}` and pairs them up.
pub fn connect(
    target: &Target,
    pairs: usize,
    prefix: &str,
) -> Result<Vec<PairEnds<PapoOutbox, PapoAcks, PapoInbox>>> {
    let clients = users::logged_in(target, prefix, pairs * 2, 8)?;
    let mut ends = Vec::with_capacity(pairs);
    let mut clients = clients.into_iter();
    while let (Some((sender, _)), Some((receiver, receiver_session))) = (clients.next(), clients.next()) {
        let (sender_conn, _) = sender.into_parts();
        let (receiver_conn, _) = receiver.into_parts();
        let (ack_reader, writer) = sender_conn.split();
        let (receiver_reader, _) = receiver_conn.split();
        ack_reader.get_ref().socket().set_read_timeout(Some(READ_TIMEOUT))?;
        receiver_reader.get_ref().socket().set_read_timeout(Some(READ_TIMEOUT))?;
        ends.push(PairEnds {
            outbox: PapoOutbox { writer, to: receiver_session.name.to_string() },
            acks: PapoAcks(ack_reader),
            inbox: PapoInbox(receiver_reader),
        });
    }
    Ok(ends)
}

impl Outbox for PapoOutbox {
    fn queue(&mut self, seq: u64, body: &str) -> io::Result<()> {
        let request = Request::Send { to: self.to.clone(), body: body.to_owned(), client_msg_id: seq };
        self.writer.queue_message(&ClientFrame::Request { id: seq, request }).map_err(io::Error::other)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer.flush().map_err(io::Error::other)
    }
}

impl AckSource for PapoAcks {
    fn next_settled(&mut self) -> Read<Settled> {
        match next_frame(&mut self.0) {
            Read::Item(ServerFrame::Reply { result, .. }) => {
                let failed = u64::from(!matches!(result, Ok(Reply::Sent { .. })));
                Read::Item(Settled { count: 1, failed })
            }
            Read::Item(_) | Read::Other => Read::Other,
            Read::TimedOut => Read::TimedOut,
            Read::Closed => Read::Closed,
        }
    }
}

impl Inbox for PapoInbox {
    fn next_delivery(&mut self) -> Read<Delivery> {
        match next_frame(&mut self.0) {
            Read::Item(ServerFrame::Event(Event::Message(message))) => {
                let sent_at = crate::pairs::parse_body(&message.body).map(|(sent_at, _)| sent_at);
                Read::Item(Delivery { id: message.id, sent_at })
            }
            Read::Item(_) | Read::Other => Read::Other,
            Read::TimedOut => Read::TimedOut,
            Read::Closed => Read::Closed,
        }
    }
}

/// The next frame, or why there is none within the read timeout.
pub fn next_frame(reader: &mut FrameReader<ReadHalf>) -> Read<ServerFrame> {
    match reader.read_message::<ServerFrame>() {
        Ok(Some(frame)) => Read::Item(frame),
        Err(FrameError::Io(e)) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            Read::TimedOut
        }
        Ok(None) | Err(_) => Read::Closed,
    }
}
