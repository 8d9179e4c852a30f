//! The route table end to end: virtual host selection by Host, path and header matchers,
//! rewrites, direct responses, redirects, header mutations at the three levels, weighted
//! clusters, and the 404 when nothing matches.

mod support;

use support::{Client, Config, Origin, Proxy, Reply, response};

/// A `direct_response` route answering 200 with `body`, for telling routes apart.
fn says(body: &str) -> String {
    format!("direct_response: {{ status: 200, body: {{ inline_string: \"{body}\" }} }}")
}

fn body_for(client: &mut Client, host: &str, path: &str, extra: &[&str]) -> String {
    let resp = client.get_host(host, path, extra);
    assert_eq!(resp.status, 200, "{host}{path} {extra:?}: {}", resp.text());
    resp.text()
}

#[test]
fn virtual_host_precedence_exact_suffix_prefix_any() {
    // Listed in the opposite order of precedence: config order must not matter.
    let routes = format!(
        r#"
        virtual_hosts:
          - name: any
            domains: ["*"]
            routes: [{{ match: {{ prefix: / }}, {any} }}]
          - name: prefix
            domains: ["www.*"]
            routes: [{{ match: {{ prefix: / }}, {prefix} }}]
          - name: suffix
            domains: ["*.example.com"]
            routes: [{{ match: {{ prefix: / }}, {suffix} }}]
          - name: longer-suffix
            domains: ["*.api.example.com"]
            routes: [{{ match: {{ prefix: / }}, {longer} }}]
          - name: exact
            domains: ["www.example.com", "exact.test:8080"]
            routes: [{{ match: {{ prefix: / }}, {exact} }}]
        "#,
        any = says("any"),
        prefix = says("prefix"),
        suffix = says("suffix"),
        longer = says("longer-suffix"),
        exact = says("exact"),
    );
    let proxy = Config::new().routes(&routes).start();
    let mut client = proxy.client();
    let cases = [
        ("www.example.com", "exact"),
        ("WWW.Example.COM", "exact"),
        ("exact.test:8080", "exact"),
        // The Host is compared with its port.
        ("exact.test", "any"),
        ("a.example.com", "suffix"),
        ("x.api.example.com", "longer-suffix"),
        // A suffix wildcard wins over a prefix wildcard.
        ("www.foo.example.com", "suffix"),
        ("www.example.org", "prefix"),
        // A wildcard must match at least one character.
        ("example.com", "any"),
        ("www.", "any"),
        ("other.test", "any"),
    ];
    for (host, want) in cases {
        assert_eq!(body_for(&mut client, host, "/", &[]), want, "Host: {host}");
    }
}

#[test]
fn path_matchers_prefix_exact_regex_and_case() {
    let routes = format!(
        r#"
        virtual_hosts:
          - name: paths
            domains: ["*"]
            routes:
              - {{ match: {{ path: /exact }}, {exact} }}
              - {{ match: {{ safe_regex: {{ regex: "/users/[0-9]+" }} }}, {regex} }}
              - {{ match: {{ prefix: /CaseLess, case_sensitive: false }}, {caseless} }}
              - {{ match: {{ path: /Exact-Insensitive, case_sensitive: false }}, {exact_ci} }}
              - {{ match: {{ prefix: /api/ }}, {api} }}
              - {{ match: {{ prefix: /api/ }}, {shadowed} }}
              - {{ match: {{ prefix: / }}, {root} }}
        "#,
        exact = says("exact"),
        regex = says("regex"),
        caseless = says("caseless"),
        exact_ci = says("exact-ci"),
        api = says("api"),
        shadowed = says("shadowed"),
        root = says("root"),
    );
    let proxy = Config::new().routes(&routes).start();
    let mut client = proxy.client();
    let cases = [
        ("/exact", "exact"),
        ("/exact?x=1", "exact"),
        ("/exact/more", "root"),
        ("/Exact", "root"),
        ("/users/123", "regex"),
        ("/users/123?full=1", "regex"),
        ("/users/123/x", "root"),
        ("/users/abc", "root"),
        ("/caseless/x", "caseless"),
        ("/CASELESS", "caseless"),
        ("/exact-insensitive", "exact-ci"),
        ("/EXACT-INSENSITIVE", "exact-ci"),
        ("/api/v1", "api"),
        ("/API/v1", "root"),
        ("/", "root"),
    ];
    for (path, want) in cases {
        assert_eq!(body_for(&mut client, "test", path, &[]), want, "{path}");
    }
}

