//! Calls to any gRPC method without its protobuf types: a unary call whose request is an
//! empty message (zero bytes, which every proto3 message accepts) and whose answer is read
//! as bytes. What the catalogue judges is the `grpc-status`, never the reply's content.

use std::time::Duration;

use bytes::{Buf as _, BufMut as _};
use http::uri::PathAndQuery;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Status};

/// The result of one call, as the catalogue judges it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The method answered `OK` (its reply is this many bytes).
    Ok(usize),
    /// The server answered with this gRPC status (`UNAUTHENTICATED` and `PERMISSION_DENIED`
    /// are the authorization layer's refusals; any other code means the call got past it).
    Status(Code, String),
    /// No gRPC answer at all: connection refused, TLS refused, timed out; in words.
    Transport(String),
}

impl Answer {
    /// Whether the server refused the caller: `UNAUTHENTICATED` or `PERMISSION_DENIED`.
    pub fn refused(&self) -> bool {
        matches!(
            self,
            Self::Status(Code::Unauthenticated | Code::PermissionDenied, _)
        )
    }

    /// Whether the call reached past authorization to something that answered (any status
    /// but the two refusals; a transport failure is neither).
    pub fn got_through(&self) -> bool {
        match self {
            Self::Ok(_) => true,
            Self::Status(..) => !self.refused(),
            Self::Transport(_) => false,
        }
    }
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Ok(n) => write!(f, "OK ({n} bytes)"),
            Self::Status(code, message) if message.is_empty() => {
                f.write_str(zt_tls::grpc_code_name(*code))
            }
            Self::Status(code, message) => {
                write!(f, "{}: {message}", zt_tls::grpc_code_name(*code))
            }
            Self::Transport(why) => write!(f, "no gRPC answer: {why}"),
        }
    }
}

/// Calls `method` (`/package.Service/Method`) on `channel` with an empty request message and
/// the given metadata (`(name, value)` pairs), waiting at most `wait`.
pub async fn call(
    channel: Channel,
    method: &str,
    metadata: &[(&str, &str)],
    wait: Duration,
) -> Answer {
    match call_status(channel, method, metadata, wait).await {
        Ok(len) => Answer::Ok(len),
        Err(status) => judge(&status),
    }
}

/// [`call`], with the status as tonic gives it (a transport failure is a status with a
/// source error): the reply's length, or the status.
pub(crate) async fn call_status(
    channel: Channel,
    method: &str,
    metadata: &[(&str, &str)],
    wait: Duration,
) -> Result<usize, Status> {
    let path = PathAndQuery::try_from(method)
        .map_err(|e| Status::invalid_argument(format!("{method} is not a method path: {e}")))?;
    let mut request = tonic::Request::new(Vec::new());
    for (name, value) in metadata {
        let Ok(key) = tonic::metadata::MetadataKey::from_bytes(name.as_bytes()) else {
            continue;
        };
        if let Ok(value) = MetadataValue::try_from(*value) {
            request.metadata_mut().insert(key, value);
        }
    }
    request.set_timeout(wait);
    let mut grpc = tonic::client::Grpc::new(channel);
    let exchange = async {
        grpc.ready()
            .await
            .map_err(|e| Status::from_error(Box::new(e)))?;
        grpc.unary(request, path, RawCodec)
            .await
            .map(|reply| reply.into_inner().len())
    };
    tokio::time::timeout(wait, exchange)
        .await
        .unwrap_or_else(|_| {
            Err(Status::deadline_exceeded(format!(
                "no answer within {}",
                humantime::format_duration(wait)
            )))
        })
}

/// A status that came from the server, or one made up because there was no answer.
fn judge(status: &Status) -> Answer {
    // tonic reports transport failures as a status with a source error; a server's own
    // status has none.
    match std::error::Error::source(status) {
        Some(source) => Answer::Transport(transport_words(source)),
        None if status.code() == Code::DeadlineExceeded
            && status.message().starts_with("no answer") =>
        {
            Answer::Transport(status.message().to_owned())
        }
        None => Answer::Status(status.code(), status.message().to_owned()),
    }
}

/// A transport failure in words: a TLS failure as zt-tls describes it, otherwise the
/// innermost error (the one that says what happened: "Connection refused", ...).
pub(crate) fn transport_words(err: &(dyn std::error::Error + 'static)) -> String {
    let mut innermost = err;
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return zt_tls::describe_tls(tls).message;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io
                .get_ref()
                .is_some_and(|inner| inner.is::<rustls::Error>())
        {
            return zt_tls::describe_handshake(io).message;
        }
        innermost = e;
        current = e.source();
    }
    innermost.to_string()
}

/// Bytes in, bytes out: the gRPC framing without protobuf.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Self;
    type Decoder = Self;

    fn encoder(&mut self) -> Self::Encoder {
        Self
    }

    fn decoder(&mut self) -> Self::Decoder {
        Self
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}
