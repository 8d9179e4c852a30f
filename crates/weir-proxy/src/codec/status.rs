//! The status line's reason phrase as Envoy's HTTP/1 codec writes it: the phrase of the
//! status code from Envoy's own table (`CodeUtility::toString`), never the origin's, and
//! `Unknown` for a code the table lacks (418, 451, 299…). Checked against Envoy 1.40 for every
//! status from 200 to 599 (direct responses); its table keeps some older names (413 `Payload
//! Too Large`, 422 `Unprocessable Entity`) and names 599.

/// Envoy's reason phrase for `status`.
pub(crate) fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        207 => "Multi-Status",
        208 => "Already Reported",
        226 => "IM Used",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        305 => "Use Proxy",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Payload Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Entity",
        423 => "Locked",
        424 => "Failed Dependency",
        425 => "Too Early",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        506 => "Variant Also Negotiates",
        507 => "Insufficient Storage",
        508 => "Loop Detected",
        510 => "Not Extended",
        511 => "Network Authentication Required",
        599 => "Last Unassigned Server Error Code",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::reason_phrase;

    #[test]
    fn envoys_phrases_and_unknown_for_the_rest() {
        assert_eq!(reason_phrase(200), "OK");
        assert_eq!(reason_phrase(413), "Payload Too Large");
        assert_eq!(reason_phrase(422), "Unprocessable Entity");
        assert_eq!(reason_phrase(599), "Last Unassigned Server Error Code");
        for unknown in [102, 103, 299, 306, 418, 451, 509, 600, 999] {
            assert_eq!(reason_phrase(unknown), "Unknown", "{unknown}");
        }
        // Where Envoy's table and RFC 9110's agree, the codec's own table says the same.
        for status in [200, 204, 301, 404, 431, 503, 505] {
            assert_eq!(reason_phrase(status), weir_http1::reason_phrase(status));
        }
    }
}
