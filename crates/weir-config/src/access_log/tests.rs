use super::format_string::time_format;
use super::*;

fn op(format: &str) -> Operator {
    match compile(format).unwrap().as_slice() {
        [Piece::Operator(op)] => op.clone(),
        other => panic!("{format}: {other:?}"),
    }
}

#[test]
fn default_format_compiles() {
    let f = LogFormat::text(ENVOY_DEFAULT_FORMAT, false).unwrap();
    assert_eq!(f, LogFormat::envoy_default());
    assert_eq!(
        f.request_headers().collect::<Vec<_>>(),
        [
            ":method",
            "x-envoy-original-path",
            ":path",
            "x-forwarded-for",
            "user-agent",
            "x-request-id",
            ":authority"
        ]
    );
    assert_eq!(
        f.response_headers().collect::<Vec<_>>(),
        ["x-envoy-upstream-service-time"]
    );
    let FormatKind::Text(pieces) = f.kind() else {
        panic!()
    };
    assert_eq!(pieces.first(), Some(&Piece::Literal("[".to_owned())));
    assert_eq!(pieces.last(), Some(&Piece::Literal("\"\n".to_owned())));
}

#[test]
fn escapes_and_literals() {
    assert_eq!(
        compile("100%% done").unwrap(),
        [Piece::Literal("100% done".to_owned())]
    );
    assert_eq!(compile("").unwrap(), []);
    assert_eq!(
        compile("é%PROTOCOL%ü").unwrap(),
        [
            Piece::Literal("é".to_owned()),
            Piece::Operator(Operator::Protocol),
            Piece::Literal("ü".to_owned())
        ]
    );
}

#[test]
fn headers_and_lengths() {
    assert_eq!(
        op("%REQ(X-ENVOY-ORIGINAL-PATH?:PATH):10%"),
        Operator::RequestHeader(HeaderOperator {
            name: "x-envoy-original-path".to_owned(),
            alternative: Some(":path".to_owned()),
            max_length: Some(10),
        })
    );
    assert_eq!(
        op("%RESPONSE_HEADER(Content-Type)%"),
        Operator::ResponseHeader(HeaderOperator {
            name: "content-type".to_owned(),
            alternative: None,
            max_length: None,
        })
    );
    // The subcommand ends at the first `)` the syntax allows (Envoy's lazy `(.*?)`).
    assert!(compile("%REQ(a)b)%").is_err());
    assert!(
        compile("%REQ(A?B?C)%")
            .unwrap_err()
            .contains("one alternative")
    );
    assert!(
        compile("%REQ()%")
            .unwrap_err()
            .contains("needs a header name")
    );
    assert!(
        compile("%REQ(:foo)%")
            .unwrap_err()
            .contains("pseudo-header")
    );
    assert!(
        compile("%REQ(a b)%")
            .unwrap_err()
            .contains("not a valid header")
    );
    assert!(
        compile("%PROTOCOL:3%")
            .unwrap_err()
            .contains("no `:LENGTH`")
    );
    assert!(
        compile("%PROTOCOL(x)%")
            .unwrap_err()
            .contains("no argument")
    );
}

#[test]
fn bad_operators() {
    assert_eq!(
        compile("%FOO%").unwrap_err(),
        "unknown command operator `%FOO%`"
    );
    assert_eq!(
        compile("%HOSTNAME%").unwrap_err(),
        "command operator `%HOSTNAME%` is not supported by weir yet"
    );
    assert!(compile("50%").unwrap_err().contains("write `%%`"));
    assert!(compile("%PROTOCOL").unwrap_err().contains("unterminated"));
    assert!(compile("%REQ(x%").unwrap_err().contains("unterminated"));
    assert!(
        compile("%protocol%")
            .unwrap_err()
            .contains("does not start")
    );
}

#[test]
fn time_formats() {
    assert_eq!(op("%START_TIME%"), Operator::StartTime(TimeFormat::Default));
    assert_eq!(
        op("%START_TIME(%s.%3f)%"),
        Operator::StartTime(TimeFormat::Custom(vec![
            TimePiece::EpochSeconds,
            TimePiece::Literal(".".to_owned()),
            TimePiece::Fraction(3),
        ]))
    );
    assert_eq!(
        time_format("%FT%T%Ez").unwrap(),
        [
            TimePiece::Year,
            TimePiece::Literal("-".to_owned()),
            TimePiece::Month,
            TimePiece::Literal("-".to_owned()),
            TimePiece::Day,
            TimePiece::Literal("T".to_owned()),
            TimePiece::Hour,
            TimePiece::Literal(":".to_owned()),
            TimePiece::Minute,
            TimePiece::Literal(":".to_owned()),
            TimePiece::Second,
            TimePiece::OffsetWithColon,
        ]
    );
    assert!(time_format("%Q").is_err());
    assert!(time_format("%n").is_err());
    assert!(compile("%START_TIME(%Q)%").unwrap_err().contains("%Q"));
}

#[test]
fn json_formats() {
    let f = LogFormat::json(
        &serde_json::json!({"b": "%RESPONSE_CODE%", "a": {"z": 1.0, "y": [true, null, "x"]}, "c": "%%"}),
        false,
    )
    .unwrap();
    let FormatKind::Json(fields) = f.kind() else {
        panic!()
    };
    assert_eq!(
        fields.iter().map(|f| f.key.as_str()).collect::<Vec<_>>(),
        ["a", "b", "c"]
    );
    assert_eq!(
        fields[0].value,
        JsonValue::Object(vec![
            JsonField {
                key: "y".to_owned(),
                value: JsonValue::List(vec![
                    JsonValue::Constant("true".to_owned()),
                    JsonValue::Constant("null".to_owned()),
                    JsonValue::Constant("\"x\"".to_owned()),
                ])
            },
            JsonField {
                key: "z".to_owned(),
                value: JsonValue::Constant("1".to_owned())
            },
        ])
    );
    assert_eq!(fields[2].value, JsonValue::Constant("\"%\"".to_owned()));
    let errors = LogFormat::json(&serde_json::json!({"a": {"b": "%NOPE%"}}), false).unwrap_err();
    assert_eq!(
        errors,
        [(
            "a.b".to_owned(),
            "unknown command operator `%NOPE%`".to_owned()
        )]
    );
}
