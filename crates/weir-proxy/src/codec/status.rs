//! The status line's reason phrase as Envoy's HTTP/1 codec writes it: the phrase of the
//! status code from Envoy's own table (`CodeUtility::toString`), never the origin's, and
//! `Unknown` for a code the table lacks (418, 451, 299…). Checked against Envoy 1.40 for every
//! status from 200 to 599 (direct responses); its table keeps some older names (413 `Payload
//! Too Large`, 422 `Unprocessable Entity`) and names 599.

/// Envoy's reason phrase for `status`: RFC 9110's (the HTTP/1 codec's table) but where
/// Envoy's table is older or lacks the code.
pub(crate) fn reason_phrase(status: u16) -> &'static str {
    match status {
        413 => "Payload Too Large",
        422 => "Unprocessable Entity",
        599 => "Last Unassigned Server Error Code",
        102 | 103 | 451 => "Unknown",
        _ => match weir_http1::reason_phrase(status) {
            "" => "Unknown",
            phrase => phrase,
        },
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
