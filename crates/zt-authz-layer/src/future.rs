//! The response future of [`crate::Authz`]: the inner service's, or an immediate refusal.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use zt_telemetry::InFlight;

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
        // The guard counts the RPC as in flight until the handler has answered.
        Allowed { #[pin] future: F, in_flight: InFlight },
        Refused { response: Option<http::Response<B>> },
    }
}

impl<F, B> ResponseFuture<F, B> {
    pub(crate) fn allowed(future: F, in_flight: InFlight) -> Self {
        Self {
            kind: Kind::Allowed { future, in_flight },
        }
    }

    pub(crate) fn refused(response: http::Response<B>) -> Self {
        Self {
            kind: Kind::Refused {
                response: Some(response),
            },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<http::Response<B>, E>>,
{
    type Output = Result<http::Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Allowed { future, .. } => future.poll(cx),
            KindProj::Refused { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                // Polled again after completion: a caller bug, answered without panicking.
                None => Poll::Pending,
            },
        }
    }
}