#[test]
fn header_matchers() {
    let routes = format!(
        r#"
        virtual_hosts:
          - name: headers
            domains: ["*"]
            routes:
              - match:
                  prefix: /
                  headers: [{{ name: x-env, string_match: {{ exact: prod }} }}]
                {prod}
              - match:
                  prefix: /
                  headers: [{{ name: x-env, string_match: {{ prefix: stag, ignore_case: true }} }}]
                {staging}
              - match:
                  prefix: /
                  headers: [{{ name: x-env, string_match: {{ safe_regex: {{ regex: "dev-[0-9]+" }} }} }}]
                {dev}
              - match:
                  prefix: /
                  headers:
                    - {{ name: x-flag, present_match: true }}
                    - {{ name: x-block, present_match: true, invert_match: true }}
                {flag}
              - match:
                  prefix: /
                  headers: [{{ name: X-Multi, string_match: {{ contains: "b,c" }} }}]
                {multi}
              - {{ match: {{ prefix: / }}, {fallback} }}
        "#,
        prod = says("prod"),
        staging = says("staging"),
        dev = says("dev"),
        flag = says("flag"),
        multi = says("multi"),
        fallback = says("fallback"),
    );
    let proxy = Config::new().routes(&routes).start();
    let mut client = proxy.client();
    let cases: [(&[&str], &str); 11] = [
        (&["x-env: prod"], "prod"),
        (&["X-ENV: prod"], "prod"),
        (&["x-env: PROD"], "fallback"),
        (&["x-env: production"], "fallback"),
        (&["x-env: STAGING-2"], "staging"),
        (&["x-env: dev-42"], "dev"),
        // safe_regex matches the whole value.
        (&["x-env: dev-42x"], "fallback"),
        (&["x-flag: 1"], "flag"),
        (&["x-flag: 1", "x-block: 1"], "fallback"),
        // Repeated headers are joined with ',' before matching.
        (&["x-multi: a,b", "x-multi: c"], "multi"),
        (&[], "fallback"),
    ];
    for (headers, want) in cases {
        assert_eq!(
            body_for(&mut client, "test", "/", headers),
            want,
            "{headers:?}"
        );
    }
}

/// Route matches may name the pseudo-headers `:method`, `:path`, `:authority` and `:scheme`
/// (the config accepts them, as Envoy does); HTTP/1 carries them in the request line and
/// Host.
#[test]
fn pseudo_header_matchers() {
    let routes = format!(
        r#"
        virtual_hosts:
          - name: pseudo
            domains: ["*"]
            routes:
              - match:
                  prefix: /
                  headers: [{{ name: ":method", string_match: {{ exact: POST }} }}]
                {post}
              - match:
                  prefix: /
                  headers: [{{ name: ":path", string_match: {{ suffix: "?debug=1" }} }}]
                {debug}
              - match:
                  prefix: /
                  headers: [{{ name: ":authority", string_match: {{ exact: "pseudo.test:81" }} }}]
                {authority}
              - match:
                  prefix: /scheme
                  headers: [{{ name: ":scheme", string_match: {{ exact: http }} }}]
                {scheme}
              - {{ match: {{ prefix: / }}, {fallback} }}
        "#,
        post = says("post"),
        debug = says("debug"),
        authority = says("authority"),
        scheme = says("scheme"),
        fallback = says("fallback"),
    );
    let proxy = Config::new().routes(&routes).start();
    let resp = proxy
        .client()
        .request("POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi");
    assert_eq!(resp.text(), "post");
    let mut client = proxy.client();
    assert_eq!(body_for(&mut client, "t", "/x?debug=1", &[]), "debug");
    assert_eq!(
        body_for(&mut client, "pseudo.test:81", "/", &[]),
        "authority"
    );
    assert_eq!(body_for(&mut client, "t", "/scheme", &[]), "scheme");
    assert_eq!(body_for(&mut client, "t", "/x", &[]), "fallback");
}

