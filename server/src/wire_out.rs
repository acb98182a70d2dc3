//! Zero-copy response framing: a response is encoded into a `SegmentedFrame`, a list of byte
//! chunks and file slices. Record bytes of a Fetch response are never copied into user space:
//! the handler gives each partition a *marker* — a `Bytes` of the right length that points into
//! a static zero page region — and when the protocol encoder writes a marker, the frame records
//! the next pending file slice instead of copying. The socket writer then sends chunks with
//! `write` and slices with `sendfile(2)` straight from the page cache.
//!
//! Invariant: markers are consumed in the order the encoder writes them, which is the order the
//! handler created them (partitions in response order); each marker's length equals its slice's.

use std::collections::VecDeque;
use std::ops::Range;
use std::os::fd::AsRawFd;

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::protocol::buf::ByteBufMut;
use strata_engine::FileSlice;
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::TcpStream;

use crate::client_stream::ClientStream;

/// Largest file slice sent zero-copy; larger ones (beyond any sane fetch size) are copied.
pub const MARKER_MAX: usize = 64 << 20;
static ZEROS: [u8; MARKER_MAX] = [0; MARKER_MAX];

/// A marker `Bytes` standing for `len` bytes of a file slice (see the module docs).
pub fn marker(len: usize) -> Option<Bytes> {
    (len <= MARKER_MAX).then(|| Bytes::from_static(&ZEROS[..len]))
}

fn is_marker(s: &[u8]) -> bool {
    let start = ZEROS.as_ptr() as usize;
    let p = s.as_ptr() as usize;
    !s.is_empty() && p >= start && p + s.len() <= start + MARKER_MAX
}

/// A part of a frame.
#[derive(Debug)]
pub enum Part {
    /// Bytes to write.
    Bytes(Bytes),
    /// A file range to sendfile.
    File(FileSlice),
}

/// An encoding target that turns markers into file parts.
#[derive(Debug)]
pub struct SegmentedFrame {
    parts: Vec<Part>,
    current: BytesMut,
    pending: VecDeque<FileSlice>,
    /// Bytes in completed parts before `current`.
    before: usize,
    /// Set when a marker did not match the next pending slice (the frame must not be sent).
    pub mismatch: bool,
}

impl SegmentedFrame {
    /// A frame whose markers stand for `slices`, in order.
    pub fn new(slices: Vec<FileSlice>) -> SegmentedFrame {
        SegmentedFrame {
            parts: Vec::new(),
            current: BytesMut::with_capacity(512),
            pending: slices.into(),
            before: 0,
            mismatch: false,
        }
    }

    /// Total length of the frame.
    pub fn len(&self) -> usize {
        self.before + self.current.len()
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Finishes the frame: its parts, or `None` if markers and slices did not line up.
    pub fn finish(mut self) -> Option<Vec<Part>> {
        if self.mismatch || !self.pending.is_empty() {
            return None;
        }
        if !self.current.is_empty() {
            self.parts.push(Part::Bytes(self.current.split().freeze()));
        }
        Some(self.parts)
    }

    /// Overwrites bytes at an absolute position that lies in the current chunk (the size prefix).
    pub fn patch_prefix(&mut self, at: usize, bytes: &[u8]) -> bool {
        if self.before > at {
            if let Some(Part::Bytes(first)) = self.parts.first_mut()
                && at + bytes.len() <= first.len()
            {
                let mut b = BytesMut::from(&first[..]);
                b[at..at + bytes.len()].copy_from_slice(bytes);
                *first = b.freeze();
                return true;
            }
            return false;
        }
        let at = at - self.before;
        match self.current.get_mut(at..at + bytes.len()) {
            Some(s) => {
                s.copy_from_slice(bytes);
                true
            }
            None => false,
        }
    }
}

// SAFETY: every method delegates to the inner `BytesMut`, whose implementation upholds the
// `BufMut` contract; `put_slice` only adds a fast path that never touches uninitialised memory.
unsafe impl BufMut for SegmentedFrame {
    fn remaining_mut(&self) -> usize {
        self.current.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: forwarded with the caller's guarantee that `cnt` bytes were initialised.
        unsafe { self.current.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.current.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        if is_marker(src) {
            match self.pending.pop_front() {
                Some(slice) if slice.len() == src.len() => {
                    let chunk = self.current.split().freeze();
                    self.before += chunk.len() + slice.len();
                    if !chunk.is_empty() {
                        self.parts.push(Part::Bytes(chunk));
                    }
                    self.parts.push(Part::File(slice));
                    return;
                }
                _ => self.mismatch = true,
            }
        }
        self.current.extend_from_slice(src);
    }
}

impl ByteBufMut for SegmentedFrame {
    fn offset(&self) -> usize {
        self.len()
    }

