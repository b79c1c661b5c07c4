//! The response future of [`crate::Authz`]: the inner service's, or an immediate refusal.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use zt_telemetry::InFlight;

use crate::body::ResponseBody;

pin_project! {
    /// Either the wrapped service's future (allowed) or a ready gRPC error response (refused).
    #[derive(Debug)]
    pub struct ResponseFuture<F, B> {
        #[pin]
        kind: Kind<F, B>,
    }
}

pin_project! {
    #[project = KindProj]
    #[derive(Debug)]
    enum Kind<F, B> {
        // The guard counts the RPC as in flight; it moves into the body once the handler has
        // answered, and is dropped with the future if the handler fails.
        Allowed { #[pin] future: F, in_flight: Option<InFlight> },
        Refused { response: Option<http::Response<ResponseBody<B>>> },
    }
}

impl<F, B> ResponseFuture<F, B> {
    pub(crate) fn allowed(future: F, in_flight: InFlight) -> Self {
        Self {
            kind: Kind::Allowed {
                future,
                in_flight: Some(in_flight),
            },
        }
    }

    pub(crate) fn refused(response: http::Response<B>) -> Self {
        Self {
            kind: Kind::Refused {
                response: Some(response.map(|body| ResponseBody::new(body, None))),
            },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<http::Response<B>, E>>,
{
    type Output = Result<http::Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Allowed { future, in_flight } => future
                .poll(cx)
                .map_ok(|response| response.map(|body| ResponseBody::new(body, in_flight.take()))),
            KindProj::Refused { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                // Polled again after completion: a caller bug, answered without panicking.
                None => Poll::Pending,
            },
        }
    }
}