#[test]
fn prefix_rewrite_and_host_rewrite() {
    let origin = Origin::ok("rewritten");
    let routes = r#"
        virtual_hosts:
          - name: rewrite
            domains: ["*"]
            routes:
              - match: { prefix: /old/ }
                route: { cluster: backend, prefix_rewrite: /new/, host_rewrite_literal: upstream.internal }
              - match: { path: /exact-path }
                route: { cluster: backend, prefix_rewrite: /replaced }
              - match: { prefix: /Strip/, case_sensitive: false }
                route: { cluster: backend, prefix_rewrite: / }
              - match: { prefix: / }
                route: { cluster: backend }
    "#;
    let proxy = Config::new()
        .cluster("backend", &[origin.addr()])
        .routes(routes)
        .start();
    let mut client = proxy.client();

    assert_eq!(
        client
            .get_host("front.test", "/old/a/b?x=1&y=2", &[])
            .status,
        200
    );
    let req = origin.last();
    assert_eq!(req.target, "/new/a/b?x=1&y=2");
    assert_eq!(req.header_all("host"), vec!["upstream.internal"]);

    client.get_host("front.test", "/exact-path?q", &[]);
    let req = origin.last();
    assert_eq!(req.target, "/replaced?q");
    assert_eq!(req.header("host"), Some("front.test"));

    client.get_host("front.test", "/STRIP/rest", &[]);
    assert_eq!(origin.last().target, "/rest");

    client.get_host("front.test", "/untouched/path?k=v", &[]);
    let req = origin.last();
    assert_eq!(req.target, "/untouched/path?k=v");
    assert_eq!(req.header("host"), Some("front.test"));
}

#[test]
fn direct_responses() {
    let routes = r#"
        virtual_hosts:
          - name: direct
            domains: ["*"]
            routes:
              - match: { path: /teapot }
                direct_response: { status: 418, body: { inline_string: "short and stout\n" } }
              - match: { path: /bytes }
                direct_response: { status: 200, body: { inline_bytes: "AAEC/w==" } }
              - match: { path: /empty }
                direct_response: { status: 503 }
    "#;
    let proxy = Config::new().routes(routes).start();
    let mut client = proxy.client();

    let resp = client.get("/teapot");
    assert_eq!(resp.status, 418);
    assert_eq!(resp.body, b"short and stout\n");
    assert_eq!(resp.header("content-length"), Some("16"));
    assert_eq!(resp.header("content-type"), Some("text/plain"));
    assert!(resp.keep_alive, "a direct response keeps the connection");

    let resp = client.get("/bytes");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, [0u8, 1, 2, 255]);

    let resp = client.get("/empty");
    assert_eq!(resp.status, 503);
    assert!(resp.body.is_empty());
    assert_eq!(resp.header("content-length"), Some("0"));

    // HEAD: the same head, no body.
    let resp = client.request("HEAD /teapot HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(resp.status, 418);
    assert_eq!(resp.header("content-length"), Some("16"));
    assert!(resp.body.is_empty());
    // The connection is still in sync.
    assert_eq!(client.get("/bytes").body, [0u8, 1, 2, 255]);

    // A request with a body answered at its head: as Envoy does, the connection closes after
    // the response rather than guess where the next request starts.
    let resp = client.request("POST /teapot HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nabcde");
    assert_eq!(resp.status, 418);
    assert_eq!(resp.body, b"short and stout\n");
    assert_eq!(resp.header("connection"), Some("close"));
    client.expect_closed();
}

