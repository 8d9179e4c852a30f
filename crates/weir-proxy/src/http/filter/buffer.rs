//! `envoy.filters.http.buffer`: the whole request body is received before the request goes on,
//! so the origin gets it in one piece with its `content-length`; a body over
//! `max_request_bytes` is answered 413.

use bytes::Bytes;
use weir_config::BufferConfig;
use weir_http1::RequestHead;

use super::Verdict;
use crate::http::local_reply::LocalReply;

/// The buffer filter on one stream: it holds the request until its end (or its limit).
#[derive(Debug)]
pub(crate) struct Buffer {
    config: BufferConfig,
}

impl Buffer {
    pub(crate) fn new(config: BufferConfig) -> Self {
        Buffer { config }
    }

    pub(crate) fn max_bytes(&self) -> usize {
        self.config.max_request_bytes as usize
    }

    pub(crate) fn decode_headers(&mut self, end_stream: bool) -> Verdict {
        if end_stream {
            Verdict::Continue
        } else {
            Verdict::Stop { wake_after: None }
        }
    }

    /// `held` body bytes so far. At the end the request goes on with a `content-length` (a
    /// chunked request becomes a sized one), as Envoy's buffer filter sends it.
    pub(crate) fn decode_data(
        &mut self,
        head: &mut RequestHead,
        held: usize,
        end_stream: bool,
    ) -> Verdict {
        if held > self.max_bytes() {
            return Verdict::Reply(
                LocalReply::new(413, "Payload Too Large").because("request_payload_too_large"),
            );
        }
        if !end_stream {
            return Verdict::Stop { wake_after: None };
        }
        if !head.headers.contains("content-length") {
            let mut len = itoa::Buffer::new();
            head.headers.append(
                "content-length",
                Bytes::copy_from_slice(len.format(held).as_bytes()),
            );
        }
        Verdict::Continue
    }
}
