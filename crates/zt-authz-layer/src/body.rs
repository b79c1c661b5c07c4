//! The response body of an allowed RPC, which keeps the RPC counted as in flight until the
//! body ends: for a server stream, that is the last message and the trailers, not the headers.

use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use zt_telemetry::InFlight;

pin_project! {
    /// A response body with an optional in-flight guard, released when the body is finished
    /// (its last frame or an error) or dropped (the client went away).
    #[derive(Debug)]
    pub struct ResponseBody<B> {
        #[pin]
        inner: B,
        in_flight: Option<InFlight>,
    }
}

impl<B> ResponseBody<B> {
    pub(crate) fn new(inner: B, in_flight: Option<InFlight>) -> Self {
        Self { inner, in_flight }
    }

    /// The wrapped body.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }
}

impl<B: Default> Default for ResponseBody<B> {
    fn default() -> Self {
        Self::new(B::default(), None)
    }
}

impl<B: Body> Body for ResponseBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = this.inner.poll_frame(cx);
        if matches!(frame, Poll::Ready(None | Some(Err(_)))) {
            this.in_flight.take();
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn in_flight(metrics: &zt_telemetry::Metrics) -> bool {
        !metrics.encode().contains("zt_rpcs_in_flight 0")
    }

    #[test]
    fn an_rpc_is_in_flight_until_its_body_ends() {
        let metrics = zt_telemetry::Metrics::new();
        let started = crate::metrics::AuthzMetrics::new(&metrics).rpc_started();
        let mut body = ResponseBody::new(String::from("one message"), Some(started));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut poll = || Pin::new(&mut body).poll_frame(&mut cx);

        assert!(in_flight(&metrics), "headers sent, body not yet");
        assert!(matches!(poll(), Poll::Ready(Some(Ok(_)))));
        assert!(in_flight(&metrics), "a message sent, the stream still open");
        assert!(matches!(poll(), Poll::Ready(None)));
        assert!(!in_flight(&metrics), "the body ended");
    }

    #[test]
    fn an_abandoned_body_is_no_longer_in_flight() {
        let metrics = zt_telemetry::Metrics::new();
        let started = crate::metrics::AuthzMetrics::new(&metrics).rpc_started();
        let body = ResponseBody::new(String::from("never read"), Some(started));
        assert!(in_flight(&metrics));
        drop(body);
        assert!(!in_flight(&metrics));
    }
}