#[test]
fn redirects_build_location() {
    let routes = r#"
        virtual_hosts:
          - name: redirect
            domains: ["*"]
            routes:
              - match: { prefix: /https }
                redirect: { https_redirect: true }
              - match: { prefix: /host }
                redirect: { host_redirect: other.test }
              - match: { prefix: /path }
                redirect: { path_redirect: /elsewhere }
              - match: { prefix: /prefix/ }
                redirect: { prefix_rewrite: /moved/, response_code: FOUND }
              - match: { prefix: /strip }
                redirect: { host_redirect: s.test, strip_query: true, response_code: TEMPORARY_REDIRECT }
              - match: { prefix: /port }
                redirect: { port_redirect: 8443, response_code: PERMANENT_REDIRECT }
              - match: { prefix: /see }
                redirect: { https_redirect: true, host_redirect: secure.test, path_redirect: "/login?from=see", response_code: SEE_OTHER }
              - match: { prefix: /own-query }
                redirect: { path_redirect: "/q?kept=1", strip_query: true }
    "#;
    let proxy = Config::new().routes(routes).start();
    let mut client = proxy.client();
    let cases = [
        (
            "redirect.test",
            "/https/x?q=1",
            301,
            "https://redirect.test/https/x?q=1",
        ),
        // As in Envoy, a scheme change drops the old scheme's default port only…
        (
            "redirect.test:80",
            "/https/x",
            301,
            "https://redirect.test/https/x",
        ),
        (
            "redirect.test:8080",
            "/https/x",
            301,
            "https://redirect.test:8080/https/x",
        ),
        // …and host_redirect replaces the whole authority.
        (
            "redirect.test:8080",
            "/host/x",
            301,
            "http://other.test/host/x",
        ),
        // A query in path_redirect replaces the request's and is never stripped.
        (
            "redirect.test",
            "/own-query?q=1",
            301,
            "http://redirect.test/q?kept=1",
        ),
        (
            "redirect.test",
            "/host/x?q=1",
            301,
            "http://other.test/host/x?q=1",
        ),
        (
            "redirect.test",
            "/path/x?q=1",
            301,
            "http://redirect.test/elsewhere?q=1",
        ),
        (
            "redirect.test",
            "/prefix/a/b?q=1",
            302,
            "http://redirect.test/moved/a/b?q=1",
        ),
        (
            "redirect.test",
            "/strip/x?q=1&r=2",
            307,
            "http://s.test/strip/x",
        ),
        (
            "redirect.test",
            "/port?z",
            308,
            "http://redirect.test:8443/port?z",
        ),
        (
            "redirect.test",
            "/see?ignored=1",
            303,
            "https://secure.test/login?from=see",
        ),
    ];
    for (host, path, status, location) in cases {
        let resp = client.get_host(host, path, &[]);
        assert_eq!(resp.status, status, "{host}{path}");
        assert_eq!(resp.header("location"), Some(location), "{host}{path}");
        assert!(resp.body.is_empty());
        assert_eq!(resp.header("content-length"), Some("0"));
    }
}

fn header_levels_proxy(origin: &Origin) -> Proxy {
    let routes = r#"
        request_headers_to_add:
          - header: { key: x-level, value: config }
          - header: { key: x-overwrite, value: config }
            append_action: OVERWRITE_IF_EXISTS_OR_ADD
        request_headers_to_remove: [x-remove-config]
        response_headers_to_add:
          - header: { key: x-resp-level, value: config }
        response_headers_to_remove: [x-origin-remove-config]
        virtual_hosts:
          - name: levels
            domains: ["*"]
            request_headers_to_add:
              - header: { key: x-level, value: vhost }
              - header: { key: x-vhost, value: "yes" }
            request_headers_to_remove: [x-remove-vhost]
            response_headers_to_add:
              - header: { key: x-resp-level, value: vhost }
            response_headers_to_remove: [x-origin-remove-vhost]
            routes:
              - match: { path: /direct }
                direct_response: { status: 200, body: { inline_string: direct } }
                response_headers_to_add:
                  - header: { key: x-resp-level, value: direct-route }
              - match: { prefix: / }
                route: { cluster: backend }
                request_headers_to_add:
                  - header: { key: x-level, value: route }
                  - header: { key: x-overwrite, value: route }
                  - header: { key: x-if-absent, value: route }
                    append_action: ADD_IF_ABSENT
                  - header: { key: x-only-if-exists, value: route }
                    append_action: OVERWRITE_IF_EXISTS
                request_headers_to_remove: [x-remove-route]
                response_headers_to_add:
                  - header: { key: x-resp-level, value: route }
                response_headers_to_remove: [x-origin-remove-route]
    "#;
    Config::new()
        .cluster("backend", &[origin.addr()])
        .routes(routes)
        .start()
}

