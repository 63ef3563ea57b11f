//! Blocking typed reads and writes of frames over any byte stream.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::ops::Deref;
use std::sync::Arc;

use serde::{de::DeserializeOwned, Serialize};

use crate::frame::{self, FrameError, HEADER_LEN};
use crate::tls::{TlsEngine, TlsReader, TlsStream, TlsWriter};
use crate::MAX_FRAME_LEN;

const READ_CHUNK: usize = 8 * 1024;

/// Reads whole frames from a byte stream, buffering what arrives past a frame's end.
#[derive(Debug)]
pub struct FrameReader<R> {
    inner: R,
    buf: Vec<u8>,
    start: usize,
    max: usize,
}

impl<R: Read> FrameReader<R> {
    /// A reader that accepts frames up to [`MAX_FRAME_LEN`].
    pub fn new(inner: R) -> Self {
        Self { inner, buf: Vec::new(), start: 0, max: MAX_FRAME_LEN }
    }

    /// Decodes a frame that is already buffered, without touching the stream.
    ///
    /// Lets a server drain pipelined requests before it blocks on the socket again.
    pub fn buffered_message<T: DeserializeOwned>(&mut self) -> Result<Option<T>, FrameError> {
        let Some((message, used)) = frame::decode(&self.buf[self.start..], self.max)? else {
            return Ok(None);
        };
        self.start += used;
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        Ok(Some(message))
    }

    /// Reads the next frame, blocking until it is complete.
    ///
    /// `Ok(None)` means the peer closed the connection cleanly between frames.
    pub fn read_message<T: DeserializeOwned>(&mut self) -> Result<Option<T>, FrameError> {
        loop {
            if let Some(message) = self.buffered_message()? {
                return Ok(Some(message));
            }
            if self.fill()? == 0 {
                return if self.start == self.buf.len() { Ok(None) } else { Err(FrameError::Truncated) };
            }
        }
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    fn fill(&mut self) -> Result<usize, FrameError> {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        // Never read much past the current frame, so a peer cannot make us buffer more than
        // one maximum frame plus a chunk.
        let wanted = match frame::payload_len(&self.buf, self.max)? {
            Some(len) => (HEADER_LEN + len).saturating_sub(self.buf.len()).max(READ_CHUNK),
            None => READ_CHUNK,
        };
        let filled = self.buf.len();
        self.buf.resize(filled + wanted, 0);
        let read = loop {
            match self.inner.read(&mut self.buf[filled..]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        self.buf.truncate(filled + *read.as_ref().unwrap_or(&0));
        Ok(read?)
    }
}

/// Writes frames to a byte stream.
#[derive(Debug)]
pub struct FrameWriter<W> {
    inner: W,
    buf: Vec<u8>,
}

impl<W: Write> FrameWriter<W> {
    /// A writer with an empty queue.
    pub fn new(inner: W) -> Self {
        Self { inner, buf: Vec::new() }
    }

    /// Queues a frame without writing it; [`FrameWriter::flush`] sends all queued frames in
    /// one write.
    pub fn queue_message<T: Serialize>(&mut self, message: &T) -> Result<(), FrameError> {
        frame::encode_into(message, MAX_FRAME_LEN, &mut self.buf)
    }

    /// Writes every queued frame.
    pub fn flush(&mut self) -> Result<(), FrameError> {
        let result = self.inner.write_all(&self.buf).and_then(|()| self.inner.flush());
        self.buf.clear();
        Ok(result?)
    }

    /// Queues and writes one frame.
    pub fn write_message<T: Serialize>(&mut self, message: &T) -> Result<(), FrameError> {
        self.queue_message(message)?;
        self.flush()
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }
}

/// The reading half of a connection: the socket itself, or TLS over it.
///
/// Both halves share one socket rather than `try_clone` it, which keeps a connection to one
/// file descriptor: a load generator holding 10,000 connections must stay under the
/// open-file limit. The defaults are the client's; the server keeps its TLS state elsewhere.
#[derive(Debug)]
pub enum ReadHalf<E = Arc<TlsStream>, S = Arc<TcpStream>> {
    /// Frames in the clear.
    Plain(S),
    /// Frames inside TLS.
    Tls(TlsReader<E, S>),
}

/// The writing half of a connection.
#[derive(Debug, Clone)]
pub enum WriteHalf {
    /// Frames in the clear.
    Plain(Arc<TcpStream>),
    /// Frames inside TLS.
    Tls(TlsWriter),
}

impl<E: TlsEngine, S: Deref<Target = TcpStream>> ReadHalf<E, S> {
    /// The socket, for timeouts and shutdown.
    pub fn socket(&self) -> &TcpStream {
        match self {
            Self::Plain(socket) => socket,
            Self::Tls(reader) => reader.socket(),
        }
    }
}

impl WriteHalf {
    /// The socket, for timeouts and shutdown.
    pub fn socket(&self) -> &TcpStream {
        match self {
            Self::Plain(socket) => socket,
            Self::Tls(writer) => writer.0.socket(),
        }
    }
}

impl<E: TlsEngine, S: Deref<Target = TcpStream>> Read for ReadHalf<E, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Plain(socket) => (&**socket).read(buf),
            Self::Tls(reader) => reader.read(buf),
        }
    }
}

