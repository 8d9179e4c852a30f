//! `render::view_html`: self-contained, and carrying the attributes tests and tools rely on.

use weir_flow::{Phase, render};

const SVG_NAMESPACE: &str = "http://www.w3.org/2000/svg";

#[test]
fn is_self_contained() {
    let page = render::view_html();
    assert!(page.starts_with("<!doctype html>"));
    let lower = page.to_ascii_lowercase();
    for banned in [
        "<script src",
        "<link",
        "@import",
        "src=\"http",
        "href=\"http",
        "url(http",
        "url(//",
        "src=\"//",
    ] {
        assert!(!lower.contains(banned), "external asset: {banned}");
    }
    // The only absolute URL is the SVG namespace, which is a name, not a fetch.
    for scheme in ["http://", "https://"] {
        for (at, _) in lower.match_indices(scheme) {
            assert!(
                page[at..].starts_with(SVG_NAMESPACE),
                "external reference at {}",
                &page[at..at + 40]
            );
        }
    }
    assert!(lower.contains("<style>") && lower.contains("<script>"));
}

#[test]
fn fetches_its_json_lines_next_to_itself() {
    let page = render::view_html();
    assert!(page.contains("'format=json&limit='"));
    // Served as /flows/view it reads /flows; elsewhere flows?… relative to the page.
    assert!(page.contains(r"/\/view\/?$/"));
    assert!(page.contains("'flows?' + query"));
    assert!(!page.contains("fetch('/"), "no absolute path");
    assert!(
        page.contains("obj.event === 'flow'"),
        "groups events under flow headers"
    );
    assert!(page.contains("split('\\n')"));
}

#[test]
fn carries_the_stable_attributes() {
    let page = render::view_html();
    for attribute in [
        "'data-stream'",
        "'data-lane'",
        "'data-fd'",
        "'data-event'",
        "class: 'phase ' + run.phase",
    ] {
        assert!(page.contains(attribute), "missing {attribute}");
    }
    for phase in Phase::ALL {
        assert!(
            page.contains(&format!(".phase.{}", phase.name())),
            "no colour for {phase:?}"
        );
        assert!(
            page.contains(&format!("'{}'", phase.name())),
            "no name for {phase:?}"
        );
        assert!(page.contains(phase.title()), "no legend for {phase:?}");
    }
}

#[test]
fn has_controls_and_an_error_box() {
    let page = render::view_html();
    assert!(page.contains("id=\"limit\""));
    assert!(page.contains(">Refresh</button>"));
    assert!(page.contains("role=\"alert\""));
    assert!(page.contains("Could not load flows from "));
}

#[test]
fn says_what_is_recorded() {
    let page = render::view_html();
    let note = |page: &str| {
        let at = page
            .find("<p id=\"recording\">")
            .expect("the recording line")
            + 18;
        page[at..at + page[at..].find("</p>").unwrap()].to_owned()
    };
    assert!(note(page).contains("x-weir-trace: 1"), "{}", note(page));
    let noted = render::view_html_noting("every request <ALL> & more");
    assert_eq!(note(&noted), "every request &lt;ALL&gt; &amp; more");
    assert_eq!(noted.replace(&note(&noted), &note(page)), page);
}