    fn seek(&mut self, offset: usize) {
        // Only moves within the current chunk are representable; the Fetch encoding never seeks.
        match offset.checked_sub(self.before) {
            Some(o) => self.current.resize(o, 0),
            None => self.mismatch = true,
        }
    }

    fn range(&mut self, r: Range<usize>) -> &mut [u8] {
        let start = r.start.saturating_sub(self.before);
        let end = r.end.saturating_sub(self.before);
        if r.start < self.before || end > self.current.len() {
            self.mismatch = true;
            return &mut [];
        }
        &mut self.current[start..end]
    }
}

/// Writes a frame's parts to the client: bytes with `write`, file slices with `sendfile` on a
/// plain connection, read and encrypted on a TLS one.
pub async fn write_parts(stream: &mut ClientStream, parts: Vec<Part>) -> std::io::Result<()> {
    match stream {
        ClientStream::Plain(tcp) => {
            for part in parts {
                match part {
                    Part::Bytes(b) => tcp.write_all(&b).await?,
                    Part::File(slice) => send_file(tcp, &slice).await?,
                }
            }
        }
        ClientStream::Tls(tls) => {
            for part in parts {
                match part {
                    Part::Bytes(b) => tls.write_all(&b).await?,
                    Part::File(slice) => copy_file(tls.as_mut(), &slice).await?,
                }
            }
            tls.flush().await?;
        }
    }
    Ok(())
}

/// Bytes of a file slice read at a time for a TLS connection.
const TLS_CHUNK: usize = 256 << 10;

/// Sends a file slice through a stream that cannot take `sendfile` (TLS): read in chunks with
/// `pread` (never mapped: a slow client must not hold a map of a file that may be truncated).
async fn copy_file(
    out: &mut (impl tokio::io::AsyncWrite + Unpin),
    slice: &FileSlice,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; TLS_CHUNK.min(slice.len())];
    let end = slice.position() + slice.len() as u64;
    let mut at = slice.position();
    while at < end {
        let want = usize::try_from(end - at)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let chunk = buf.get_mut(..want).unwrap_or_default();
        let n = slice.file().read_at(chunk, at)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "segment truncated while sending",
            ));
        }
        out.write_all(chunk.get(..n).unwrap_or_default()).await?;
        at += n as u64;
    }
    Ok(())
}

async fn send_file(stream: &mut TcpStream, slice: &FileSlice) -> std::io::Result<()> {
    let Some(in_fd) = slice.raw_fd() else {
        // No descriptor (simulated disk): copy.
        return stream.write_all(&slice.read_to_vec()?).await;
    };
    let out_fd = stream.as_raw_fd();
    let mut offset = slice.position() as libc::off_t;
    let end = slice.position() + slice.len() as u64;
    while (offset as u64) < end {
        let count = (end - offset as u64) as usize;
        stream.writable().await?;
        let sent = stream.try_io(Interest::WRITABLE, || {
            // SAFETY: both descriptors are open for the duration of the call (the slice holds the
            // file, the stream the socket) and `offset` is a valid pointer.
            let n = unsafe { libc::sendfile(out_fd, in_fd, &mut offset, count) };
            if n < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        });
        match sent {
            Ok(0) => {
                // The file is shorter than the slice (truncated under us): the frame cannot be
                // completed, so the connection must close.
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "segment truncated during sendfile",
                ));
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
