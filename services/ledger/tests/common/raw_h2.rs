//! A hand-written HTTP/2 client over an authenticated TLS connection, to do what no
//! well-behaved client library will (and to watch frames such as GOAWAY arrive).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test setup: a panic is a failed test"
)]

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use zt_testkit::raw_config;

use super::Pki;

pub(crate) const HEADERS: u8 = 0x1;
pub(crate) const RST_STREAM: u8 = 0x3;
pub(crate) const SETTINGS: u8 = 0x4;
pub(crate) const GOAWAY: u8 = 0x7;
pub(crate) const CONTINUATION: u8 = 0x9;
pub(crate) const DATA: u8 = 0x0;
pub(crate) const END_HEADERS: u8 = 0x4;
pub(crate) const CANCEL: u32 = 0x8;
pub(crate) const REFUSED_STREAM: u32 = 0x7;

/// One HTTP/2 frame as read: type, flags, stream, payload.
#[derive(Debug)]
pub(crate) struct Frame {
    pub(crate) kind: u8,
    pub(crate) stream: u32,
    pub(crate) payload: Vec<u8>,
}

impl Frame {
    /// The error code of a GOAWAY or RST_STREAM frame.
    pub(crate) fn error_code(&self) -> Option<u32> {
        let at = match self.kind {
            GOAWAY => 4,
            RST_STREAM => 0,
            _ => return None,
        };
        let bytes = self.payload.get(at..at + 4)?;
        Some(u32::from_be_bytes(bytes.try_into().ok()?))
    }
}

/// An HTTP/2 client that writes frames by hand over an authenticated TLS connection, to do
/// what no well-behaved client library will.
pub(crate) struct RawH2 {
    tls: tokio_rustls::client::TlsStream<TcpStream>,
    read: Vec<u8>,
}

impl RawH2 {
    pub(crate) async fn connect(addr: SocketAddr, p: &Pki) -> Self {
        let config = raw_config(Some(&p.payments), &p.pki.ca_cert());
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .unwrap();
        let mut raw = Self {
            tls,
            read: Vec::new(),
        };
        raw.tls
            .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .await
            .unwrap();
        raw.send(SETTINGS, 0, 0, &[]).await.unwrap();
        raw
    }

    pub(crate) async fn send(
        &mut self,
        kind: u8,
        flags: u8,
        stream: u32,
        payload: &[u8],
    ) -> std::io::Result<()> {
        let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
        let mut frame = vec![len[1], len[2], len[3], kind, flags];
        frame.extend_from_slice(&stream.to_be_bytes());
        frame.extend_from_slice(payload);
        self.tls.write_all(&frame).await
    }

    /// Frames the server sends until it closes the connection or `wait` passes.
    pub(crate) async fn frames(&mut self, wait: Duration) -> (Vec<Frame>, bool) {
        let deadline = tokio::time::Instant::now() + wait;
        let mut buf = [0_u8; 16 * 1024];
        let closed = loop {
            match tokio::time::timeout_at(deadline, self.tls.read(&mut buf)).await {
                Ok(Ok(0) | Err(_)) => break true,
                Ok(Ok(n)) => self.read.extend_from_slice(&buf[..n]),
                Err(_) => break false,
            }
        };
        let mut frames = Vec::new();
        let mut at = 0;
        while let Some(header) = self.read.get(at..at + 9) {
            let len =
                usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
            let Some(payload) = self.read.get(at + 9..at + 9 + len) else {
                break;
            };
            frames.push(Frame {
                kind: header[3],
                stream: u32::from_be_bytes(header[5..9].try_into().unwrap()) & 0x7fff_ffff,
                payload: payload.to_vec(),
            });
            at += 9 + len;
        }
        (frames, closed)
    }
}

/// An HPACK string literal, not Huffman-coded, with its length as a 7-bit prefix integer.
pub(crate) fn hpack_string(out: &mut Vec<u8>, s: &[u8]) {
    let mut len = s.len();
    if len < 127 {
        out.push(u8::try_from(len).unwrap());
    } else {
        out.push(127);
        len -= 127;
        while len >= 128 {
            out.push(u8::try_from(len % 128).unwrap() | 0x80);
            len /= 128;
        }
        out.push(u8::try_from(len).unwrap());
    }
    out.extend_from_slice(s);
}

/// A header block for a gRPC request to `path`: every field a literal without indexing, so
/// each block stands alone (no shared HPACK state to get wrong).
pub(crate) fn request_headers(path: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in [
        (":method", "POST"),
        (":scheme", "https"),
        (":path", path),
        (":authority", "localhost"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ] {
        out.push(0x00);
        hpack_string(&mut out, name.as_bytes());
        hpack_string(&mut out, value.as_bytes());
    }
    out
}