#[test]
fn header_mutations_at_route_vhost_and_config_levels() {
    let origin = Origin::start(|_| {
        Reply::Send(response(
            200,
            &[
                ("x-origin-remove-config", "1"),
                ("x-origin-remove-vhost", "1"),
                ("x-origin-remove-route", "1"),
                ("x-origin-keep", "1"),
            ],
            b"levels",
        ))
    });
    let proxy = header_levels_proxy(&origin);
    let mut client = proxy.client();
    let resp = client.get_host(
        "levels.test",
        "/",
        &[
            "x-remove-config: 1",
            "x-remove-vhost: 1",
            "x-remove-route: 1",
            "x-keep: 1",
            "x-if-absent: client",
        ],
    );
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, b"levels");

    let req = origin.last();
    // Route first, then virtual host, then route_config (Envoy's default order).
    assert_eq!(req.header_all("x-level"), vec!["route", "vhost", "config"]);
    // The most general level has the last word for overwrites.
    assert_eq!(req.header_all("x-overwrite"), vec!["config"]);
    assert_eq!(req.header_all("x-if-absent"), vec!["client"]);
    assert!(!req.has("x-only-if-exists"));
    assert_eq!(req.header("x-vhost"), Some("yes"));
    for removed in ["x-remove-config", "x-remove-vhost", "x-remove-route"] {
        assert!(!req.has(removed), "{removed} reached the origin");
    }
    assert_eq!(req.header("x-keep"), Some("1"));

    assert_eq!(
        resp.header_all("x-resp-level"),
        vec!["route", "vhost", "config"]
    );
    for removed in [
        "x-origin-remove-config",
        "x-origin-remove-vhost",
        "x-origin-remove-route",
    ] {
        assert!(!resp.has(removed), "{removed} reached the client");
    }
    assert_eq!(resp.header("x-origin-keep"), Some("1"));

    // Without the client's header, ADD_IF_ABSENT adds it.
    client.get_host("levels.test", "/", &[]);
    assert_eq!(origin.last().header_all("x-if-absent"), vec!["route"]);

    // Response mutations apply to direct responses too.
    let resp = client.get_host("levels.test", "/direct", &[]);
    assert_eq!(resp.body, b"direct");
    assert_eq!(
        resp.header_all("x-resp-level"),
        vec!["direct-route", "vhost", "config"]
    );
}

#[test]
fn weighted_clusters_send_traffic_to_both() {
    let one = Origin::ok("one");
    let two = Origin::ok("two");
    let routes = r#"
        virtual_hosts:
          - name: split
            domains: ["*"]
            routes:
              - match: { prefix: / }
                route:
                  weighted_clusters:
                    clusters:
                      - { name: one, weight: 50 }
                      - { name: two, weight: 50 }
    "#;
    let proxy = Config::new()
        .cluster("one", &[one.addr()])
        .cluster("two", &[two.addr()])
        .routes(routes)
        .start();
    let mut client = proxy.client();
    for _ in 0..60 {
        let resp = client.get("/");
        assert_eq!(resp.status, 200);
        assert!(resp.body == b"one" || resp.body == b"two");
    }
    assert_eq!(one.request_count() + two.request_count(), 60);
    // With p = 1/2 per request, all 60 on one side happens with probability 2^-59.
    assert!(one.request_count() > 0, "cluster one got no traffic");
    assert!(two.request_count() > 0, "cluster two got no traffic");
}

#[test]
fn no_route_is_404_and_nothing_goes_upstream() {
    let origin = Origin::ok("never");
    let routes = r#"
        virtual_hosts:
          - name: only
            domains: ["only.test"]
            routes:
              - match: { prefix: /api/ }
                route: { cluster: backend }
    "#;
    let proxy = Config::new()
        .cluster("backend", &[origin.addr()])
        .routes(routes)
        .start();
    let mut client = proxy.client();

    // No virtual host for this Host.
    let resp = client.get_host("elsewhere.test", "/api/x", &[]);
    assert_eq!(resp.status, 404);
    assert!(resp.body.is_empty());
    assert!(resp.keep_alive);

    // The virtual host matches, no route does.
    let resp = client.get_host("only.test", "/other", &[]);
    assert_eq!(resp.status, 404);
    assert!(resp.body.is_empty());

    assert_eq!(origin.accepted(), 0);
    assert_eq!(proxy.class(4), 2);

    // And a routed request on the same connection still works.
    let resp = client.get_host("only.test", "/api/x", &[]);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, b"never");
}