impl Write for WriteHalf {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Plain(socket) => (&**socket).write(buf),
            Self::Tls(writer) => writer.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Plain(socket) => (&**socket).flush(),
            Self::Tls(writer) => writer.flush(),
        }
    }
}

/// A connection that reads and writes whole frames, in the clear or inside TLS.
#[derive(Debug)]
pub struct Connection {
    reader: FrameReader<ReadHalf>,
    writer: FrameWriter<WriteHalf>,
}

impl Connection {
    /// Frames in the clear over a connected socket.
    pub fn plain(socket: TcpStream) -> Self {
        let socket = Arc::new(socket);
        Self::from_halves(ReadHalf::Plain(Arc::clone(&socket)), WriteHalf::Plain(socket))
    }

    /// Frames inside a TLS session whose handshake is done.
    pub fn tls(stream: TlsStream) -> Self {
        let stream = Arc::new(stream);
        let socket = stream.shared_socket();
        Self::from_halves(
            ReadHalf::Tls(TlsReader::new(Arc::clone(&stream), socket)),
            WriteHalf::Tls(TlsWriter(stream)),
        )
    }

    fn from_halves(reader: ReadHalf, writer: WriteHalf) -> Self {
        Self { reader: FrameReader::new(reader), writer: FrameWriter::new(writer) }
    }

    /// Reads the next frame; `Ok(None)` when the peer closed cleanly.
    pub fn read_message<T: DeserializeOwned>(&mut self) -> Result<Option<T>, FrameError> {
        self.reader.read_message()
    }

    /// Writes one frame.
    pub fn write_message<T: Serialize>(&mut self, message: &T) -> Result<(), FrameError> {
        self.writer.write_message(message)
    }

    /// The socket, for timeouts and shutdown.
    pub fn stream(&self) -> &TcpStream {
        self.reader.get_ref().socket()
    }

    /// Separates the halves so one thread can read while another writes.
    pub fn split(self) -> (FrameReader<ReadHalf>, FrameWriter<WriteHalf>) {
        (self.reader, self.writer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ClientFrame, Hello};

    fn hello(name: &str) -> ClientFrame {
        ClientFrame::Hello(Hello { protocol_version: 1, client_name: name.into() })
    }

    /// Hands out its bytes a few at a time, like a slow socket.
    struct Trickle<'a>(&'a [u8], usize);

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.1.min(out.len()).min(self.0.len());
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn reads_frames_split_across_reads_and_sees_clean_close() {
        let mut bytes = Vec::new();
        let mut writer = FrameWriter::new(&mut bytes);
        writer.queue_message(&hello("a")).unwrap();
        writer.queue_message(&hello("b")).unwrap();
        writer.flush().unwrap();
        let mut reader = FrameReader::new(Trickle(&bytes, 3));
        assert_eq!(reader.read_message::<ClientFrame>().unwrap(), Some(hello("a")));
        assert_eq!(reader.read_message::<ClientFrame>().unwrap(), Some(hello("b")));
        assert!(reader.read_message::<ClientFrame>().unwrap().is_none());
    }

    #[test]
    fn close_inside_a_frame_is_truncated() {
        let bytes = frame::encode(&hello("abc"), MAX_FRAME_LEN).unwrap();
        let mut reader = FrameReader::new(Trickle(&bytes[..bytes.len() - 1], 64));
        assert!(matches!(reader.read_message::<ClientFrame>(), Err(FrameError::Truncated)));
    }
}
